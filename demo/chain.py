"""The demo's chain: a local anvil, three OpenZeppelin token contracts, and their history.

The tools come from npm (package.json at the repository root, `make
node_modules/.installed`): the anvil binary, solcjs (compiles offline) and
@openzeppelin/contracts. The build is cached under `build/demo/` keyed by the
sources, the compiler and the library versions, so only the first run compiles.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from indexer.errors import ConfigError, LogfillError
from indexer.localhost import free_port

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
NODE_MODULES = PROJECT_ROOT / "node_modules"
BUILD_DIR = PROJECT_ROOT / "build" / "demo"
CONTRACTS = ("DemoToken", "DemoNFT", "DemoItems")

CHAIN_ID = 31337
# anvil's default mnemonic gives these unlocked, funded accounts.
DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
TOKEN_SUPPLY = 10**27
TRANSFERS_PER_ACTIVE_BLOCK = (1, 8)  # a batchTransfer of this many recipients
BLOCKS_PER_ACTIVE_BLOCK = 10  # one block with transactions, then empty ones

_SOLC_SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
}

# Standard-JSON in on stdin, out on stdout; imports are read from node_modules.
_SOLC_DRIVER = """
const solc = require(process.argv[1]);
const fs = require("fs");
const path = require("path");
const modules = process.argv[2];
function findImports(name) {
  try { return { contents: fs.readFileSync(path.join(modules, name), "utf8") }; }
  catch (e) { return { error: "not found in node_modules: " + name }; }
}
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d) => { input += d; });
process.stdin.on("end", () => {
  process.stdout.write(solc.compile(input, { import: findImports }));
});
"""


class ChainError(LogfillError):
    """The demo chain could not be set up."""


def _tools_missing(what: Path) -> ConfigError:
    return ConfigError(
        f"{what} not found: the demo's chain tools come from npm; "
        f"run `make node_modules/.installed` (or `npm ci`) in {PROJECT_ROOT}"
    )


# --------------------------------------------------------------------------- JSON-RPC


def rpc(client: httpx.Client, url: str, method: str, params: Sequence[Any] = ()) -> Any:
    """One JSON-RPC call; its `result`, or ChainError."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    answer = client.post(url, json=body).raise_for_status().json()
    if "error" in answer:
        raise ChainError(f"{method}: {answer['error']}")
    return answer["result"]


