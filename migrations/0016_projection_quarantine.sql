-- Quarantine: events a projection could not apply because of what they contain (a value
-- PostgreSQL refuses, an undecodable payload). The runner records them here and goes on
-- past them, so one bad event never stops an org's read models; `mini-xdr quarantine retry`
-- (or `rebuild`) projects them again after a fix. Written in the same transaction as the
-- checkpoint that skips the event, so a quarantined event is never lost and never skipped
-- silently. Tenant data (the error may quote the record), so RLS like every read model.
CREATE TABLE projection_quarantine (
    org_id         uuid        NOT NULL,
    projection     text        NOT NULL,
    org_seq        bigint      NOT NULL,
    event_type     text        NOT NULL,
    error          text        NOT NULL,
    -- Informational only: not part of the digest (a rebuild quarantines at another time).
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, projection, org_seq)
);

ALTER TABLE projection_quarantine ENABLE ROW LEVEL SECURITY;
ALTER TABLE projection_quarantine FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON projection_quarantine
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
-- No DELETE: only `quarantine retry` and `rebuild` (schema owner) clear entries.
GRANT SELECT, INSERT ON projection_quarantine TO xdr_app;

-- How many of the org's events each projection has quarantined, kept with the checkpoint
-- (same transaction) so `/metrics` can show a cross-org gauge without reading tenant rows.
ALTER TABLE projection_checkpoints ADD COLUMN quarantined bigint NOT NULL DEFAULT 0 CHECK (quarantined >= 0);
