"""Tests of `logfill` and other processes: kill -9, signals, the demo, the CLI on a live API."""
