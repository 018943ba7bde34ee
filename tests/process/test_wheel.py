"""The wheel on its own: built by the project's build backend, installed into a fresh
virtualenv, and run from there (working directory outside the checkout) against
PostgreSQL and against the embedded default.

Building takes ~10 s: pip builds with build isolation, as an operator does, and so
fetches the backend pyproject.toml asks for (setuptools>=77, for the SPDX `license`)
from PyPI or pip's cache; the dev virtualenv's own setuptools (Python's bundled 65) is
too old for `--no-build-isolation`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import psutil
import pytest

from indexer.localhost import free_port
from tests.support.processes import wait_ready

CHECKOUT = Path(__file__).resolve().parents[2]
MIGRATIONS = [path.stem for path in sorted((CHECKOUT / "migrations").glob("*.sql"))]
PACKAGES = ("indexer", "api", "demo")
# Top-level folders a build does not read; copying them would only slow the copy down.
NOT_SOURCE = {
    ".git", ".venv", "node_modules", "build", "dist", "logfill.egg-info", ".data",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis",
}  # fmt: skip


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without the developer's settings or import path, plus `settings`."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_") and k not in dropped}
    env.update(LOGFILL_LOG_FORMAT="json", **settings)
    return env


def not_source(folder: str, names: list[str]) -> set[str]:
    """What the copy of the checkout leaves out: NOT_SOURCE at the top, bytecode anywhere."""
    top = NOT_SOURCE if Path(folder) == CHECKOUT else set()
    return {name for name in names if name in top or name == "__pycache__"}


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    @property
    def logfill(self) -> str:
        return str(self.root / "bin" / "logfill")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel --no-deps` of a copy of the checkout: an in-tree build would leave
    build/ and logfill.egg-info behind in it."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(CHECKOUT, source, ignore=not_source)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "dist")]
    built = subprocess.run([*pip, str(source)], env=clean_env(), capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    [found] = (root / "dist").glob("logfill-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A new virtualenv holding the wheel alone, its dependencies borrowed.

    Installing the dependencies from PyPI took 54 s here (pip's cache warm), so the
    dev virtualenv's site-packages is put on sys.path by a plain path line in a .pth
    file. Python does not process the .pth files of a directory added that way, so
    the editable-install finder there (which maps `indexer` and `api` to the
    checkout) stays off. Without pip the virtualenv is made in 0.3 s instead of 9 s;
    the dev pip installs into it (`--python`).
    """
    fresh = Venv(tmp_path_factory.mktemp("venv") / "venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", fresh.root], check=True)
    pip = [sys.executable, "-m", "pip", "--python", fresh.python, "install", "--no-deps", "-q"]
    subprocess.run([*pip, str(wheel)], env=clean_env(), check=True)
    where = [fresh.python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
    site_packages = Path(subprocess.run(where, capture_output=True, text=True).stdout.strip())
    (site_packages / "dev-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return fresh


def test_the_wheel_carries_every_file_of_the_packages_and_the_migrations(wheel: Path) -> None:
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        path.relative_to(CHECKOUT).as_posix()
        for package in PACKAGES
        for path in (CHECKOUT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    expected |= {f"indexer/_migrations/{name}.sql" for name in MIGRATIONS}
    assert expected - in_wheel == set()
    assert {name.split("/")[0] for name in in_wheel} == {*PACKAGES, "logfill-0.1.0.dist-info"}


def test_the_fresh_venv_imports_the_wheel_not_the_checkout(venv: Venv, tmp_path: Path) -> None:
    show = (
        "import api, indexer, indexer.db.migrate as m;"
        "print(api.__file__, indexer.__file__, m.MIGRATIONS_DIR)"
    )
    shown = subprocess.run(
        [venv.python, "-c", show], env=clean_env(), cwd=tmp_path, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    for path in shown.stdout.split():
        assert Path(path).resolve().is_relative_to(venv.root.resolve()), path


def test_migrate_and_the_api_from_the_wheel_on_postgresql(
    venv: Venv, empty_database_url: str, tmp_path: Path
) -> None:
    env = clean_env(LOGFILL_DATABASE_URL=empty_database_url, LOGFILL_DATA_DIR=str(tmp_path / "d"))
    assert migrate(venv, env, tmp_path) == {"applied": MIGRATIONS, "schema_version": MIGRATIONS[-1]}
    with serving(venv, "api", env, tmp_path) as url:
        ready = httpx.get(f"{url}/readyz")
        assert ready.json() == {"status": "ready", "schema_version": MIGRATIONS[-1]}
        assert httpx.get(f"{url}/healthz").status_code == 200
        sign_in = httpx.get(f"{url}/dashboard/sign-in")  # a template, and a static file it names
        assert sign_in.status_code == 200
        css = re.search(r'href="(/dashboard/static/app\.css[^"]*)"', sign_in.text)
        assert css is not None, sign_in.text
        stylesheet = httpx.get(url + css.group(1))
        assert stylesheet.status_code == 200
        assert stylesheet.headers["content-type"].startswith("text/css")


def test_a_worker_from_the_wheel_comes_up_and_stops_on_sigterm(
    venv: Venv, database_url: str, tmp_path: Path
) -> None:
    metrics_port = free_port()
    env = clean_env(
        LOGFILL_DATABASE_URL=database_url,
        LOGFILL_DATA_DIR=str(tmp_path / "data"),
        LOGFILL_CHAINS=json.dumps({"1": {"rpc_url": f"http://127.0.0.1:{free_port()}"}}),
        LOGFILL_WORKER_METRICS_PORT=str(metrics_port),
    )
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [venv.logfill, "worker"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_for_event(log_path, "worker_started", proc)
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert metrics.status_code == 200
        assert "logfill_" in metrics.text
    finally:
        code = stop(proc)
    assert code == 0, log_path.read_text()
    assert "worker_stopped" in events(log_path)


def test_migrate_and_run_from_the_wheel_on_the_embedded_default(venv: Venv, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"  # and no LOGFILL_DATABASE_URL
    env = clean_env(LOGFILL_DATA_DIR=str(data_dir), LOGFILL_WORKER_METRICS_PORT="0")
    assert migrate(venv, env, tmp_path) == {"applied": MIGRATIONS, "schema_version": MIGRATIONS[-1]}
    with serving(venv, "run", env, tmp_path) as url:
        ready = httpx.get(f"{url}/readyz")
        assert ready.json() == {"status": "ready", "schema_version": MIGRATIONS[-1]}
    assert postgres_serving(data_dir / "pgdata") == []


def migrate(venv: Venv, env: dict[str, str], cwd: Path) -> object:
    """What `logfill migrate` printed."""
    done = subprocess.run(
        [venv.logfill, "migrate"], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


@contextmanager
def serving(venv: Venv, command: str, env: dict[str, str], cwd: Path) -> Iterator[str]:
    """`logfill api` or `run` on a free port, ready; it must stop with 0 on SIGTERM."""
    port = free_port()
    log_path = cwd / f"{command}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [venv.logfill, command, "--port", str(port)],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        yield url
    finally:
        code = stop(proc)
    assert code == 0, log_path.read_text()


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"pid {proc.pid} still running 30 s after SIGTERM")


def events(log_path: Path) -> list[str]:
    """The events logged so far (whole lines only: the process may be writing one)."""
    lines = log_path.read_text().split("\n")[:-1]
    return [orjson.loads(line)["event"] for line in lines if line.startswith("{")]


def wait_for_event(
    log_path: Path, event: str, proc: subprocess.Popen[bytes], timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while event not in events(log_path):
        assert proc.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, f"no {event} after {timeout} s: {log_path.read_text()}"
        time.sleep(0.1)


def postgres_serving(pgdata: Path) -> list[int]:
    """PIDs of postgres processes still running on this data folder."""
    return [
        proc.pid
        for proc in psutil.process_iter(["name", "cmdline"])
        if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or [])
    ]
