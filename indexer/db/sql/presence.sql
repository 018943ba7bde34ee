-- The live API processes: a row each, written every few seconds (rate limits).
-- Blocks: `-- name(parameters) --`, a description, the query (docs/architecture.md).

-- api_process_beat(process_id, fresh_seconds) --
-- This API process is alive. Answers how many are (itself included): those seen
-- within `$2` seconds. Rows silent for ten times that (killed processes) go.
WITH me AS (
    INSERT INTO api_processes (id) VALUES ($1)
    ON CONFLICT (id) DO UPDATE SET seen_at = now()
), gone AS (
    DELETE FROM api_processes
    WHERE seen_at < now() - make_interval(secs => $2::float8 * 10) AND id <> $1
)
SELECT count(*) + 1 FROM api_processes
WHERE seen_at >= now() - make_interval(secs => $2::float8) AND id <> $1;

-- api_process_gone(process_id) --
-- This API process stops: the others take its share at their next beat.
DELETE FROM api_processes WHERE id = $1;
