-- Migrations: the record of applied files, and the lock migrators share.
-- Blocks: `-- name(parameters) --`, a description, the query (docs/architecture.md).

-- migration_lock --
-- Serialise migrators: waits for the lock, released at commit or rollback.
SELECT pg_advisory_xact_lock(hashtext('logfill.migrate'));

-- create_migrations_table --
-- The record of applied migrations, with the checksum of each file.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- migrations_table_exists --
-- Whether any migration was ever applied here.
SELECT to_regclass('schema_migrations') IS NOT NULL;

-- list_applied_migrations --
-- Applied migrations in order.
SELECT version, name, checksum FROM schema_migrations ORDER BY version;

-- record_migration(version, name, checksum) --
-- Remember one applied migration.
INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3);
