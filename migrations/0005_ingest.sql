-- Ingest: the global lookup from a presented ingest key to its org, and the relay's
-- per-org checkpoint.

-- A producer presents only its key, so the key must be found without knowing the org: one
-- small global table keyed by the key's SHA-256 (never the plaintext), written in the same
-- transaction as the IngestKeyCreated / IngestKeyRevoked event.
CREATE TABLE ingest_key_lookup (
    key_hash   bytea PRIMARY KEY,
    org_id     uuid NOT NULL,
    key_id     uuid NOT NULL UNIQUE,
    revoked_at timestamptz NULL
);

-- Last org_seq the relay has published (and seen acked by JetStream) per org.
CREATE TABLE relay_checkpoints (
    org_id   uuid PRIMARY KEY,
    last_seq bigint NOT NULL
);

GRANT SELECT, INSERT, UPDATE ON ingest_key_lookup TO xdr_app;
GRANT SELECT, INSERT, UPDATE ON relay_checkpoints TO xdr_app;
