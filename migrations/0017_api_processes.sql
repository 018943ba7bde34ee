-- The live `logfill api` processes (README, "Rate limits"). Each process writes its
-- row every `api_presence_seconds` and reads how many rows are fresh: a key's rate
-- limit is shared out among that many processes, with no write per request.
CREATE TABLE api_processes (
    id         uuid PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
);
