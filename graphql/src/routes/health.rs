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
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render_with(&state.pool).await)
}

pub async fn readyz_only(state: web::Data<super::HealthState>) -> HttpResponse {
    ready(&state.pool).await
}

pub async fn metrics_only(state: web::Data<super::HealthState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render_with(&state.pool).await)
}
