"""Plain numbered SQL migrations (`migrations/NNNN_name.sql`), applied once, in order.

All pending migrations are applied in one transaction under a transaction-scoped
advisory lock, so processes starting together wait for each other and the work
is done once. Each applied file is recorded with its SHA-256; a database whose
record names a migration this code does not know, or a file that changed after
it was applied, is refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from indexer.db import queries
from indexer.db.pool import Connection
from indexer.errors import MigrationError


def _migrations_dir() -> Path:
    """The repository's migrations/ folder, or its copy inside an installed wheel."""
    package = Path(__file__).resolve().parent.parent  # indexer/
    checkout = package.parent / "migrations"
    return checkout if checkout.is_dir() else package / "_migrations"


MIGRATIONS_DIR = _migrations_dir()
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Read the migration files; a badly named or duplicated one is a packaging bug."""
    if not directory.is_dir():
        raise MigrationError(f"migrations directory not found: {directory}")
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file name must look like 0001_name.sql: {path.name}")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"two migrations share version {version:04d}")
        migrations[version] = Migration(version, match.group(2), path.read_text("utf-8"))
    return [migrations[v] for v in sorted(migrations)]


def pending_migrations(applied: list[AppliedMigration], known: list[Migration]) -> list[Migration]:
    """What still has to run; refuses a database that disagrees with the code."""
    by_version = {m.version: m for m in known}
    for record in applied:
        migration = by_version.get(record.version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {record.label} that this logfill does not know;"
                " run a logfill at least as new as the one that migrated it"
            )
        if migration.checksum != record.checksum:
            raise MigrationError(
                f"migration {migration.label} changed after it was applied"
                f" (recorded sha256 {record.checksum[:12]}, file {migration.checksum[:12]});"
                " add a new migration instead of editing an applied one"
            )
    done = {record.version for record in applied}
    return [m for m in known if m.version not in done]


async def read_applied(conn: Connection) -> list[AppliedMigration]:
    if not await queries.fetchval(conn, "migrations_table_exists"):
        return []
    rows = await queries.fetch(conn, "list_applied_migrations")
    return [AppliedMigration(r["version"], r["name"], r["checksum"]) for r in rows]


async def migrate(conn: Connection, known: list[Migration]) -> list[Migration]:
    """Apply what is pending; returns the migrations this call applied."""
    async with conn.transaction():
        await queries.execute(conn, "migration_lock")
        await queries.execute(conn, "create_migrations_table")
        pending = pending_migrations(await read_applied(conn), known)
        for migration in pending:
            await conn.execute(migration.sql)
            await queries.execute(
                conn,
                "record_migration",
                version=migration.version,
                name=migration.name,
                checksum=migration.checksum,
            )
    return pending


async def check_current(conn: Connection, known: list[Migration]) -> list[Migration]:
    """Pending migrations without applying any (for readiness); raises on a mismatch."""
    return pending_migrations(await read_applied(conn), known)
