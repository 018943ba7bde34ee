-- What each window paid for its RPC calls, written before the calls go out
-- (docs/architecture.md, "CU accounting"). A window killed mid-way, or cut off by a
-- database outage, leaves here every CU it sent calls for; its audit row in
-- `windows` is filled in from this when the next leader closes it. A row of its own,
-- not `windows`: a commit's transaction holds the window's audit row, and a call
-- must not wait for a commit.
CREATE TABLE window_spend (
    window_id bigint PRIMARY KEY REFERENCES windows (id) ON DELETE CASCADE,
    cu_spent  integer NOT NULL CHECK (cu_spent >= 0),
    calls     integer NOT NULL CHECK (calls >= 0)
);