def rpc_batch(client: httpx.Client, url: str, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
    """A JSON-RPC batch; results in call order, ChainError on the first error."""
    payload = [
        {"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)
    ]
    by_id = {item["id"]: item for item in client.post(url, json=payload).raise_for_status().json()}
    for i, (method, _) in enumerate(calls):
        if "error" in by_id[i]:
            raise ChainError(f"{method}: {by_id[i]['error']}")
    return [by_id[i]["result"] for i in range(len(calls))]


def local_client(timeout: float = 30.0) -> httpx.Client:
    return httpx.Client(timeout=timeout, trust_env=False)


# --------------------------------------------------------------------------- compile


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str


def _package_version(path: Path) -> str:
    package = path / "package.json"
    if not package.is_file():
        raise _tools_missing(path)
    version: str = json.loads(package.read_text())["version"]
    return version


def compile_contracts() -> dict[str, Artifact]:
    """DemoToken, DemoNFT and DemoItems compiled offline with solcjs, cached in build/demo/."""
    sources = {f"{name}.sol": (CONTRACTS_DIR / f"{name}.sol").read_text() for name in CONTRACTS}
    versions = [
        _package_version(NODE_MODULES / "solc"),
        _package_version(NODE_MODULES / "@openzeppelin" / "contracts"),
    ]
    key = hashlib.sha256(
        json.dumps([sources, versions, _SOLC_SETTINGS], sort_keys=True).encode()
    ).hexdigest()[:16]
    cached = BUILD_DIR / f"contracts-{key}.json"
    if not cached.is_file():
        _write_atomically(cached, _run_solc(sources))
    built = json.loads(cached.read_text())
    return {name: Artifact(name, **built[name]) for name in CONTRACTS}


def _run_solc(sources: dict[str, str]) -> dict[str, dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        raise ConfigError("`node` is not on PATH: the demo compiles its contracts with solcjs")
    std_input = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": _SOLC_SETTINGS,
    }
    proc = subprocess.run(
        [node, "-e", _SOLC_DRIVER, str(NODE_MODULES / "solc"), str(NODE_MODULES)],
        input=json.dumps(std_input),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if proc.returncode != 0:
        raise ChainError(f"solcjs failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    out = json.loads(proc.stdout)
    errors = [e["formattedMessage"] for e in out.get("errors", []) if e["severity"] == "error"]
    if errors:
        raise ChainError("the demo contracts do not compile:\n" + "\n".join(errors))
    return {
        name: {
            "abi": out["contracts"][f"{name}.sol"][name]["abi"],
            "bytecode": "0x" + out["contracts"][f"{name}.sol"][name]["evm"]["bytecode"]["object"],
        }
        for name in CONTRACTS
    }


def _write_atomically(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path)  # parallel runs never read half a file


# --------------------------------------------------------------------------- anvil


class Anvil:
    """A private anvil on 127.0.0.1 for as long as the `with` block lasts.

    On `port`, or a free port when none is given. It runs in its own session, so
    that Ctrl-C reaches the demo, which stops it (SIGTERM, then SIGKILL) on the
    way out, whatever happened.
    """

    def __init__(self, startup_timeout: float = 30.0, port: int | None = None) -> None:
        self.startup_timeout = startup_timeout
        self.port = port
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Anvil:
        binary = NODE_MODULES / ".bin" / "anvil"
        if not os.access(binary, os.X_OK):
            raise _tools_missing(binary)
        port = free_port() if self.port is None else _unused_port(self.port)
        self.url = f"http://127.0.0.1:{port}"
        options = ["--host", "127.0.0.1", "--port", str(port), "--chain-id", str(CHAIN_ID)]
        self.proc = subprocess.Popen(
            [str(binary), "--silent", *options],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        with local_client(timeout=1.0) as client:
            while True:
                if self.proc.poll() is not None:
                    raise ChainError(f"anvil exited with code {self.proc.returncode}")
                try:
                    rpc(client, self.url, "eth_chainId")
                    return
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise ChainError(f"anvil did not answer at {self.url}") from None
                    time.sleep(0.02)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process_group(proc)


def _unused_port(port: int) -> int:
    """`port`, when nothing listens on it: else another node would answer in anvil's place."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no listener
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(
                f"cannot start anvil on 127.0.0.1:{port}: {exc.strerror or exc} "
                "(another node running? choose a port with --port)"
            ) from None
    return port


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the child's session, SIGKILL it if it lingers, and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# --------------------------------------------------------------------------- history


@dataclass(frozen=True)
class Deployed:
    token: str
    nft: str
    items: str
    block: int  # the block of the first deployment


@dataclass(frozen=True)
class History:
    first_block: int
    last_block: int
    token_transfers: int  # Transfer events of the ERC-20, the constructor's mint included
    nft_mints: int
    item_mints: int


def _calldata(signature: str, types: list[str], args: list[Any]) -> str:
    return "0x" + (keccak(text=signature)[:4] + abi_encode(types, args)).hex()


def _wait_receipt(client: httpx.Client, url: str, tx_hash: str) -> dict[str, Any]:
    for _ in range(200):
        receipt: dict[str, Any] | None = rpc(client, url, "eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            if int(receipt["status"], 16) != 1:
                raise ChainError(f"transaction {tx_hash} reverted")
            return receipt
        time.sleep(0.05)
    raise ChainError(f"no receipt for {tx_hash}")


def deploy(url: str, artifacts: dict[str, Artifact]) -> Deployed:
    """The three contracts, deployed from anvil's first dev account (automine)."""
    token_args = abi_encode(["uint256"], [TOKEN_SUPPLY]).hex()
    codes = {
        "DemoToken": artifacts["DemoToken"].bytecode + token_args,
        "DemoNFT": artifacts["DemoNFT"].bytecode,
        "DemoItems": artifacts["DemoItems"].bytecode,
    }
    with local_client() as client:
        receipts = {}
        for name, code in codes.items():
            tx = rpc(client, url, "eth_sendTransaction", [{"from": DEPLOYER, "data": code}])
            receipts[name] = _wait_receipt(client, url, tx)
    address = {n: to_checksum_address(r["contractAddress"]) for n, r in receipts.items()}
    return Deployed(
        token=address["DemoToken"],
        nft=address["DemoNFT"],
        items=address["DemoItems"],
        block=int(receipts["DemoToken"]["blockNumber"], 16),
    )


def _random_address(rng: random.Random) -> str:
    return to_checksum_address(rng.randbytes(20))


def _block_transactions(
    deployed: Deployed, rng: random.Random
) -> tuple[list[tuple[str, str, int]], int]:
    """(to, calldata, gas) of one active block: a batch of token payments, an NFT mint and
    an item mint; and how many token Transfer events they emit."""
    count = rng.randint(*TRANSFERS_PER_ACTIVE_BLOCK)
    recipients = [_random_address(rng) for _ in range(count)]
    amounts = [rng.randint(1, 10**21) for _ in range(count)]
    batch = _calldata(
        "batchTransfer(address[],uint256[])", ["address[]", "uint256[]"], [recipients, amounts]
    )
    nft = _calldata("mint(address)", ["address"], [_random_address(rng)])
    items = _calldata(
        "mint(address,uint256,uint256)",
        ["address", "uint256", "uint256"],
        [_random_address(rng), rng.randint(1, 5), rng.randint(1, 100)],
    )
    txs = [
        (deployed.token, batch, 80_000 + 40_000 * count),
        (deployed.nft, nft, 200_000),
        (deployed.items, items, 200_000),
    ]
    return txs, count


def make_history(url: str, deployed: Deployed, blocks: int, *, seed: int = 7) -> History:
    """About `blocks` blocks of transfers, in seconds: automining off, each active block's
    transactions sent as one JSON-RPC batch with explicit nonces and gas, then one
    `anvil_mine` that mines them and the empty blocks after them."""
    rng = random.Random(seed)
    active = max(1, blocks // BLOCKS_PER_ACTIVE_BLOCK)
    transfers = 1  # the constructor's mint
    with local_client() as client:
        first = int(rpc(client, url, "eth_blockNumber"), 16) + 1
        nonce = int(rpc(client, url, "eth_getTransactionCount", [DEPLOYER, "pending"]), 16)
        rpc(client, url, "evm_setAutomine", [False])
        try:
            for _ in range(active):
                txs, count = _block_transactions(deployed, rng)
                calls: list[tuple[str, list[Any]]] = []
                for to, data, gas in txs:
                    tx = {
                        "from": DEPLOYER,
                        "to": to,
                        "data": data,
                        "gas": hex(gas),
                        "nonce": hex(nonce),
                    }
                    calls.append(("eth_sendTransaction", [tx]))
                    nonce += 1
                rpc_batch(client, url, calls)
                rpc(client, url, "anvil_mine", [hex(BLOCKS_PER_ACTIVE_BLOCK)])
                transfers += count
        finally:
            rpc(client, url, "evm_setAutomine", [True])
        last = int(rpc(client, url, "eth_blockNumber"), 16)
        history = History(first, last, transfers, active, active)
        _check_history(client, url, deployed, history)
    return history


def count_transfers(client: httpx.Client, url: str, token: str, low: int, high: int) -> int:
    """The token's Transfer events in [low, high], as the node reports them."""
    flt = {
        "fromBlock": hex(low),
        "toBlock": hex(high),
        "address": token,
        "topics": [TRANSFER_TOPIC],
    }
    return len(rpc(client, url, "eth_getLogs", [flt]))


def _check_history(client: httpx.Client, url: str, deployed: Deployed, history: History) -> None:
    """Every transaction landed: the node holds exactly the Transfer events we sent."""
    found = count_transfers(client, url, deployed.token, 0, history.last_block)
    if found != history.token_transfers:
        raise ChainError(
            f"expected {history.token_transfers} token transfers on chain, found {found}"
        )


# --------------------------------------------------------------------------- together


@dataclass(frozen=True)
class LocalChain:
    """anvil with the three contracts deployed and their history mined."""

    url: str
    pid: int
    deployed: Deployed
    history: History


@contextmanager
def local_chain(
    blocks: int, progress: Callable[[str], None], *, port: int | None = None
) -> Iterator[LocalChain]:
    """Compile, start anvil, deploy, mine about `blocks` blocks; anvil stops with the block.

    The deployer's first transactions put the contracts at the same addresses on
    every fresh anvil (DemoToken at 0x5FbDB2315678afecb367f032d93F642f64180aa3).
    """
    progress("compiling DemoToken, DemoNFT, DemoItems (OpenZeppelin, solcjs)")
    artifacts = compile_contracts()
    with Anvil(port=port) as anvil:
        deployed = deploy(anvil.url, artifacts)
        progress(f"anvil at {anvil.url}: contracts deployed, mining history")
        history = make_history(anvil.url, deployed, blocks)
        progress(
            f"{history.last_block} blocks, {history.token_transfers} token transfers, "
            f"{history.nft_mints} NFT mints, {history.item_mints} item mints"
        )
        yield LocalChain(anvil.url, anvil.pid, deployed, history)
