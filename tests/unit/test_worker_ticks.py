"""The worker's clock: APScheduler ticks each chain; a tick starts a window unless the
chain's previous window still runs. A window longer than a tick is normal under load:
it must not overlap the next one, nor produce a warning per tick it outlasts, and the
next starts as soon as it ends. A wake-up (a request became runnable) starts a window
at once, or right after the one running."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from indexer import worker
from indexer.settings import ChainSettings, Settings

TICK = 0.1


def settings() -> Settings:
    chain = ChainSettings.model_validate({"rpc_url": "http://127.0.0.1:9", "tick_seconds": TICK})
    return Settings(_env_file=None, chains={1: chain}, maintenance_interval_seconds=60)  # type: ignore[call-arg]


class SlowWindows:
    """Stands in for `run_window`: records when each window ran, takes `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.spans: list[tuple[float, float]] = []
        self.follows: list[bool] = []

    async def __call__(self, *_: Any, follow: bool = False) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.follows.append(follow)
        await asyncio.sleep(self.seconds)
        self.spans.append((started, loop.time()))


async def run_for(seconds: float, window: SlowWindows, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "run_window", window)
    config = settings()
    windows = worker.ChainWindows(pool=None, settings=config, worker="w")  # type: ignore[arg-type]
    scheduler = worker.build_scheduler(config, None, windows=windows)  # type: ignore[arg-type]
    scheduler.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        scheduler.shutdown(wait=False)
        await windows.stop()


async def test_a_window_longer_than_a_tick_is_not_overlapped_nor_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    slow = SlowWindows(seconds=3.5 * TICK)
    with caplog.at_level(logging.DEBUG, logger="apscheduler"):
        await run_for(12 * TICK, slow, monkeypatch)
    assert len(slow.spans) >= 2
    for (_, before_end), (after_start, _) in zip(slow.spans, slow.spans[1:], strict=False):
        assert after_start >= before_end  # one window of a chain at a time
        assert after_start - before_end <= TICK / 2  # and the next as soon as it ends
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [], [r.getMessage() for r in warnings]


async def test_short_windows_run_on_every_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    quick = SlowWindows(seconds=TICK / 5)
    await run_for(10 * TICK, quick, monkeypatch)
    assert len(quick.spans) >= 9  # the first right away, then one a tick


async def test_stopping_cancels_a_window_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    endless = SlowWindows(seconds=3600)
    monkeypatch.setattr(worker, "run_window", endless)
    windows = worker.ChainWindows(pool=None, settings=settings(), worker="w")  # type: ignore[arg-type]
    await windows.tick(1)
    await windows.tick(1)  # the first still runs: nothing more is started
    assert len(windows.running) == 1
    task = windows.running[1]
    await windows.stop()
    assert task.cancelled() and endless.spans == []


async def test_a_wake_up_starts_a_window_at_once_and_wakes_meanwhile_make_one_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow = SlowWindows(seconds=TICK)
    monkeypatch.setattr(worker, "run_window", slow)
    windows = worker.ChainWindows(pool=None, settings=settings(), worker="w")  # type: ignore[arg-type]
    windows.wake(1)
    windows.wake(2)  # a chain this worker does not serve: nothing
    await asyncio.sleep(TICK / 10)
    assert slow.follows == [True]  # at once, as a follower of the tick
    for _ in range(5):
        windows.wake(1)  # while it runs: remembered once
    await asyncio.sleep(3 * TICK)
    assert slow.follows == [True, True] and len(slow.spans) == 2
    (_, first_end), (second_start, _) = slow.spans
    assert second_start - first_end < TICK / 2
    await windows.stop()
