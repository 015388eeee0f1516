-- Ingest keys as an admin sees them: name, display prefix, when created and revoked. Never
-- the key and never its digest (the digest lives only in the write-side lookup table).
CREATE TABLE rm_ingest_keys (
    org_id     uuid        NOT NULL,
    key_id     uuid        NOT NULL,
    name       text        NOT NULL,
    prefix     text        NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz,
    last_seq   bigint      NOT NULL,
    PRIMARY KEY (org_id, key_id)
);

ALTER TABLE rm_ingest_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE rm_ingest_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY rm_ingest_keys_tenant ON rm_ingest_keys
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE ON rm_ingest_keys TO xdr_app;
