// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// An ERC-20 for the logfill demo: the deployer holds the supply and can pay many
/// recipients in one transaction (one Transfer event each).
contract DemoToken is ERC20 {
    constructor(uint256 supply) ERC20("Demo Token", "DEMO") {
        _mint(msg.sender, supply);
    }

    function batchTransfer(address[] calldata to, uint256[] calldata amounts) external {
        require(to.length == amounts.length, "length mismatch");
        for (uint256 i = 0; i < to.length; i++) {
            _transfer(msg.sender, to[i], amounts[i]);
        }
    }
}
