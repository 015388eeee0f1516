//! Route table: every route of the server is registered here.

mod accounts;
pub(crate) mod agent;
mod auth;
pub(crate) mod dashboard;
mod health;
mod ingest;
mod password;
mod response;
mod second_factor;

use actix_web::web;

/// Every route of the API listener; `/readyz` and `/metrics` only when they have no listener
/// of their own (`ServerConfig::probe_bind`).
pub fn configure(cfg: &mut web::ServiceConfig, with_probes: bool) {
    cfg.service(
        web::scope("/api/auth")
            .route("/register", web::post().to(auth::register))
            .route("/login", web::post().to(auth::login))
            .route("/login/mfa", web::post().to(accounts::login_second_factor))
            .route("/refresh", web::post().to(auth::refresh))
            .route("/me", web::get().to(auth::me))
            .route("/invite", web::post().to(auth::invite))
            .route("/accept-invite", web::post().to(auth::accept_invite))
            .route("/logout", web::post().to(auth::logout))
            .route("/users/{id}", web::get().to(auth::get_user))
            .route("/users/{id}/lock", web::post().to(auth::lock_user))
            .route("/users/{id}/unlock", web::post().to(auth::unlock_user))
            .route("/users/{id}/role", web::post().to(accounts::change_role))
            .route("/users/{id}/deactivate", web::post().to(accounts::deactivate_user))
            .route("/users/{id}/reactivate", web::post().to(accounts::reactivate_user))
            .route("/users/{id}/sessions/revoke", web::post().to(accounts::revoke_user_sessions))
            .route("/sessions/{id}/revoke", web::post().to(accounts::revoke_session))
            .route("/sessions/revoke-others", web::post().to(accounts::revoke_other_sessions))
            .route("/forgot-password", web::post().to(password::forgot_password))
            .route("/reset-password", web::post().to(password::reset_password))
            .route("/change-password", web::post().to(password::change_password))
            .route("/second-factor/enrol", web::post().to(second_factor::start_enrolment))
            .route("/second-factor/confirm", web::post().to(second_factor::confirm_enrolment))
            .route("/second-factor/policy", web::post().to(second_factor::set_policy))
            .route("/users/{id}/second-factor/reset", web::post().to(second_factor::reset)),
    )
    .service(
        web::scope("/api/agent/v1")
            .route("/blocks", web::get().to(agent::blocks))
            .route("/orders/pull", web::post().to(agent::pull_orders))
            .route("/results", web::post().to(agent::results)),
    )
    .service(
        web::scope("/api/incidents")
            .route("/{id}/contain", web::post().to(response::contain))
            .route("/{id}/unblock", web::post().to(response::unblock)),
    )
    .route("/ingest/cowrie", web::post().to(ingest::cowrie))
    .route("/ingest/multi", web::post().to(ingest::multi))
    .route("/graphql", web::post().to(crate::graphql_route::graphql))
    .route("/graphql", web::get().to(crate::graphql_route::graphiql_or_subscription));
    if with_probes {
        configure_probes(cfg);
    } else {
        cfg.route("/healthz", web::get().to(health::healthz));
    }
}

/// `/healthz`, `/readyz` and `/metrics` of the API (its own state and counters).
pub fn configure_probes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics));
}

/// What the probe-only server needs.
pub struct HealthState {
    pub pool: sqlx::PgPool,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

pub fn configure_health(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz_only))
        .route("/metrics", web::get().to(health::metrics_only));
}
