//! Wiring of the HTTP server: one `App` with every route, bound before it runs so port 0 works
//! and the caller learns the real port.

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use sqlx::PgPool;
use std::net::TcpListener;
use std::sync::Arc;
use xdr_commands::auth::IdentityService;

use crate::error::ApiError;
use crate::extract::ForwardedFor;
use crate::metrics::Metrics;
use crate::middleware::BodyLimits;
use crate::rate_limit::{ClientLimiter, DEFAULT_MAX_CLIENTS};
use crate::routes;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: String,
    /// Login attempts per minute per client address.
    pub login_rate_per_minute: u32,
    /// Registrations and invitation acceptances (each an argon2 hash) per minute per client.
    pub register_rate_per_minute: u32,
    /// Token refreshes per minute per client.
    pub refresh_rate_per_minute: u32,
    /// Clients each rate limiter tracks at most (see `rate_limit`).
    pub rate_limit_max_clients: usize,
    /// Password-reset requests per minute per client address, and per target address.
    pub password_reset_rate_per_minute: u32,
    /// Where the client address comes from: the socket peer, or the entry our trusted
    /// proxies appended to `X-Forwarded-For` (`XDR_TRUSTED_PROXY_HOPS`).
    pub trust_forwarded_for: ForwardedFor,
    /// Largest request body per route class; larger ones get 413 before they are buffered.
    pub body_limits: BodyLimits,
    /// Origins allowed to call the API from a browser page of theirs; empty: CORS off.
    pub cors_allowed_origins: Vec<String>,
    /// Serve `/readyz` and `/metrics` on this address instead of `bind`, so the public
    /// listener (what the load balancer forwards to) never answers them. `/healthz` stays on
    /// both (the load balancer's health check).
    pub probe_bind: Option<String>,
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
            register_rate_per_minute: 10,
            refresh_rate_per_minute: 60,
            rate_limit_max_clients: DEFAULT_MAX_CLIENTS,
            password_reset_rate_per_minute: 5,
            trust_forwarded_for: ForwardedFor::Ignore,
            body_limits: BodyLimits::default(),
            cors_allowed_origins: Vec::new(),
            probe_bind: None,
            introspection: true,
            query_timeout: std::time::Duration::from_secs(10),
            tls: None,
            read_your_writes: None,
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
    pub login_limiter: ClientLimiter,
    /// `register` and `accept-invite`, REST and GraphQL alike.
    pub register_limiter: ClientLimiter,
    /// `refresh`, REST and GraphQL alike.
    pub refresh_limiter: ClientLimiter,
    /// `forgot-password`, per client address and per target e-mail address (`check_name`).
    pub password_reset_limiter: ClientLimiter,
    pub metrics: Arc<Metrics>,
    pub config: ServerConfig,
    /// Shared incident feeds and per-user subscription counts.
    pub(crate) subscriptions: crate::schema::live::SubscriptionHub,
}

pub struct Application {
    port: u16,
    server: Server,
    /// The listener of `/readyz` and `/metrics` when `probe_bind` is set.
    probes: Option<(u16, Server)>,
}

impl Application {
    pub fn build(config: ServerConfig, identity: IdentityService, pool: PgPool) -> std::io::Result<Application> {
        let listener = TcpListener::bind(&config.bind)?;
        let port = listener.local_addr()?.port();
        let probe_listener = config.probe_bind.as_deref().map(TcpListener::bind).transpose()?;
        let ingest_keys = Arc::new(xdr_commands::ingest_keys::IngestKeyResolver::new(
            pool.clone(),
            xdr_commands::ingest_keys::IngestKeyResolver::DEFAULT_TTL,
        ));
        let clock = identity.clock().clone();
        let max_clients = config.rate_limit_max_clients;
        let limiter = |per_minute| ClientLimiter::per_minute(per_minute, max_clients, clock.clone());
        let state = web::Data::new(AppState {
            identity,
            ingest_keys,
            pool,
            login_limiter: limiter(config.login_rate_per_minute),
            register_limiter: limiter(config.register_rate_per_minute),
            refresh_limiter: limiter(config.refresh_rate_per_minute),
            password_reset_limiter: limiter(config.password_reset_rate_per_minute),
            metrics: Arc::new(Metrics::default()),
            config: config.clone(),
            subscriptions: Default::default(),
        });
        let json_limit = config.body_limits.api;
        let probes_on_api_port = probe_listener.is_none();
        let schema = web::Data::new(crate::schema::build(config.introspection, &config.graphql).finish());
        let probe_state = state.clone();
        let server = HttpServer::new(move || {
            let json_config = web::JsonConfig::default().limit(json_limit).error_handler(move |err, _req| {
                let message = match &err {
                    actix_web::error::JsonPayloadError::Overflow { .. }
                    | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => None,
                    other => Some(format!("Malformed request body: {other}")),
                };
                match message {
                    None => ApiError::PayloadTooLarge(json_limit).into(),
                    Some(message) => ApiError::Unprocessable(message).into(),
                }
            });
            App::new()
                .wrap(actix_web::middleware::from_fn(crate::middleware::limit_body))
                .wrap(actix_web::middleware::from_fn(crate::middleware::security_headers))
                .wrap(actix_web::middleware::from_fn(crate::request_span::request_span))
                .app_data(state.clone())
                .app_data(schema.clone())
                .app_data(json_config)
                .configure(|cfg| routes::configure(cfg, probes_on_api_port))
                .default_service(web::to(routes::dashboard::static_or_index))
        });
        let server = match &config.tls {
            Some((cert, key)) => server.listen_rustls_0_23(listener, tls_config(cert, key)?)?,
            None => server.listen(listener)?,
        }
        .run();
        let probes = match probe_listener {
            Some(listener) => {
                let probe_port = listener.local_addr()?.port();
                let state = probe_state;
                let server = HttpServer::new(move || {
                    App::new()
                        .wrap(actix_web::middleware::from_fn(crate::middleware::security_headers))
                        .app_data(state.clone())
                        .configure(routes::configure_probes)
                })
                .workers(1)
                .listen(listener)?
                .run();
                Some((probe_port, server))
            }
            None => None,
        };
        Ok(Application { port, server, probes })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of `/readyz` and `/metrics` when they have their own listener.
    pub fn probe_port(&self) -> Option<u16> {
        self.probes.as_ref().map(|(port, _)| *port)
    }

    /// Until either listener stops.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        match self.probes {
            Some((_, probes)) => tokio::select! {
                r = self.server => r,
                r = probes => r,
            },
            None => self.server.await,
        }
    }
}

/// Only `/healthz`, `/readyz` and `/metrics`, for the roles that serve no API (ingestor, relay,
/// projector, detector), so every role answers the same probes on `XDR_BIND`.
pub fn health_server(bind: &str, pool: PgPool) -> std::io::Result<(u16, Server)> {
    let listener = TcpListener::bind(bind)?;
    let port = listener.local_addr()?.port();
    let state = web::Data::new(crate::routes::HealthState { pool, metrics: Arc::new(Metrics::default()) });
    let server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(crate::middleware::security_headers))
            .app_data(state.clone())
            .configure(crate::routes::configure_health)
    })
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
