//! Token lifecycle over HTTP: rotation, reuse detection, logout, and forged tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{detail, spawn_app, Tokens, JWT_SECRET, PASSWORD};

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let app = spawn_app().await;
    let reg = app.register("Acme", "admin@acme.com").await;
    let first = app.login_ok("admin@acme.com", PASSWORD).await;
    let r = app.post("/api/auth/refresh", json!({"refresh_token": first.refresh}), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second = Tokens::from(&r.json().await.unwrap());
    assert_eq!(app.me(&second.access).await.status(), StatusCode::OK);

    // The thief replays the spent token: refused, and the legitimate new one dies too.
    let (status, message) =
        detail(app.post("/api/auth/refresh", json!({"refresh_token": first.refresh}), None).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(message.contains("reuse"), "{message}");
    let r = app.post("/api/auth/refresh", json!({"refresh_token": second.refresh}), None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&second.access).await.status(), StatusCode::UNAUTHORIZED);
    let reuse: i64 =
        sqlx::query_scalar("SELECT count(*) FROM event_log WHERE event_type = 'RefreshTokenReuseDetected'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(reuse, 1);
    // Another session of the same user is untouched.
    let _ = reg;
    let other = app.login_ok("admin@acme.com", PASSWORD).await;
    assert_eq!(app.me(&other.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_revokes_access_and_refresh_at_once() {
    let app = spawn_app().await;
    app.register("Acme", "admin@acme.com").await;
    let t = app.login_ok("admin@acme.com", PASSWORD).await;
    assert_eq!(app.post("/api/auth/logout", json!({}), Some(&t.access)).await.status(), StatusCode::OK);
    assert_eq!(app.me(&t.access).await.status(), StatusCode::UNAUTHORIZED);
    let r = app.post("/api/auth/refresh", json!({"refresh_token": t.refresh}), None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

fn forge(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    edit(&mut claims);
    format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2])
}

#[tokio::test]
async fn refresh_as_access_alg_none_foreign_key_expired_and_edited_tokens_are_refused() {
    let app = spawn_app().await;
    app.register("Acme", "admin@acme.com").await;
    let victim = app.register("Victim", "admin@victim.com").await;
    let t = app.login_ok("admin@acme.com", PASSWORD).await;
    assert_eq!(app.me(&t.access).await.status(), StatusCode::OK);

    // A refresh token where an access token is expected.
    assert_eq!(app.me(&t.refresh).await.status(), StatusCode::UNAUTHORIZED);
    // An access token where a refresh token is expected.
    let r = app.post("/api/auth/refresh", json!({"refresh_token": t.access}), None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // alg: none with the same claims.
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = t.access.split('.').nth(1).unwrap();
    assert_eq!(app.me(&format!("{none_header}.{payload}.")).await.status(), StatusCode::UNAUTHORIZED);

    // Signed with someone else's key.
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let foreign =
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(b"not-our-key")).unwrap();
    assert_eq!(app.me(&foreign).await.status(), StatusCode::UNAUTHORIZED);
    let ours =
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes())).unwrap();
    assert_eq!(app.me(&ours).await.status(), StatusCode::OK, "control: the same claims with our key pass");

    // Edited claims: another org, a higher role.
    let victim_org = victim["organization"]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.me(&forge(&t.access, |c| c["org"] = json!(victim_org))).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&forge(&t.access, |c| c["role"] = json!("admin"))).await.status(), StatusCode::UNAUTHORIZED);

    // Expired: access tokens live 8 hours.
    app.clock.advance(Duration::hours(8) + Duration::seconds(1));
    let (status, _) = detail(app.me(&t.access).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // No token at all.
    assert_eq!(app.get("/api/auth/me", None).await.status(), StatusCode::UNAUTHORIZED);
}
