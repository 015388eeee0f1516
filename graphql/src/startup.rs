//! Wiring of the HTTP server: one `App` with every route, bound before it runs so port 0 works
//! and the caller learns the real port.

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use sqlx::PgPool;
use std::net::TcpListener;
use std::sync::Arc;
use xdr_commands::auth::IdentityService;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::rate_limit::LoginLimiter;
use crate::routes;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: String,
    /// Login attempts per minute per client address.
    pub login_rate_per_minute: u32,
    /// Use `X-Forwarded-For` as the client address (only behind a trusted proxy such as an ALB).
    pub trust_forwarded_for: bool,
    /// Largest JSON body accepted on the auth routes.
    pub json_limit_bytes: usize,
    /// Largest body accepted on the ingest routes.
    pub ingest_limit_bytes: usize,
    /// Mutations wait this long for the projections to catch up (read your writes); `None`
    /// when no projector runs beside this server (tests that project by hand).
    pub read_your_writes: Option<std::time::Duration>,
    /// Serve HTTPS with this PEM certificate chain and private key (`XDR_TLS_CERT`, `XDR_TLS_KEY`).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// A GraphQL request that runs longer is cancelled with `extensions.code = TIMEOUT`.
    pub query_timeout: std::time::Duration,
    /// GraphQL introspection (GraphiQL needs it; production may switch it off).
    pub introspection: bool,
    /// Sends containment orders at once when an action needs no approval (and serves the
    /// agent gateway's NATS side). `None`: actions wait for the scheduler's sweep, and the
    /// agent routes answer 503.
    pub dispatcher: Option<xdr_commands::response::Dispatcher>,
    /// The built dashboard (`dashboard/dist`) served at `/`, and GraphiQL's page from the same
    /// build. `None` or a folder without `index.html`: `/` says how to build it.
    pub dashboard_dir: Option<std::path::PathBuf>,
    /// What one GraphQL request or WebSocket may cost (docs/ARCHITECTURE.md, "Abuse limits").
    pub graphql: crate::limits::GraphqlLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:8000".into(),
            login_rate_per_minute: 30,
            trust_forwarded_for: false,
            json_limit_bytes: 64 * 1024,
            introspection: true,
            query_timeout: std::time::Duration::from_secs(10),
            tls: None,
            read_your_writes: None,
            ingest_limit_bytes: 10 * 1024 * 1024,
            dispatcher: None,
            dashboard_dir: None,
            graphql: Default::default(),
        }
    }
}

/// Shared by every request.
pub struct AppState {
    pub identity: IdentityService,
    pub ingest_keys: Arc<xdr_commands::ingest_keys::IngestKeyResolver>,
    pub pool: PgPool,
    pub login_limiter: LoginLimiter,
    pub metrics: Arc<Metrics>,
    pub config: ServerConfig,
    /// Shared incident feeds and per-user subscription counts.
    pub(crate) subscriptions: crate::schema::live::SubscriptionHub,
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub fn build(config: ServerConfig, identity: IdentityService, pool: PgPool) -> std::io::Result<Application> {
        let listener = TcpListener::bind(&config.bind)?;
        let port = listener.local_addr()?.port();
        let ingest_keys = Arc::new(xdr_commands::ingest_keys::IngestKeyResolver::new(
            pool.clone(),
            xdr_commands::ingest_keys::IngestKeyResolver::DEFAULT_TTL,
        ));
        let state = web::Data::new(AppState {
            identity,
            ingest_keys,
            pool,
            login_limiter: LoginLimiter::per_minute(config.login_rate_per_minute),
            metrics: Arc::new(Metrics::default()),
            config: config.clone(),
            subscriptions: Default::default(),
        });
        let json_limit = config.json_limit_bytes;
        let schema = web::Data::new(crate::schema::build(config.introspection, &config.graphql).finish());
        let server = HttpServer::new(move || {
            let json_config = web::JsonConfig::default().limit(json_limit).error_handler(|err, _req| {
                let message = match &err {
                    actix_web::error::JsonPayloadError::Overflow { .. }
                    | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => "Request body too large".into(),
                    other => format!("Malformed request body: {other}"),
                };
                ApiError::Unprocessable(message).into()
            });
            App::new()
                .wrap(tracing_actix())
                .app_data(state.clone())
                .app_data(schema.clone())
                .app_data(json_config)
                .configure(routes::configure)
                .default_service(web::to(routes::dashboard::static_or_index))
        });
        let server = match &config.tls {
            Some((cert, key)) => server.listen_rustls_0_23(listener, tls_config(cert, key)?)?,
            None => server.listen(listener)?,
        }
        .run();
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// A span per request (method, path, status) without a dependency of its own.
fn tracing_actix() -> actix_web::middleware::Logger {
    actix_web::middleware::Logger::new("%a \"%r\" %s %Dms").log_target("xdr_http")
}

/// Only `/healthz`, `/readyz` and `/metrics`, for the roles that serve no API (ingestor, relay,
/// projector, detector), so every role answers the same probes on `XDR_BIND`.
pub fn health_server(bind: &str, pool: PgPool) -> std::io::Result<(u16, Server)> {
    let listener = TcpListener::bind(bind)?;
    let port = listener.local_addr()?.port();
    let state = web::Data::new(crate::routes::HealthState { pool, metrics: Arc::new(Metrics::default()) });
    let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(crate::routes::configure_health))
        .workers(1)
        .listen(listener)?
        .run();
    Ok((port, server))
}

/// rustls with the given PEM chain and key; errors name the file.
fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> std::io::Result<rustls::ServerConfig> {
    use std::io::{BufReader, Error, ErrorKind};
    let open = |p: &std::path::Path| {
        std::fs::File::open(p)
            .map(BufReader::new)
            .map_err(|e| Error::new(e.kind(), format!("cannot read {}: {e}", p.display())))
    };
    let certs = rustls_pemfile::certs(&mut open(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::new(ErrorKind::InvalidData, format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(Error::new(ErrorKind::InvalidData, format!("{}: no certificate found", cert.display())));
    }
    let key = rustls_pemfile::private_key(&mut open(key)?)
        .map_err(|e| Error::new(ErrorKind::InvalidData, format!("{}: {e}", key.display())))?
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, format!("{}: no private key found", key.display())))?;
    rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorKind::InvalidData, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::new(ErrorKind::InvalidData, format!("TLS certificate or key rejected: {e}")))
}
