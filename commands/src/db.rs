//! Connecting to PostgreSQL. Three kinds of connection, each from its own login:
//!
//! * the **owner** (`XDR_MIGRATE_DATABASE_URL`): migrations and the operator's tools;
//! * the **API** login, a member of `xdr_api`: sees one org per transaction (`app.org_id`) in
//!   every table it can read, the event log included;
//! * the **worker** login, a member of `xdr_worker`: the background roles, across orgs.
//!
//! A runtime pool refuses a login that could do more than its group: a superuser, a role with
//! BYPASSRLS or CREATEROLE, or one that owns (or can become the owner of) the schema or the
//! database. Then `RESET ROLE` gains nothing, and neither does any other statement a foothold
//! in the process could send (see docs/ARCHITECTURE.md, "Trust boundaries").

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgConnection, PgPool, Postgres, Row, Transaction};
use std::str::FromStr;
use std::time::Duration;
use xdr_domain::ids::OrgId;

/// The NOLOGIN group of the HTTP API's login (migration 0017).
pub const API_ROLE: &str = "xdr_api";
/// The NOLOGIN group of the background roles' login (migration 0017).
pub const WORKER_ROLE: &str = "xdr_worker";

/// Embedded migrations from the workspace's `migrations/` folder.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Which runtime group a pool's login must belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeRole {
    Api,
    Worker,
}

impl RuntimeRole {
    pub fn group(self) -> &'static str {
        match self {
            RuntimeRole::Api => API_ROLE,
            RuntimeRole::Worker => WORKER_ROLE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the database URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(#[source] sqlx::Error),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "database login {login:?} must not run as {group}: {}. Create a login that owns nothing \
         and is a member of {group} only (docs/OPERATIONS.md, \"Database logins\")",
        problems.join("; ")
    )]
    Privileged { login: String, group: &'static str, problems: Vec<String> },
}

pub fn connect_options(database_url: &str) -> Result<PgConnectOptions, DbError> {
    PgConnectOptions::from_str(database_url).map_err(DbError::BadUrl)
}

/// Which server of a URL's host list a pool may use (libpq's `target_session_attrs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSession {
    /// The first host that answers (`any`, the default).
    Any,
    /// The first host that accepts writes: not a standby in recovery, not read-only by
    /// default (`read-write`, or `primary`).
    ReadWrite,
}

/// A database URL that may name several hosts, as libpq allows:
/// `postgres://login@db-a:5432,db-b:5432/xdr?target_session_attrs=read-write`. sqlx parses
/// one host only, so the list is taken apart here: every host shares the login, database
/// and parameters of the URL, and a pool made from a target follows the writable one (see
/// [`runtime_pool`]: a primary that stops and a standby promoted in its place).
#[derive(Debug, Clone)]
pub struct DbTarget {
    /// Options of the first host; [`DbTarget::at`] gives any other's.
    pub options: PgConnectOptions,
    pub hosts: Vec<(String, u16)>,
    pub session: TargetSession,
}

impl DbTarget {
    pub fn parse(url: &str) -> Result<DbTarget, DbError> {
        let bad = |why: String| DbError::BadUrl(sqlx::Error::Configuration(why.into()));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme (postgres://...)".into()))?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let (userinfo, host_list) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let mut hosts = Vec::new();
        for host in host_list.split(',') {
            hosts.push(parse_host(host).map_err(|why| bad(format!("host {host:?}: {why}")))?);
        }
        // `target_session_attrs` is ours to apply; sqlx would only warn that it ignores it.
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let mut session = TargetSession::Any;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("target_session_attrs", value)) => {
                    session = match value {
                        "any" => TargetSession::Any,
                        "read-write" | "primary" => TargetSession::ReadWrite,
                        other => {
                            return Err(bad(format!(
                                "target_session_attrs={other} is not supported: the roles write, \
                                 use read-write (or any)"
                            )))
                        }
                    }
                }
                _ => kept.push(pair),
            }
        }
        let (first_host, first_port) = &hosts[0];
        let host = if first_host.contains(':') { format!("[{first_host}]") } else { first_host.clone() };
        let mut single = format!("{scheme}://");
        if let Some(userinfo) = userinfo {
            single.push_str(userinfo);
            single.push('@');
        }
        single.push_str(&format!("{host}:{first_port}{path}"));
        if !kept.is_empty() {
            single.push('?');
            single.push_str(&kept.join("&"));
        }
        let options = connect_options(&single)?;
        Ok(DbTarget { options, hosts, session })
    }

    /// The options of host `i` of the list.
    pub fn at(&self, i: usize) -> PgConnectOptions {
        let (host, port) = &self.hosts[i];
        self.options.clone().host(host).port(*port)
    }

    /// One host, any session: a pool as sqlx makes it, with nothing to follow.
    fn is_single(&self) -> bool {
        self.hosts.len() == 1 && self.session == TargetSession::Any
    }

    /// The index of the first host that answers and suits the session; otherwise why not,
    /// host by host.
    pub async fn probe(&self) -> Result<usize, String> {
        let mut failures = Vec::new();
        for i in 0..self.hosts.len() {
            let (host, port) = &self.hosts[i];
            match tokio::time::timeout(PROBE_TIMEOUT, suits(&self.at(i), self.session)).await {
                Ok(Ok(true)) => return Ok(i),
                Ok(Ok(false)) => failures.push(format!("{host}:{port} is read-only (a standby?)")),
                Ok(Err(e)) => failures.push(format!("{host}:{port}: {e}")),
                Err(_) => failures.push(format!("{host}:{port}: no answer within {PROBE_TIMEOUT:?}")),
            }
        }
        Err(failures.join("; "))
    }
}

