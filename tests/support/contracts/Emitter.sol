// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// Test-only contract that emits event logs on demand, for tests against a real anvil node.
///
/// emitMany draws its topics from small fixed pools (4 addresses, 3 tags, 5 small numbers) so
/// that filters with OR-lists and wildcards select meaningful subsets. tests/support/anvil.py
/// mirrors the pools (POOL_ADDRESSES, POOL_TAGS, POOL_NUMBERS); keep the two in sync.
contract Emitter {
    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);
    event Note(bytes32 indexed tag, uint256 indexed n, bytes data);
    /// Anonymous: a LOG0 with no topics at all, only data.
    event Anon(uint256 value) anonymous;

    function emitTransfer(address from, address to, uint256 value) external {
        emit Transfer(from, to, value);
    }

    function emitApproval(address owner, address spender, uint256 value) external {
        emit Approval(owner, spender, value);
    }

    function emitNote(bytes32 tag, uint256 n, bytes calldata data) external {
        emit Note(tag, n, data);
    }

    function emitAnon(uint256 value) external {
        emit Anon(value);
    }

    /// Emits `count` logs in one transaction: for i in [0, count), r = keccak256(seed, i) picks
    /// the kind (r % 3: Transfer, Approval, Note) and the topics from the pools.
    function emitMany(uint256 count, uint256 seed) external {
        // One reusable buffer for Note data: no memory growth per iteration.
        bytes memory data = new bytes(32);
        for (uint256 i = 0; i < count; ++i) {
            uint256 r;
            assembly {
                mstore(0x00, seed)
                mstore(0x20, i)
                r := keccak256(0x00, 0x40)
            }
            uint256 kind = r % 3;
            if (kind == 0) {
                emit Transfer(_addr(r >> 8), _addr(r >> 16), r >> 128);
            } else if (kind == 1) {
                emit Approval(_addr(r >> 8), _addr(r >> 16), r >> 128);
            } else {
                // 0..32 bytes of data: r's leading bytes.
                uint256 len = (r >> 24) % 33;
                assembly {
                    mstore(data, len)
                    mstore(add(data, 0x20), r)
                }
                emit Note(_tag(r >> 8), (r >> 16) % 5, data);
            }
        }
    }

    function _addr(uint256 x) private pure returns (address) {
        // 0x...a11ce1 .. 0x...a11ce4
        return address(uint160(0xa11ce1 + (x % 4)));
    }

    function _tag(uint256 x) private pure returns (bytes32) {
        uint256 k = x % 3;
        if (k == 0) return bytes32("alpha");
        if (k == 1) return bytes32("beta");
        return bytes32("gamma");
    }
}
