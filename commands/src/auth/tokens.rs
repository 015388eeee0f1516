//! Access and refresh tokens: HS256 JWTs with claims `sub`, `org`, `role`, `typ`, `jti`, `iat`,
//! `exp` (and `sid`, the session they belong to, so logout can revoke them).
//!
//! Only HS256 with our key is accepted: `alg: none`, other algorithms and foreign keys fail
//! signature validation. Expiry is checked against the injected clock.

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use xdr_domain::identity::Role;
use xdr_domain::ids::{OrgId, SessionId, UserId};

/// Default lifetime of an access token (`XDR_ACCESS_TOKEN_MINUTES`); the console renews it
/// before it runs out.
pub const ACCESS_TTL: Duration = Duration::hours(8);
/// `iss` of every token we sign, and the only one accepted.
pub const ISSUER: &str = "mini-xdr";
/// `aud` of every token we sign, and the only one accepted: a token another service signed
/// with a shared key by mistake is still refused.
pub const AUDIENCE: &str = "mini-xdr-api";
pub const REFRESH_TTL: Duration = Duration::days(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: UserId,
    pub org: OrgId,
    pub role: Role,
    pub typ: TokenKind,
    pub jti: Uuid,
    pub sid: SessionId,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    #[serde(skip)]
    pub refresh_jti: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("invalid token")]
    Invalid,
    #[error("token expired")]
    Expired,
    #[error("wrong token type")]
    WrongKind,
}

#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    access_ttl: Duration,
    links: super::LinkTokens,
}

impl TokenService {
    pub fn new(secret: &SecretString) -> TokenService {
        let bytes = secret.expose_secret().as_bytes();
        TokenService {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            access_ttl: ACCESS_TTL,
            links: super::LinkTokens::new(secret),
        }
    }

    /// Access tokens that live `ttl` instead of [`ACCESS_TTL`].
    pub fn with_access_ttl(self, ttl: Duration) -> TokenService {
        TokenService { access_ttl: ttl, ..self }
    }

    /// Tokens of mailed links, keyed from the same secret.
    pub fn links(&self) -> &super::LinkTokens {
        &self.links
    }