impl From<&PgConnectOptions> for DbTarget {
    fn from(options: &PgConnectOptions) -> Self {
        let hosts = vec![(options.get_host().to_owned(), options.get_port())];
        DbTarget { options: options.clone(), hosts, session: TargetSession::Any }
    }
}

impl From<&DbTarget> for DbTarget {
    fn from(target: &DbTarget) -> Self {
        target.clone()
    }
}

/// `host`, `host:port` or `[v6]:port`; the port defaults to 5432 as in libpq.
fn parse_host(text: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, rest) = v6.split_once(']').ok_or("unclosed [")?;
        (host, rest.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
        None => 5432,
    };
    Ok((host.to_owned(), port))
}

/// How long a probe waits for one host.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a multi-host pool checks that its server is still the writable one.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Whether the server of `options` suits `session` (connects once).
async fn suits(options: &PgConnectOptions, session: TargetSession) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    let mut conn = PgConnection::connect_with(options).await?;
    let ok = writable_enough(&mut conn, session).await?;
    let _ = conn.close().await;
    Ok(ok)
}

async fn writable_enough(conn: &mut PgConnection, session: TargetSession) -> Result<bool, sqlx::Error> {
    if session == TargetSession::Any {
        return Ok(true);
    }
    let read_only: bool =
        sqlx::query_scalar("SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'")
            .fetch_one(&mut *conn)
            .await?;
    Ok(!read_only)
}

/// A pool on `target`, each new connection first switched to `set_role` if given. With
/// several hosts (or `read-write`) the pool starts on the first suitable host, refuses
/// connections to a server that does not suit (a standby), checks a connection before
/// handing it out, and follows the suitable host: a task checks every second and, when the
/// server stops answering or turns read-only, probes the list in order and points new
/// connections at the first suitable host ([`sqlx::Pool::set_connect_options`]). Connections
/// to the old server fail their check and are dropped.
async fn pool_on(target: DbTarget, max_connections: u32, set_role: Option<&'static str>) -> Result<PgPool, DbError> {
    let session = target.session;
    let mut pool_options = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if !writable_enough(conn, session).await? {
                    return Err(sqlx::Error::Protocol("the server is read-only (a standby?): skipped".into()));
                }
                if let Some(group) = set_role {
                    conn.execute(format!("SET ROLE {group}").as_str()).await?;
                }
                Ok(())
            })
        });
    if target.is_single() {
        return pool_options.connect_with(target.options.clone()).await.map_err(DbError::Connect);
    }
    if session == TargetSession::ReadWrite {
        // Instead of sqlx's ping: the same round trip also tells a demoted server.
        pool_options = pool_options
            .test_before_acquire(false)
            .before_acquire(move |conn, _meta| Box::pin(async move { writable_enough(conn, session).await }));
    }
    let current = target.probe().await.map_err(|why| {
        DbError::Connect(sqlx::Error::Configuration(format!("no suitable database host: {why}").into()))
    })?;
    let pool = pool_options.connect_with(target.at(current)).await.map_err(DbError::Connect)?;
    tokio::spawn(follow_writable_host(pool.clone(), target, current));
    Ok(pool)
}

