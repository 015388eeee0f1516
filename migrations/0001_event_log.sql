-- The append-only, tenant-partitioned, hash-chained event log: the system's source of truth.
-- Every key starts with org_id so the table can be distributed by tenant (Citus) unchanged.

-- The application's runtime role. It owns nothing, may only read and append the log, and is
-- entered with SET ROLE by the binary (see docs/ARCHITECTURE.md, "Database roles").
-- Roles are cluster-wide and tests migrate many databases at once, so creation tolerates races.
DO $$
BEGIN
    CREATE ROLE xdr_app NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

CREATE TABLE org_heads (
    org_id    uuid PRIMARY KEY,
    last_seq  bigint NOT NULL CHECK (last_seq >= 0),
    last_hash bytea  NOT NULL CHECK (length(last_hash) = 32)
);

CREATE TABLE event_log (
    org_id          uuid        NOT NULL,
    org_seq         bigint      NOT NULL CHECK (org_seq > 0),
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version > 0),
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL,
    hash            bytea       NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (org_id, org_seq),
    UNIQUE (org_id, stream_id, stream_version),
    UNIQUE (org_id, event_id)
) PARTITION BY HASH (org_id);

CREATE TABLE event_log_p0 PARTITION OF event_log FOR VALUES WITH (MODULUS 8, REMAINDER 0);
CREATE TABLE event_log_p1 PARTITION OF event_log FOR VALUES WITH (MODULUS 8, REMAINDER 1);
CREATE TABLE event_log_p2 PARTITION OF event_log FOR VALUES WITH (MODULUS 8, REMAINDER 2);
CREATE TABLE event_log_p3 PARTITION OF event_log FOR VALUES WITH (MODULUS 8, REMAINDER 3);
CREATE TABLE event_log_p4 PARTITION OF event_log FOR VALUES WITH (MODULUS 8, REMAINDER 4);
CREATE TABLE event_log_p5 PARTITION OF event_log FOR VALUES WITH (MODULUS 8, REMAINDER 5);
CREATE TABLE event_log_p6 PARTITION OF event_log FOR VALUES WITH (MODULUS 8, REMAINDER 6);
CREATE TABLE event_log_p7 PARTITION OF event_log FOR VALUES WITH (MODULUS 8, REMAINDER 7);

-- Append-only by construction: no UPDATE, DELETE or TRUNCATE, whoever asks.
CREATE FUNCTION event_log_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'event_log is append-only: % rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER event_log_append_only
    BEFORE UPDATE OR DELETE ON event_log
    FOR EACH ROW EXECUTE FUNCTION event_log_reject_change();

CREATE TRIGGER event_log_no_truncate
    BEFORE TRUNCATE ON event_log
    FOR EACH STATEMENT EXECUTE FUNCTION event_log_reject_change();

GRANT USAGE ON SCHEMA public TO xdr_app;
GRANT SELECT, INSERT ON event_log TO xdr_app;
GRANT SELECT, INSERT, UPDATE ON org_heads TO xdr_app;
