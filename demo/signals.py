"""How the demo's programs stop: Ctrl-C, `kill` (SIGTERM) and a closing terminal (SIGHUP).

The demo and `--chain-only` start children (anvil, `logfill run`) in sessions of
their own, so that a signal reaches only the demo, which then stops them on its
way out. Until the programs wait for a signal on purpose (`wait_for_signal`),
SIGTERM and SIGHUP raise KeyboardInterrupt like Ctrl-C, so every `with` and
`finally` runs; once stopping, repeats are ignored.
"""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

# Besides Ctrl-C (SIGINT): `kill` and a closing terminal stop the demo too.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def ignore_stop_signals() -> None:
    """The demo is stopping: a repeated SIGTERM or SIGHUP must not cut the clean-up short.

    A closing terminal can send SIGHUP twice (the shell passes it on to its jobs,
    then the kernel sends it to the foreground group); dying on the second one
    would leave anvil, `logfill run` (both in sessions of their own, so the
    terminal does not reach them) and the embedded PostgreSQL running.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _stop_like_ctrl_c(signum: int, frame: FrameType | None) -> None:
    ignore_stop_signals()
    raise KeyboardInterrupt


def stop_like_ctrl_c() -> None:
    """From now on SIGTERM and SIGHUP interrupt the program as Ctrl-C does."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop_like_ctrl_c)


async def wait_for_signal() -> None:
    """Until Ctrl-C, SIGTERM or SIGHUP; later SIGTERM and SIGHUP are then ignored."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    # Taken back from the loop, which would reset them to "die at once" when it closes.
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        loop.remove_signal_handler(signum)
    ignore_stop_signals()
