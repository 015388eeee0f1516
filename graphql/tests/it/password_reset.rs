//! Password reset by e-mail, change password and mailed invitations, end to end: the real
//! HTTP API over a fresh database, the real mailer tailing its log, a real SMTP server
//! (`xdr_commands::testing_smtp`) receiving the mail.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use xdr_commands::auth::LinkTokens;
use xdr_commands::mail::compose::MailIdentity;
use xdr_commands::mail::{run_mailer, MailConfig, Mailer, TransportConfig};
use xdr_commands::testing_smtp::{ReceivedMail, SinkMode, SmtpSink};
use xdr_commands::EventStore;
use xdr_graphql::ServerConfig;

use crate::helpers::{spawn_app_with, unlimited, TestApp, Tokens, JWT_SECRET, PASSWORD};

const NEW_PASSWORD: &str = "BrandNewPass456$%^";
const MAIL_WAIT: Duration = Duration::from_secs(10);

/// The app, an SMTP sink, and the mailer between the app's log and the sink.
async fn app_with_mail(config: ServerConfig) -> (TestApp, SmtpSink) {
    let app = spawn_app_with(config).await;
    let sink = SmtpSink::start(SinkMode::Accept).await;
    let config = MailConfig {
        transport: TransportConfig::Smtp(sink.url().into()),
        identity: MailIdentity { from: "XDR <xdr@mail.test>".parse().unwrap(), public_url: "https://xdr.test".into() },
        retry: Default::default(),
        poll_interval: Duration::from_millis(100),
    };
    let links = LinkTokens::new(&JWT_SECRET.to_owned().into());
    let mailer = Mailer::new(EventStore::new(app.db.worker.clone()), config, links, app.clock.clone()).unwrap();
    tokio::spawn(run_mailer(mailer, std::future::pending()));
    (app, sink)
}

/// The token of the mailed link to `path` (`reset-password`, `accept-invite`).
fn link_token(mail: &ReceivedMail, path: &str) -> String {
    let body = mail.body();
    let marker = format!("https://xdr.test/{path}?token=");
    let start = body.find(&marker).unwrap_or_else(|| panic!("no {path} link in {body}")) + marker.len();
    body[start..].split_whitespace().next().unwrap().to_owned()
}

async fn forgot(app: &TestApp, email: &str) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let r = app.post("/api/auth/forgot-password", json!({ "email": email }), None).await;
    let status = r.status();
    (status, r.json().await.unwrap(), started.elapsed())
}

async fn reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post("/api/auth/reset-password", json!({ "token": token, "password": password }), None).await
}

async fn refresh(app: &TestApp, refresh_token: &str) -> StatusCode {
    app.post("/api/auth/refresh", json!({ "refresh_token": refresh_token }), None).await.status()
}

