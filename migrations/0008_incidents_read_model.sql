-- Incidents as analysts see them, and each incident's timeline (detection, evidence,
-- escalations, status changes with their actor). Keys start with org_id; RLS as every
-- read model.
CREATE TABLE rm_incidents (
    org_id       uuid        NOT NULL,
    incident_id  uuid        NOT NULL,
    src_ip       text        NOT NULL,
    status       text        NOT NULL,
    severity     text        NOT NULL,
    severity_rank integer    NOT NULL,
    category     text        NOT NULL,
    risk_score   double precision NOT NULL,
    confidence   double precision NOT NULL,
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    event_count  integer     NOT NULL,
    evidence     bigint[]    NOT NULL,
    reason       text        NOT NULL,
    rule_ids     text[]      NOT NULL,
    techniques   text[]      NOT NULL,
    top_features jsonb       NOT NULL,
    model        jsonb,
    opened_at    timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    last_seq     bigint      NOT NULL,
    PRIMARY KEY (org_id, incident_id)
);
CREATE INDEX rm_incidents_activity ON rm_incidents (org_id, last_seen DESC, incident_id DESC);

CREATE TABLE rm_incident_timeline (
    org_id      uuid        NOT NULL,
    org_seq     bigint      NOT NULL,
    incident_id uuid        NOT NULL,
    at          timestamptz NOT NULL,
    kind        text        NOT NULL,
    actor       text,
    detail      jsonb       NOT NULL,
    PRIMARY KEY (org_id, org_seq)
);
CREATE INDEX rm_incident_timeline_incident ON rm_incident_timeline (org_id, incident_id, org_seq);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['rm_incidents', 'rm_incident_timeline'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I '
            'USING (org_id = NULLIF(current_setting(''app.org_id'', true), '''')::uuid) '
            'WITH CHECK (org_id = NULLIF(current_setting(''app.org_id'', true), '''')::uuid)', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I TO xdr_app', t);
    END LOOP;
END
$$;
