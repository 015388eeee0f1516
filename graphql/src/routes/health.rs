//! Liveness, readiness and Prometheus metrics.

use actix_web::{web, HttpResponse};

use crate::startup::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// The API is ready when the database answers: it commits HTTP ingest and serves reads
/// without NATS (the relay publishes what it committed once NATS is back), so a NATS outage
/// is reported in the body but does not take the API out of the load balancer.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    ready(&state.pool, false).await
}

/// How long the database may take to answer the probe: a database that is down makes the
/// pool wait for its acquire timeout, longer than a probe should.
const DATABASE_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn ready(pool: &sqlx::PgPool, needs_nats: bool) -> HttpResponse {
    use xdr_commands::readiness::{nats_readiness, NatsReadiness};
    let database = match tokio::time::timeout(DATABASE_PROBE_TIMEOUT, sqlx::query("SELECT 1").execute(pool)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {DATABASE_PROBE_TIMEOUT:?}")),
    };
    let nats = nats_readiness();
    let nats_ok = !needs_nats || nats != NatsReadiness::Disconnected;
    let body = serde_json::json!({
        "status": if database.is_ok() && nats_ok { "ready" } else { "unavailable" },
        "database": if database.is_ok() { "connected" } else { "unavailable" },
        "nats": nats.as_str(),
    });
    if let Err(e) = &database {
        tracing::warn!(error = %e, "readiness check: database unavailable");
    }
    if database.is_ok() && nats_ok {
        HttpResponse::Ok().json(body)
    } else {
        if !nats_ok {
            tracing::warn!("readiness check: NATS disconnected (the client is reconnecting)");
        }
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut body = state.metrics.render_with(&state.pool).await;
    let name = "xdr_rate_limit_tracked_clients";
    body.push_str(&format!(
        "# HELP {name} Client addresses a rate limiter holds a budget for (bounded)\n# TYPE {name} gauge\n"
    ));
    for (limiter, l) in
        [("login", &state.login_limiter), ("register", &state.register_limiter), ("refresh", &state.refresh_limiter)]
    {
        body.push_str(&format!("{name}{{limiter=\"{limiter}\"}} {}\n", l.tracked_clients()));
    }
    // In `serve` the pipeline runs in this process: its delivery and dead-letter counters too.
    body.push_str(&xdr_commands::readiness::render_counters());
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(body)
}

/// A background role is ready when the database answers and every NATS connection it opened
/// is up: it can do nothing useful without either.
pub async fn readyz_only(state: web::Data<super::HealthState>) -> HttpResponse {
    ready(&state.pool, true).await
}

/// The role's delivery counters (`xdr_commands::readiness`) after the shared ones.
pub async fn metrics_only(state: web::Data<super::HealthState>) -> HttpResponse {
    let mut body = state.metrics.render_with(&state.pool).await;
    body.push_str(&xdr_commands::readiness::render_counters());
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(body)
}
