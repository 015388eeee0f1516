-- The runtime logins of Mini-XDR (docs/OPERATIONS.md, "Database logins"): one for the API,
-- one for the background roles, each a member of its group only and owning nothing. Run it
-- as the schema owner (or a role with CREATEROLE), before or after `mini-xdr migrate`
-- (migration 0017 grants the groups their rights; they are created here too if missing):
--
--   psql "$XDR_MIGRATE_DATABASE_URL" -v ON_ERROR_STOP=1 \
--     -v api_login=mini_xdr_api -v api_password="$API_PASSWORD" \
--     -v worker_login=mini_xdr_worker -v worker_password="$WORKER_PASSWORD" \
--     -f deploy/db-logins.sql
--
-- Idempotent: a second run only sets the passwords again (rotation). New roles get
-- PostgreSQL's defaults (NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS); attributes are not
-- altered here because only a superuser may, and `mini-xdr` refuses at start a login that has
-- any of them or owns anything.
SELECT format('CREATE ROLE %I NOLOGIN', g) FROM unnest(ARRAY['xdr_api', 'xdr_worker']) AS g
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = g) \gexec
SELECT format('CREATE ROLE %I LOGIN', :'api_login')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'api_login') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'worker_login')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'worker_login') \gexec
ALTER ROLE :"api_login" WITH LOGIN PASSWORD :'api_password';
ALTER ROLE :"worker_login" WITH LOGIN PASSWORD :'worker_password';
GRANT xdr_api TO :"api_login";
GRANT xdr_worker TO :"worker_login";