/// Keep `pool`'s new connections on the host that suits its target, until the pool closes.
async fn follow_writable_host(pool: PgPool, target: DbTarget, mut current: usize) {
    while !pool.is_closed() {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let healthy = tokio::time::timeout(PROBE_TIMEOUT, async {
            let mut conn = pool.acquire().await?;
            writable_enough(&mut conn, target.session).await
        })
        .await;
        if matches!(healthy, Ok(Ok(true))) {
            continue;
        }
        match target.probe().await {
            Ok(found) if found != current => {
                let (host, port) = &target.hosts[found];
                tracing::warn!(%host, port, "database failover: new connections go to {host}:{port}");
                pool.set_connect_options(target.at(found));
                current = found;
            }
            Ok(_) => {}
            Err(why) => tracing::warn!(%why, "no suitable database host yet; retrying"),
        }
    }
}

/// Apply all pending migrations as the connecting (owner) role.
pub async fn migrate(options: impl Into<DbTarget>) -> Result<(), DbError> {
    let pool = owner_pool(options, 1).await?;
    MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(())
}

/// The pool of a runtime role: connects as the URL's login, which must be a least-privilege
/// member of `role`'s group ([`check_login`]); otherwise [`DbError::Privileged`].
pub async fn runtime_pool(
    target: impl Into<DbTarget>,
    role: RuntimeRole,
    max_connections: u32,
) -> Result<PgPool, DbError> {
    let pool = owner_pool(target, max_connections).await?;
    let problems = check_login(&pool, role).await.map_err(DbError::Connect)?;
    if !problems.is_empty() {
        let login: String =
            sqlx::query_scalar("SELECT current_user::text").fetch_one(&pool).await.map_err(DbError::Connect)?;
        pool.close().await;
        return Err(DbError::Privileged { login, group: role.group(), problems });
    }
    Ok(pool)
}

/// What the pool's login could do beyond `role`'s group; empty when it is fit to run as it.
pub async fn check_login(pool: &PgPool, role: RuntimeRole) -> Result<Vec<String>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT r.rolsuper, r.rolbypassrls, r.rolcreaterole, \
                EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = $1) \
                  AND pg_has_role(current_user, $1, 'MEMBER') AS in_group, \
                pg_has_role(current_user, d.datdba, 'MEMBER') AS owns_database, \
                EXISTS (SELECT 1 FROM pg_namespace n \
                        WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
                          AND pg_has_role(current_user, n.nspowner, 'MEMBER')) AS owns_schema, \
                EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                        WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
                          AND pg_has_role(current_user, c.relowner, 'MEMBER')) AS owns_tables \
         FROM pg_roles r, pg_database d \
         WHERE r.rolname = current_user AND d.datname = current_database()",
    )
    .bind(role.group())
    .fetch_one(pool)
    .await?;
    let mut problems = Vec::new();
    for (column, problem) in [
        ("rolsuper", "it is a superuser"),
        ("rolbypassrls", "it has BYPASSRLS"),
        ("rolcreaterole", "it has CREATEROLE (and could grant itself the owner's role)"),
        ("owns_database", "it owns (or can become the owner of) the database"),
        ("owns_schema", "it owns (or can become the owner of) a schema"),
        ("owns_tables", "it owns (or can become the owner of) tables"),
    ] {
        if row.try_get::<bool, _>(column)? {
            problems.push(problem.to_owned());
        }
    }
    if !row.try_get::<bool, _>("in_group")? {
        problems.push(format!("it is not a member of {}", role.group()));
    }
    Ok(problems)
}

