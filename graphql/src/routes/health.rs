//! Liveness, readiness and Prometheus metrics.

use actix_web::{web, HttpResponse};

use crate::startup::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Ready when the database answers.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    ready(&state.pool).await
}

async fn ready(pool: &sqlx::PgPool) -> HttpResponse {
    match sqlx::query("SELECT 1").execute(pool).await {
        Ok(_) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "database unavailable"}))
        }
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
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(body)
}

pub async fn readyz_only(state: web::Data<super::HealthState>) -> HttpResponse {
    ready(&state.pool).await
}

pub async fn metrics_only(state: web::Data<super::HealthState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render_with(&state.pool).await)
}
