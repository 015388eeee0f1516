-- Least-privilege runtime roles (docs/ARCHITECTURE.md, "Trust boundaries").
--
-- Until now the binary connected as the schema owner and dropped to `xdr_app` with SET ROLE,
-- which any SQL foothold undoes with RESET ROLE. From here on every runtime role connects as
-- a LOGIN role of its own that owns nothing and is a member of one of these NOLOGIN groups;
-- the owner is used only by `migrate` and the operator's tools. RESET ROLE then returns to a
-- login that is as powerless as its group.
--
--   xdr_api     the HTTP API (GraphQL, REST, ingest over HTTP, the agent gateway). Row-level
--               security shows it only the org named by `app.org_id` (set per transaction with
--               set_config(…, true)) in every table it can read, the event log included.
--               Lookups it must make before it knows the org go through the SECURITY DEFINER
--               functions below, which return just the matched row.
--   xdr_worker  the background roles that work across orgs: ingestor, relay, projector,
--               detector, scheduler, anchorer. Sees every org's log, appends to it, keeps its
--               checkpoints; never touches the identity registry (e-mails, slugs) or the key
--               lookups except through the resolver function.
--
-- Neither may UPDATE, DELETE or TRUNCATE the log, and neither owns anything, so neither can
-- ALTER TABLE … DISABLE TRIGGER. Roles are cluster-wide and tests migrate many databases at
-- once, so creation tolerates races (as 0001 does).
DO $$
BEGIN
    CREATE ROLE xdr_api NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

DO $$
BEGIN
    CREATE ROLE xdr_worker NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- The old SET ROLE target keeps nothing: a login left in it by an old deployment can do no
-- more than connect.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM xdr_app;
REVOKE ALL ON SCHEMA public FROM xdr_app;

-- No login may create objects it would then own (PostgreSQL 15 already defaults to this;
-- older clusters do not).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO xdr_api, xdr_worker;

-- The policy every tenant-scoped table shares. NULLIF: a pooled connection whose earlier
-- transaction set the value locally reads back '' afterwards; '' must mean "no org".
-- (Written out in each CREATE POLICY: a policy cannot call a macro.)

-- The log and its heads: the API sees and appends one org; the workers all of them.
ALTER TABLE event_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_heads ENABLE ROW LEVEL SECURITY;
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['event_log', 'org_heads'] LOOP
        EXECUTE format('CREATE POLICY api_one_org ON %I TO xdr_api '
            'USING (org_id = NULLIF(current_setting(''app.org_id'', true), '''')::uuid) '
            'WITH CHECK (org_id = NULLIF(current_setting(''app.org_id'', true), '''')::uuid)', t);
        EXECUTE format('CREATE POLICY worker_all_orgs ON %I TO xdr_worker USING (true) WITH CHECK (true)', t);
    END LOOP;
END
$$;
GRANT SELECT, INSERT ON event_log TO xdr_api, xdr_worker;
GRANT SELECT, INSERT, UPDATE ON org_heads TO xdr_api, xdr_worker;

-- The identity registry and the credential lookups: written by the API in the transaction of
-- the event that claims the name or issues the key, for the org of that transaction only.
-- Found across orgs only through the functions below.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['org_slugs', 'user_emails', 'ingest_key_lookup', 'agent_key_lookup'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY api_one_org ON %I TO xdr_api '
            'USING (org_id = NULLIF(current_setting(''app.org_id'', true), '''')::uuid) '
            'WITH CHECK (org_id = NULLIF(current_setting(''app.org_id'', true), '''')::uuid)', t);
    END LOOP;
END
$$;
GRANT SELECT, INSERT ON org_slugs, user_emails TO xdr_api;
GRANT SELECT, INSERT, UPDATE ON ingest_key_lookup, agent_key_lookup TO xdr_api;

-- Projection checkpoints: the projector's (all orgs); the API reads its org's to wait for
-- its own writes (read-your-writes). Cross-org quarantine counts come from a function.
ALTER TABLE projection_checkpoints ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_one_org ON projection_checkpoints TO xdr_api
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
CREATE POLICY worker_all_orgs ON projection_checkpoints TO xdr_worker USING (true) WITH CHECK (true);
GRANT SELECT ON projection_checkpoints TO xdr_api;
GRANT SELECT, INSERT, UPDATE ON projection_checkpoints TO xdr_worker;