    fn sign(&self, claims: &Claims) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding).expect("HS256 signing cannot fail")
    }

    /// A fresh access token and a refresh token with the given `jti` for one session.
    pub fn issue_pair(
        &self,
        user: UserId,
        org: OrgId,
        role: Role,
        session: SessionId,
        refresh_jti: Uuid,
        now: DateTime<Utc>,
    ) -> TokenPair {
        let iat = now.timestamp();
        let access = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user,
            org,
            role,
            typ: TokenKind::Access,
            jti: Uuid::new_v4(),
            sid: session,
            iat,
            exp: (now + self.access_ttl).timestamp(),
        };
        let refresh = Claims {
            typ: TokenKind::Refresh,
            jti: refresh_jti,
            exp: (now + REFRESH_TTL).timestamp(),
            ..access.clone()
        };
        TokenPair {
            access_token: self.sign(&access),
            refresh_token: self.sign(&refresh),
            token_type: "bearer",
            refresh_jti,
        }
    }

    /// Verify signature, algorithm, expiry (against `now`) and kind.
    pub fn verify(&self, token: &str, kind: TokenKind, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false; // checked below against the injected clock
        validation.required_spec_claims = ["exp", "iat", "sub", "iss", "aud"].iter().map(|s| s.to_string()).collect();
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        let claims = decode::<Claims>(token, &self.decoding, &validation).map_err(|_| TokenError::Invalid)?.claims;
        if claims.exp <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        if claims.typ != kind {
            return Err(TokenError::WrongKind);
        }
        Ok(claims)
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn sign_for_tests(&self, claims: &Claims) -> String {
        self.sign(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> TokenService {
        TokenService::new(&SecretString::from("test-secret-key-with-enough-entropy"))
    }

    fn pair(now: DateTime<Utc>) -> TokenPair {
        service().issue_pair(
            UserId(Uuid::new_v4()),
            OrgId(Uuid::new_v4()),
            Role::Admin,
            SessionId(Uuid::new_v4()),
            Uuid::new_v4(),
            now,
        )
    }

    #[test]
    fn a_configured_access_lifetime_is_the_token_s_and_the_refresh_token_keeps_its_own() {
        let now = Utc::now();
        let s = service().with_access_ttl(Duration::minutes(2));
        let p = s.issue_pair(
            UserId(Uuid::new_v4()),
            OrgId(Uuid::new_v4()),
            Role::Viewer,
            SessionId(Uuid::new_v4()),
            Uuid::new_v4(),
            now,
        );
        let claims = s.verify(&p.access_token, TokenKind::Access, now).unwrap();
        assert_eq!(claims.exp, (now + Duration::minutes(2)).timestamp());
        assert_eq!(s.verify(&p.access_token, TokenKind::Access, now + Duration::minutes(2)), Err(TokenError::Expired));
        assert!(s.verify(&p.refresh_token, TokenKind::Refresh, now + Duration::days(1)).is_ok());
    }

    #[test]
    fn tokens_verify_only_as_their_own_kind() {
        let now = Utc::now();
        let p = pair(now);
        let s = service();
        assert_eq!(s.verify(&p.access_token, TokenKind::Access, now).unwrap().typ, TokenKind::Access);
        assert_eq!(s.verify(&p.refresh_token, TokenKind::Refresh, now).unwrap().jti, p.refresh_jti);
        assert_eq!(s.verify(&p.refresh_token, TokenKind::Access, now), Err(TokenError::WrongKind));
    }

    #[test]
    fn expired_foreign_key_alg_none_and_edited_tokens_are_rejected() {
        let now = Utc::now();
        let p = pair(now);
        let s = service();
        assert_eq!(s.verify(&p.access_token, TokenKind::Access, now + ACCESS_TTL), Err(TokenError::Expired));
        let foreign = TokenService::new(&SecretString::from("another-key"));
        assert_eq!(foreign.verify(&p.access_token, TokenKind::Access, now), Err(TokenError::Invalid));

        let parts: Vec<&str> = p.access_token.split('.').collect();
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let encode_url = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let none_header = encode_url(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(s.verify(&format!("{none_header}.{}.", parts[1]), TokenKind::Access, now), Err(TokenError::Invalid));

        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let mut edited = claims.clone();
        edited["role"] = "admin".into();
        edited["org"] = Uuid::new_v4().to_string().into();
        let forged = format!("{}.{}.{}", parts[0], encode_url(edited.to_string().as_bytes()), parts[2]);
        assert_eq!(s.verify(&forged, TokenKind::Access, now), Err(TokenError::Invalid));
    }

    #[test]
    fn a_token_for_another_issuer_or_audience_is_rejected_even_with_our_key() {
        let now = Utc::now();
        let s = service();
        let claims = s.verify(&pair(now).access_token, TokenKind::Access, now).unwrap();
        assert_eq!((claims.iss.as_str(), claims.aud.as_str()), (ISSUER, AUDIENCE));
        let other_aud = Claims { aud: "grafana".into(), ..claims.clone() };
        assert_eq!(s.verify(&s.sign(&other_aud), TokenKind::Access, now), Err(TokenError::Invalid));
        let other_iss = Claims { iss: "keycloak".into(), ..claims.clone() };
        assert_eq!(s.verify(&s.sign(&other_iss), TokenKind::Access, now), Err(TokenError::Invalid));
        // Without the claims at all (a token from before they existed): refused.
        let mut bare = serde_json::to_value(&claims).unwrap();
        bare.as_object_mut().unwrap().retain(|k, _| k != "iss" && k != "aud");
        let unsigned = encode(&Header::new(Algorithm::HS256), &bare, &s.encoding).unwrap();
        assert_eq!(s.verify(&unsigned, TokenKind::Access, now), Err(TokenError::Invalid));
    }
}
