//! Mapping command errors to GraphQL errors with `extensions.code`.

use async_graphql::{Error, ErrorExtensions};
use xdr_commands::auth::AuthError;

/// The machine-readable code of an error.
pub fn code_of(e: &AuthError) -> &'static str {
    match e {
        AuthError::Validation(_) => "BAD_USER_INPUT",
        AuthError::InvalidCredentials | AuthError::Unauthenticated(_) => "UNAUTHENTICATED",
        AuthError::Locked(_) => "ACCOUNT_LOCKED",
        AuthError::Forbidden => "FORBIDDEN",
        AuthError::NotFound => "NOT_FOUND",
        AuthError::Busy => "SERVICE_BUSY",
        AuthError::Internal(_) => "INTERNAL_SERVER_ERROR",
        AuthError::SecondFactorRequired(_) => "SECOND_FACTOR_REQUIRED",
        AuthError::SecondFactorEnrolmentRequired => "SECOND_FACTOR_ENROLMENT_REQUIRED",
    }
}

pub fn gql_error(e: AuthError) -> Error {
    let code = code_of(&e);
    let message = match &e {
        AuthError::Internal(cause) => {
            tracing::error!(error.cause_chain = %cause, "GraphQL request failed");
            "Internal server error".to_owned()
        }
        other => other.to_string(),
    };
    // The second step of a sign-in needs its token: the one error that carries one.
    let pending = match &e {
        AuthError::SecondFactorRequired(p) => Some(p.clone()),
        _ => None,
    };
    Error::new(message).extend_with(|_, ext| {
        ext.set("code", code);
        if let Some(p) = &pending {
            ext.set("mfaToken", p.mfa_token.as_str());
            ext.set("deviceToken", p.device_token.as_str());
        }
    })
}

pub fn rate_limited() -> Error {
    Error::new("Too many requests; slow down").extend_with(|_, ext| ext.set("code", "RATE_LIMITED"))
}
