-- Response read models: every containment action as analysts see it, the blocks in force
-- (what an agent re-syncs from), and the scheduler's queue of actions that are due.

CREATE TABLE rm_actions (
    org_id          uuid        NOT NULL,
    action_id       uuid        NOT NULL,
    incident_id     uuid,
    kind            text        NOT NULL,
    target          text        NOT NULL,
    duration_secs   bigint,
    status          text        NOT NULL,
    automatic       boolean     NOT NULL,
    needs_approval  boolean     NOT NULL,
    policy_id       uuid,
    policy_name     text,
    follows         uuid,
    requested_by    uuid,
    decided_by      uuid,
    attempts        integer     NOT NULL DEFAULT 0,
    deadline        timestamptz,
    expires_at      timestamptz,
    detail          text,
    requested_at    timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    last_seq        bigint      NOT NULL,
    PRIMARY KEY (org_id, action_id)
);
CREATE INDEX rm_actions_recent ON rm_actions (org_id, requested_at DESC, action_id DESC);
CREATE INDEX rm_actions_incident ON rm_actions (org_id, incident_id);

CREATE TABLE rm_active_blocks (
    org_id      uuid        NOT NULL,
    action_id   uuid        NOT NULL,
    ip          text        NOT NULL,
    incident_id uuid,
    since       timestamptz NOT NULL,
    expires_at  timestamptz,
    PRIMARY KEY (org_id, action_id)
);
CREATE INDEX rm_active_blocks_ip ON rm_active_blocks (org_id, ip);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['rm_actions', 'rm_active_blocks'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I '
            'USING (org_id = NULLIF(current_setting(''app.org_id'', true), '''')::uuid) '
            'WITH CHECK (org_id = NULLIF(current_setting(''app.org_id'', true), '''')::uuid)', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO xdr_app', t);
    END LOOP;
END
$$;

-- The scheduler works across orgs, so its queue is a system table without RLS: it holds only
-- ids and times, never tenant content. One row per action that is due for something:
-- `dispatch` (approved, not yet sent), `deadline` (sent, no answer yet), `expiry` (a timed
-- block in force). The scheduler acts on rows with due_at <= now; the aggregate decides.
CREATE TABLE action_schedule (
    org_id    uuid        NOT NULL,
    action_id uuid        NOT NULL,
    due_at    timestamptz NOT NULL,
    reason    text        NOT NULL CHECK (reason IN ('dispatch', 'deadline', 'expiry')),
    PRIMARY KEY (org_id, action_id)
);
CREATE INDEX action_schedule_due ON action_schedule (due_at);
GRANT SELECT, INSERT, UPDATE, DELETE ON action_schedule TO xdr_app;

-- Agent keys. An agent presents only its key, so (like ingest keys) a global lookup by the
-- key's SHA-256, written in the same transaction as AgentKeyCreated / AgentKeyRevoked.
CREATE TABLE agent_key_lookup (
    key_hash   bytea PRIMARY KEY,
    org_id     uuid NOT NULL,
    key_id     uuid NOT NULL UNIQUE,
    revoked_at timestamptz NULL
);
GRANT SELECT, INSERT, UPDATE ON agent_key_lookup TO xdr_app;

-- Agent keys as an admin sees them (never the key, never its digest).
CREATE TABLE rm_agent_keys (
    org_id     uuid        NOT NULL,
    key_id     uuid        NOT NULL,
    name       text        NOT NULL,
    prefix     text        NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz,
    last_seq   bigint      NOT NULL,
    PRIMARY KEY (org_id, key_id)
);
ALTER TABLE rm_agent_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE rm_agent_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rm_agent_keys
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE ON rm_agent_keys TO xdr_app;
