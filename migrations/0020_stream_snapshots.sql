-- Snapshots of aggregate state: a cache of the fold of a stream's first `version` events, so
-- reading an aggregate costs a lookup plus the events after the snapshot however long the
-- stream grew (a user stream under a password-guessing flood). Never a source of truth: the
-- events up to `version` never change, so any stored snapshot stays correct, a missing or
-- unreadable one is rebuilt from the log, and `kind` names the state's format version so a
-- changed aggregate ignores old snapshots. Holds whole states (password hashes included),
-- so it is as private as the log; per-org, with the read models' row-level security.
CREATE TABLE stream_snapshots (
    org_id    uuid   NOT NULL,
    stream_id text   NOT NULL,
    kind      text   NOT NULL,
    version   bigint NOT NULL CHECK (version > 0),
    state     jsonb  NOT NULL,
    PRIMARY KEY (org_id, stream_id, kind)
);

ALTER TABLE stream_snapshots ENABLE ROW LEVEL SECURITY;
ALTER TABLE stream_snapshots FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON stream_snapshots
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
-- Only the API reads and writes snapshots (identity); the workers never see a user's state.
GRANT SELECT, INSERT, UPDATE ON stream_snapshots TO xdr_api;