/// A pool that connects as the URL's login and switches every connection to `role`'s group
/// with `SET ROLE`. **Not a security boundary** (`RESET ROLE` undoes it): for the scratch
/// databases of `bench`, and for `XDR_DEV_SINGLE_DB_LOGIN` development setups only.
pub async fn set_role_pool(
    target: impl Into<DbTarget>,
    role: RuntimeRole,
    max_connections: u32,
) -> Result<PgPool, DbError> {
    pool_on(target.into(), max_connections, Some(role.group())).await
}

/// A pool that keeps the connecting role: for migrations, audits and the operator's tools
/// (`rebuild` truncates read models; `verify` must work even if the runtime grants were
/// tampered with).
pub async fn owner_pool(target: impl Into<DbTarget>, max_connections: u32) -> Result<PgPool, DbError> {
    pool_on(target.into(), max_connections, None).await
}

/// Begin a transaction scoped to one org: row-level security then shows (and lets it write)
/// only that org's rows, for the API's login in every table, for every login in read models.
pub async fn begin_org_tx(pool: &PgPool, org: OrgId) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    set_org(&mut tx, org).await?;
    Ok(tx)
}

/// Scope the current transaction of `conn` to `org` (must be inside a transaction: the
/// setting is local to it, so a pooled connection carries nothing over to the next user).
pub async fn set_org(conn: &mut PgConnection, org: OrgId) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('app.org_id', $1, true)").bind(org.0.to_string()).execute(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_urls_parse_as_sqlx_parses_them() {
        let target = DbTarget::parse("postgres://xdr:secret@db.internal:6432/xdr?sslmode=require").unwrap();
        assert_eq!(target.hosts, [("db.internal".to_owned(), 6432)]);
        assert_eq!(target.session, TargetSession::Any);
        assert!(target.is_single());
        assert_eq!(target.options.get_username(), "xdr");
        assert_eq!(target.options.get_database(), Some("xdr"));
    }

    #[test]
    fn a_host_list_with_read_write_names_every_host_in_order() {
        let target = DbTarget::parse(
            "postgres://xdr_api@127.0.0.1:5433,127.0.0.1:5434,standby.internal/xdr?target_session_attrs=read-write&application_name=api",
        )
        .unwrap();
        assert_eq!(
            target.hosts,
            [("127.0.0.1".to_owned(), 5433), ("127.0.0.1".to_owned(), 5434), ("standby.internal".to_owned(), 5432)]
        );
        assert_eq!(target.session, TargetSession::ReadWrite);
        assert!(!target.is_single());
        let second = target.at(1);
        assert_eq!((second.get_host(), second.get_port()), ("127.0.0.1", 5434));
        assert_eq!(second.get_username(), "xdr_api");
        assert_eq!(second.get_database(), Some("xdr"));
        assert_eq!(second.get_application_name(), Some("api"));
        let third = target.at(2);
        assert_eq!((third.get_host(), third.get_port()), ("standby.internal", 5432));
    }

    #[test]
    fn ipv6_hosts_and_primary_are_understood() {
        let target = DbTarget::parse("postgresql://u:p@[::1]:5433,[fe80::2]/d?target_session_attrs=primary").unwrap();
        assert_eq!(target.hosts, [("::1".to_owned(), 5433), ("fe80::2".to_owned(), 5432)]);
        assert_eq!(target.session, TargetSession::ReadWrite);
        assert_eq!(target.options.get_port(), 5433);
    }

    #[test]
    fn bad_host_lists_are_refused_with_the_reason() {
        for (url, why) in [
            ("postgres://u@a:1,,b:2/d", "empty host"),
            ("postgres://u@a:x/d", "bad port"),
            ("postgres://u@a:1,b:2/d?target_session_attrs=standby", "not supported"),
            ("a:1/d", "no scheme"),
        ] {
            let err = DbTarget::parse(url).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn a_single_host_any_target_comes_from_connect_options() {
        let options = connect_options("postgres://u@h:7/d").unwrap();
        let target = DbTarget::from(&options);
        assert_eq!(target.hosts, [("h".to_owned(), 7)]);
        assert!(target.is_single());
    }
}
