"""PostgreSQL: the pool, named queries, migrations, and the embedded server.

- `pool`: the asyncpg pool and `UNAVAILABLE_ERRORS`, the one list of "database unavailable".
- `queries`: named SQL from `sql/*.sql`, called with keyword parameters.
- `migrate`: numbered migrations applied once, in order, under a lock.
- `embedded`: PostgreSQL from PyPI when no LOGFILL_DATABASE_URL is set.
- `admin`: creating and dropping databases (embedded start-up, tests, benchmarks).
"""
