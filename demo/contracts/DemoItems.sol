// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC1155} from "@openzeppelin/contracts/token/ERC1155/ERC1155.sol";

/// An ERC-1155 for the logfill demo: anyone may mint items (TransferSingle/TransferBatch).
contract DemoItems is ERC1155 {
    constructor() ERC1155("https://example.invalid/items/{id}.json") {}

    function mint(address to, uint256 id, uint256 amount) external {
        _mint(to, id, amount, "");
    }
}
