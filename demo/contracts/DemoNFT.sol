// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";

/// An ERC-721 for the logfill demo: anyone may mint the next token id.
contract DemoNFT is ERC721 {
    uint256 public nextId;

    constructor() ERC721("Demo NFT", "DNFT") {}

    function mint(address to) external returns (uint256 id) {
        id = nextId++;
        _mint(to, id);
    }
}
