"""`python -m demo [--keep | --chain-only [--port P]] [--blocks N]`: the demo as its own
program.

`make demo` and `make chain` run it this way, and `logfill demo` replaces itself
with it, so nothing imports `demo`.
"""

from __future__ import annotations

from demo.run import main

if __name__ == "__main__":
    main()
