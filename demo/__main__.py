"""`python -m demo [--keep] [--blocks N]`: the demo as its own program.

`make demo` runs it this way, and `logfill demo` replaces itself with it, so
nothing imports `demo`.
"""

from __future__ import annotations

from demo.run import main

if __name__ == "__main__":
    main()
