-- An operator's label for an API key ("ci", "dashboard"), so that the several keys
-- of a workspace can be told apart when one has to be revoked. Keys made before,
-- and the first key of a new workspace, have none.
ALTER TABLE api_keys ADD COLUMN name text CHECK (length(name) BETWEEN 1 AND 200);