-- System tables of the workers (ids, positions and times only); the API has no grant.
GRANT SELECT, INSERT, UPDATE ON relay_checkpoints TO xdr_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON action_schedule TO xdr_worker;

-- Read models (row-level security FORCEd since they were made, policy `tenant_isolation` for
-- every role): the projector writes them, the API only reads them.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['rm_organizations', 'rm_users', 'rm_user_sessions', 'rm_security_events',
                             'rm_audit_log', 'rm_ingest_keys', 'rm_incidents', 'rm_incident_timeline',
                             'rm_agent_keys', 'projection_quarantine'] LOOP
        EXECUTE format('GRANT SELECT ON %I TO xdr_api', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I TO xdr_worker', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['rm_actions', 'rm_active_blocks', 'rm_containment_policies',
                             'rm_containment_settings'] LOOP
        EXECUTE format('GRANT SELECT ON %I TO xdr_api', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO xdr_worker', t);
    END LOOP;
END
$$;
-- Quarantine entries are cleared only by `quarantine retry` and `rebuild` (the owner).
REVOKE UPDATE ON projection_quarantine FROM xdr_worker;

-- Lookups made before the org is known. Each returns only the row matching the exact value
-- presented (an e-mail address, a key's SHA-256, a slug, a user id from an invitation
-- token), never a list. SECURITY DEFINER runs them as the owner, which row-level security on
-- these tables does not restrict; search_path is pinned so a caller cannot substitute
-- objects.
CREATE FUNCTION xdr_find_user_email(p_email text) RETURNS TABLE (org_id uuid, user_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS
$$ SELECT e.org_id, e.user_id FROM public.user_emails e WHERE e.email = p_email $$;

CREATE FUNCTION xdr_find_user_org(p_user_id uuid) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS
$$ SELECT e.org_id FROM public.user_emails e WHERE e.user_id = p_user_id $$;

CREATE FUNCTION xdr_find_org_slug(p_slug text) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS
$$ SELECT s.org_id FROM public.org_slugs s WHERE s.slug = p_slug $$;

CREATE FUNCTION xdr_find_ingest_key(p_key_hash bytea)
    RETURNS TABLE (key_hash bytea, org_id uuid, key_id uuid, revoked boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS
$$ SELECT k.key_hash, k.org_id, k.key_id, k.revoked_at IS NOT NULL FROM public.ingest_key_lookup k
   WHERE k.key_hash = p_key_hash $$;

CREATE FUNCTION xdr_find_agent_key(p_key_hash bytea)
    RETURNS TABLE (key_hash bytea, org_id uuid, key_id uuid, revoked boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS
$$ SELECT k.key_hash, k.org_id, k.key_id, k.revoked_at IS NOT NULL FROM public.agent_key_lookup k
   WHERE k.key_hash = p_key_hash $$;

-- The `/metrics` gauge: per projection, how many events are quarantined in all orgs (counts
-- only, no tenant rows).
CREATE FUNCTION xdr_quarantine_counts() RETURNS TABLE (projection text, quarantined bigint)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS
$$ SELECT c.projection, sum(c.quarantined)::bigint FROM public.projection_checkpoints c
   GROUP BY c.projection HAVING sum(c.quarantined) > 0 ORDER BY c.projection $$;

REVOKE EXECUTE ON FUNCTION xdr_find_user_email(text), xdr_find_user_org(uuid), xdr_find_org_slug(text),
    xdr_find_ingest_key(bytea), xdr_find_agent_key(bytea), xdr_quarantine_counts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION xdr_find_user_email(text), xdr_find_user_org(uuid), xdr_find_org_slug(text),
    xdr_find_ingest_key(bytea), xdr_find_agent_key(bytea), xdr_quarantine_counts() TO xdr_api;
GRANT EXECUTE ON FUNCTION xdr_find_org_slug(text), xdr_find_ingest_key(bytea), xdr_quarantine_counts()
    TO xdr_worker;
