//! API errors as `{"detail": "…"}` with the right status. Internal causes are logged with
//! their chain and never returned.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use xdr_commands::auth::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("Too many requests; slow down")]
    RateLimited,
    #[error("{0}")]
    Unprocessable(String),
    #[error("Request body larger than {0} bytes")]
    PayloadTooLarge(usize),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Auth(e) => match e {
                AuthError::Validation(_) => StatusCode::BAD_REQUEST,
                AuthError::InvalidCredentials | AuthError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
                AuthError::Locked(_) | AuthError::Forbidden => StatusCode::FORBIDDEN,
                AuthError::NotFound => StatusCode::NOT_FOUND,
                AuthError::Busy => StatusCode::SERVICE_UNAVAILABLE,
                AuthError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                AuthError::SecondFactorRequired(_) => StatusCode::UNAUTHORIZED,
                AuthError::SecondFactorEnrolmentRequired => StatusCode::FORBIDDEN,
            },
            ApiError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let detail = match self {
            ApiError::Auth(AuthError::Internal(cause)) => {
                tracing::error!(error.cause_chain = %cause, "request failed");
                "Internal server error".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            response.insert_header((header::RETRY_AFTER, "2"));
        }
        response.json(serde_json::json!({ "detail": detail }))
    }
}
