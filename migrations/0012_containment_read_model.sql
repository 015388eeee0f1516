-- Containment read models: an org's containment policies as admins list them, and its
-- auto-containment switch and safety rails. The `ContainmentPolicies` aggregate decides; these
-- only copy what its events say. A settings row appears with the org's first containment
-- event; until then the API shows the domain defaults.

CREATE TABLE rm_containment_policies (
    org_id      uuid        NOT NULL,
    policy_id   uuid        NOT NULL,
    name        text        NOT NULL,
    priority    integer     NOT NULL,
    enabled     boolean     NOT NULL,
    mode        text        NOT NULL,
    conditions  jsonb       NOT NULL,
    action      jsonb       NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    last_seq    bigint      NOT NULL,
    PRIMARY KEY (org_id, policy_id)
);
-- Listed in evaluation order. Not UNIQUE: an update that moves priorities between two
-- policies lands as two events, and the aggregate already guarantees uniqueness.
CREATE INDEX rm_containment_policies_order ON rm_containment_policies (org_id, priority, policy_id);

CREATE TABLE rm_containment_settings (
    org_id                     uuid    PRIMARY KEY,
    auto_containment           boolean NOT NULL,
    protected_ranges           text[]  NOT NULL,
    allow_private_targets      boolean NOT NULL,
    max_auto_blocks_per_minute integer NOT NULL,
    last_seq                   bigint  NOT NULL
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['rm_containment_policies', 'rm_containment_settings'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I '
            'USING (org_id = NULLIF(current_setting(''app.org_id'', true), '''')::uuid) '
            'WITH CHECK (org_id = NULLIF(current_setting(''app.org_id'', true), '''')::uuid)', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO xdr_app', t);
    END LOOP;
END
$$;