#[tokio::test]
async fn forgot_password_answers_alike_and_the_one_mailed_link_resets_once_ending_sessions_and_lock() {
    let (app, sink) = app_with_mail(unlimited()).await;
    app.register("Reset Corp", "alice@reset.test").await;
    let (first, second) =
        (app.login_ok("alice@reset.test", PASSWORD).await, app.login_ok("alice@reset.test", PASSWORD).await);
    for _ in 0..5 {
        assert_eq!(app.login("alice@reset.test", "Wrong-password-1!").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.login("alice@reset.test", PASSWORD).await.status(), StatusCode::UNAUTHORIZED, "locked");

    let (known_status, known_body, known_time) = forgot(&app, "alice@reset.test").await;
    let (unknown_status, unknown_body, unknown_time) = forgot(&app, "nobody@reset.test").await;
    assert_eq!((known_status, &known_body), (unknown_status, &unknown_body));
    assert_eq!(known_status, StatusCode::ACCEPTED);
    let floor = xdr_commands::auth::password_reset::FORGOT_PASSWORD_FLOOR;
    // Both answers wait for the same floor, longer than the known address's extra work; how
    // close the two come is a measurement (`bench mail`), not a timed assertion.
    assert!(known_time >= floor && unknown_time >= floor, "{known_time:?} {unknown_time:?}");

    let mail = sink.wait_for(1, MAIL_WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), 1, "exactly one mail, none for the unknown address");
    assert_eq!(mail[0].rcpt_to, ["alice@reset.test"]);
    let token = link_token(&mail[0], "reset-password");

    // The log holds the digest only; the token is in the mail alone.
    let leaked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM event_log WHERE payload::text LIKE $1 OR metadata::text LIKE $1")
            .bind(format!("%{}%", token.rsplit('.').next().unwrap()))
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(leaked, 0);

    assert_eq!(reset(&app, &token, "short").await.status(), StatusCode::BAD_REQUEST, "policy applies");
    let r = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);

    for old in [&first, &second] {
        assert_eq!(refresh(&app, &old.refresh).await, StatusCode::UNAUTHORIZED, "old refresh token dead");
        assert_eq!(app.me(&old.access).await.status(), StatusCode::UNAUTHORIZED, "old access token dead");
    }
    assert_eq!(app.login("alice@reset.test", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    let fresh = app.login_ok("alice@reset.test", NEW_PASSWORD).await;
    assert_eq!(app.me(&fresh.access).await.status(), StatusCode::OK, "the lock is gone");

    let again = reset(&app, &token, "AnotherPass789&*(").await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "the link works once");
    assert_eq!(again.json::<Value>().await.unwrap()["detail"], "Invalid or expired reset link");

    let message_id = mail[0].header("Message-ID").unwrap();
    let recorded: Vec<(String, Value)> = sqlx::query_as(
        "SELECT event_type, metadata FROM event_log WHERE event_type IN \
         ('PasswordResetRequested', 'PasswordChanged', 'EmailSent') ORDER BY org_seq",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    let mut types: Vec<&str> = recorded.iter().map(|(t, _)| t.as_str()).collect();
    types.sort_unstable();
    assert_eq!(types, ["EmailSent", "PasswordChanged", "PasswordResetRequested"]);
    assert!(
        recorded.iter().filter(|(t, _)| t != "EmailSent").all(|(_, m)| m["request_ip"] == "127.0.0.1"),
        "{recorded:?}"
    );
    let sent: String =
        sqlx::query_scalar("SELECT payload->>'message_id' FROM event_log WHERE event_type = 'EmailSent'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(sent, message_id);
    let revoked: Vec<String> = sqlx::query_scalar(
        "SELECT payload->>'reason' FROM event_log WHERE event_type = 'SessionRevoked' ORDER BY org_seq",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    // Registration's own session and the two sign-ins.
    assert_eq!(revoked, ["password_reset", "password_reset", "password_reset"]);
}

#[tokio::test]
async fn superseded_expired_and_forged_reset_links_are_refused() {
    let (app, sink) = app_with_mail(unlimited()).await;
    app.register("Expiry Corp", "bob@expiry.test").await;
    forgot(&app, "bob@expiry.test").await;
    let first = link_token(&sink.wait_for(1, MAIL_WAIT).await[0], "reset-password");
    forgot(&app, "bob@expiry.test").await;
    let mails = sink.wait_for(2, MAIL_WAIT).await;
    let second = link_token(&mails[1], "reset-password");
    assert_ne!(mails[0].header("Message-ID"), mails[1].header("Message-ID"), "one message per request");

    assert_eq!(reset(&app, &first, NEW_PASSWORD).await.status(), StatusCode::BAD_REQUEST, "superseded");
    let forged = format!("{}0", &second[..second.len() - 1]);
    assert_eq!(reset(&app, &forged, NEW_PASSWORD).await.status(), StatusCode::BAD_REQUEST, "forged");
    assert_eq!(reset(&app, "garbage", NEW_PASSWORD).await.status(), StatusCode::BAD_REQUEST);

    app.clock.advance(chrono::Duration::minutes(31));
    assert_eq!(reset(&app, &second, NEW_PASSWORD).await.status(), StatusCode::BAD_REQUEST, "expired");
    app.login_ok("bob@expiry.test", PASSWORD).await;
}

#[tokio::test]
async fn forgot_password_is_limited_per_client_and_per_address_alike_for_unknown_ones() {
    let config = ServerConfig { password_reset_rate_per_minute: 3, ..unlimited() };
    let (app, _sink) = app_with_mail(config).await;
    for _ in 0..3 {
        assert_eq!(forgot(&app, "ghost@limit.test").await.0, StatusCode::ACCEPTED);
    }
    assert_eq!(forgot(&app, "ghost@limit.test").await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(forgot(&app, "other@limit.test").await.0, StatusCode::TOO_MANY_REQUESTS, "same client");
}

#[tokio::test]
async fn change_password_keeps_this_session_and_ends_the_others_over_rest_and_graphql() {
    let (app, _sink) = app_with_mail(unlimited()).await;
    app.register("Change Corp", "carol@change.test").await;
    let (this, other) =
        (app.login_ok("carol@change.test", PASSWORD).await, app.login_ok("carol@change.test", PASSWORD).await);

    let body = json!({ "current_password": "Wrong-password-1!", "new_password": NEW_PASSWORD });
    let r = app.post("/api/auth/change-password", body, Some(&this.access)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "the current password is required");
    let body = json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD });
    assert_eq!(app.post("/api/auth/change-password", body.clone(), None).await.status(), StatusCode::UNAUTHORIZED);
    let r = app.post("/api/auth/change-password", body, Some(&this.access)).await;
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);

    assert_eq!(app.me(&this.access).await.status(), StatusCode::OK, "this session stays");
    assert_eq!(app.me(&other.access).await.status(), StatusCode::UNAUTHORIZED, "the other one ends");
    assert_eq!(refresh(&app, &other.refresh).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login("carol@change.test", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    let third: Tokens = app.login_ok("carol@change.test", NEW_PASSWORD).await;

    let mutation = json!({ "query": format!(
        "mutation {{ changePassword(currentPassword: \"{NEW_PASSWORD}\", newPassword: \"{PASSWORD}\") }}"
    ) });
    let r: Value = app.post("/graphql", mutation, Some(&third.access)).await.json().await.unwrap();
    assert_eq!(r["data"]["changePassword"], true, "{r}");
    assert_eq!(app.me(&third.access).await.status(), StatusCode::OK);
    assert_eq!(app.me(&this.access).await.status(), StatusCode::UNAUTHORIZED, "GraphQL ended the others too");
    app.login_ok("carol@change.test", PASSWORD).await;
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT payload->>'kind' FROM event_log WHERE event_type = 'PasswordChanged' ORDER BY org_seq",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(kinds, ["change", "change"]);
}

#[tokio::test]
async fn an_invitation_is_mailed_with_the_link_the_admin_also_sees_once() {
    let (app, sink) = app_with_mail(unlimited()).await;
    let registered = app.register("Invite Corp", "admin@invite.test").await;
    let admin = registered["access_token"].as_str().unwrap();
    let body = json!({ "email": "dave@invite.test", "full_name": "Dave", "role": "analyst" });
    let invited: Value = app.post("/api/auth/invite", body, Some(admin)).await.json().await.unwrap();
    let mail = sink.wait_for(1, MAIL_WAIT).await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].rcpt_to, ["dave@invite.test"]);
    assert!(mail[0].header("Subject").unwrap().contains("Invite Corp"), "{:?}", mail[0].header("Subject"));
    let token = link_token(&mail[0], "accept-invite");
    assert_eq!(token, invited["invitation_token"].as_str().unwrap());
    let r = app.post("/api/auth/accept-invite", json!({ "token": token, "password": PASSWORD }), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    app.login_ok("dave@invite.test", PASSWORD).await;
}
