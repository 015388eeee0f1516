-- Read models: disposable projections of the event log, rebuilt by `mini-xdr rebuild`.
-- Every key starts with org_id. Row-level security is the second tenant-isolation layer: a
-- session sees only the rows of the org named by `app.org_id`, which the API and the
-- projector set per transaction with set_config('app.org_id', …, true). Without the setting
-- (or after a transaction that set it locally: the value reverts to '') nothing is visible.

-- Per (projection, org): the last org_seq whose effects are in the read model. Written in the
-- same transaction as the read-model rows. Not tenant data (only positions), and the
-- projector must scan it across orgs to find work, so it has no RLS.
CREATE TABLE projection_checkpoints (
    projection text   NOT NULL,
    org_id     uuid   NOT NULL,
    last_seq   bigint NOT NULL CHECK (last_seq >= 0),
    PRIMARY KEY (org_id, projection)
);

CREATE TABLE rm_organizations (
    org_id     uuid        PRIMARY KEY,
    name       text        NOT NULL,
    slug       text        NOT NULL,
    status     text        NOT NULL,
    created_at timestamptz NOT NULL,
    last_seq   bigint      NOT NULL
);

-- Never a password hash or an invitation token digest.
CREATE TABLE rm_users (
    org_id             uuid        NOT NULL,
    user_id            uuid        NOT NULL,
    email              text        NOT NULL,
    full_name          text        NOT NULL,
    role               text        NOT NULL,
    is_active          boolean     NOT NULL,
    has_password       boolean     NOT NULL,
    invitation_pending boolean     NOT NULL DEFAULT false,
    failed_attempts    integer     NOT NULL DEFAULT 0,
    locked_until       timestamptz,
    created_at         timestamptz NOT NULL,
    last_login         timestamptz,
    last_seq           bigint      NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX rm_users_email ON rm_users (org_id, email);

CREATE TABLE rm_user_sessions (
    org_id          uuid        NOT NULL,
    session_id      uuid        NOT NULL,
    user_id         uuid        NOT NULL,
    started_at      timestamptz NOT NULL,
    last_rotated_at timestamptz,
    rotations       integer     NOT NULL DEFAULT 0,
    reuse_detected  boolean     NOT NULL DEFAULT false,
    revoked_at      timestamptz,
    revoke_reason   text,
    last_seq        bigint      NOT NULL,
    PRIMARY KEY (org_id, session_id)
);
CREATE INDEX rm_user_sessions_user ON rm_user_sessions (org_id, user_id, started_at);

-- Normalized telemetry. `timestamp` is the record's own time; `raw` the original record.
CREATE TABLE rm_security_events (
    org_id      uuid        NOT NULL,
    org_seq     bigint      NOT NULL,
    event_id    uuid        NOT NULL,
    "timestamp" timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    source_type text        NOT NULL,
    event_type  text        NOT NULL,
    src_ip      inet,
    src_port    integer,
    dst_ip      inet,
    dst_port    integer,
    protocol    text,
    username    text,
    command     text,
    url         text,
    file_hash   text,
    session_id  text,
    hostname    text,
    message     text,
    raw         jsonb       NOT NULL,
    PRIMARY KEY (org_id, org_seq)
);
CREATE INDEX rm_security_events_time ON rm_security_events (org_id, "timestamp", org_seq);
CREATE INDEX rm_security_events_src ON rm_security_events (org_id, src_ip, "timestamp");

-- Who did what when: every non-telemetry event. `details` is the payload with secrets
-- (password hashes, token digests) removed.
CREATE TABLE rm_audit_log (
    org_id        uuid        NOT NULL,
    org_seq       bigint      NOT NULL,
    event_id      uuid        NOT NULL,
    recorded_at   timestamptz NOT NULL,
    stream_id     text        NOT NULL,
    event_type    text        NOT NULL,
    actor_user_id uuid,
    actor         text,
    request_ip    text,
    details       jsonb       NOT NULL,
    PRIMARY KEY (org_id, org_seq)
);

GRANT SELECT, INSERT, UPDATE ON projection_checkpoints TO xdr_app;

-- The audit view's copy of a payload: every key that names a password, token, secret or a
-- hash (password_hash, token_hash, …) is dropped, at every depth.
CREATE FUNCTION xdr_redact(v jsonb) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN CASE jsonb_typeof(v)
        WHEN 'object' THEN (
            SELECT COALESCE(jsonb_object_agg(key, xdr_redact(value)), '{}'::jsonb)
            FROM jsonb_each(v)
            WHERE NOT (lower(key) LIKE '%hash' OR lower(key) LIKE '%password%'
                       OR lower(key) LIKE '%token%' OR lower(key) LIKE '%secret%'))
        WHEN 'array' THEN (
            SELECT COALESCE(jsonb_agg(xdr_redact(value) ORDER BY ord), '[]'::jsonb)
            FROM jsonb_array_elements(v) WITH ORDINALITY AS e(value, ord))
        ELSE v
    END;
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['rm_organizations', 'rm_users', 'rm_user_sessions', 'rm_security_events', 'rm_audit_log']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        -- NULLIF: a pooled connection whose earlier transaction set the value locally reads
        -- back '' afterwards; '' must mean "no org", not a uuid cast error.
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (org_id = NULLIF(current_setting(''app.org_id'', true), '''')::uuid) '
            'WITH CHECK (org_id = NULLIF(current_setting(''app.org_id'', true), '''')::uuid)', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I TO xdr_app', t);
    END LOOP;
END
$$;
