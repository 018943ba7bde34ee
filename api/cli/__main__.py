"""`python -m api.cli ...` is `logfill ...`: the demo starts its service this way,
with the interpreter it runs on, whatever is on PATH."""

from __future__ import annotations

from api.cli.main import main

if __name__ == "__main__":
    main()
