//! The mail outbox survives `kill -9`: a reset committed while the SMTP server is down is
//! mailed once the `mailer` role is back, and a resend after a crash carries the same
//! `Message-ID` (at least once, duplicates recognisable).

use secrecy::SecretString;
use std::collections::BTreeSet;
use std::time::Duration;
use xdr_commands::auth::identity::RequestContext;
use xdr_commands::auth::{Clock, IdentityService, PasswordHasher, TokenService};
use xdr_commands::testing::TestDb;
use xdr_commands::testing_smtp::{SinkMode, SmtpSink};
use xdr_commands::EventStore;

use crate::support::{wait_until, Role, JWT_SECRET};

const PASSWORD: &str = "SecurePass123!@#";

async fn count(db: &TestDb, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM event_log WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_reset_mail_committed_while_smtp_is_down_arrives_after_kill_9_and_restart_under_one_message_id() {
    let db = TestDb::new().await;
    let identity = IdentityService::new(
        EventStore::new(db.api.clone()),
        PasswordHasher::owasp().unwrap(),
        TokenService::new(&SecretString::from(JWT_SECRET)),
        Clock::system(),
    );
    let ctx = RequestContext { ip: Some("203.0.113.9".into()), ..Default::default() };
    identity.register("Outbox Corp", "erin@outbox.test", PASSWORD.into(), "Erin", &ctx).await.unwrap();

    let port = SmtpSink::free_port().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(&str, String)> = db.env();
    env.extend([
        ("JWT_SECRET_KEY", JWT_SECRET.to_owned()),
        ("XDR_SMTP_URL", format!("smtp://127.0.0.1:{port}?tls=none")),
        ("XDR_MAIL_FROM", "XDR <xdr@outbox.test>".to_owned()),
        ("XDR_PUBLIC_URL", "https://xdr.outbox.test".to_owned()),
        ("XDR_MAIL_RETRY_BASE_MS", "200".to_owned()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The probe port is picked the same way: make sure it is not the SMTP server's.
    let mut mailer = Role::new("mailer", &["mailer"], &env, dir.path());
    while mailer.port == port {
        mailer = Role::new("mailer", &["mailer"], &env, dir.path());
    }
    mailer.start();
    mailer.ready().await;

    // Committed while no SMTP server listens: attempts fail and are recorded.
    identity.forgot_password("erin@outbox.test", &ctx).await.unwrap();
    wait_until(
        "a failed attempt is recorded",
        Duration::from_secs(30),
        || mailer.log(),
        || async { count(&db, "EmailFailed").await >= 1 },
    )
    .await;
    mailer.kill();

    // The server is back but dies with the sender: it stores the message, the sender is
    // killed before it hears "250", so no EmailSent is recorded.
    let holding = SmtpSink::start_on(port, SinkMode::HoldDataReply(Duration::from_secs(30))).await;
    mailer.start();
    let first = holding.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(first.len(), 1, "the mail arrives after the restart:\n{}", mailer.log());
    mailer.kill();
    assert_eq!(count(&db, "EmailSent").await, 0);

    // Restarted again: the message goes out once more, under the same Message-ID, and this
    // time the outcome is recorded.
    let sink = holding;
    sink.set_mode(SinkMode::Accept);
    mailer.start();
    let all = sink.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(all.len(), 2, "{}", mailer.log());
    let second = all[1..].to_vec();
    wait_until(
        "EmailSent is recorded",
        Duration::from_secs(30),
        || mailer.log(),
        || async { count(&db, "EmailSent").await == 1 },
    )
    .await;
    let ids: BTreeSet<String> = first.iter().chain(&second).map(|m| m.header("Message-ID").unwrap()).collect();
    assert_eq!(ids.len(), 1, "never two Message-IDs for one event: {ids:?}");
    let recorded: String =
        sqlx::query_scalar("SELECT payload->>'message_id' FROM event_log WHERE event_type = 'EmailSent'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(ids.into_iter().next().unwrap(), recorded);

    // And the link in it works.
    let body = second[0].body();
    let marker = "https://xdr.outbox.test/reset-password?token=";
    let token = body[body.find(marker).unwrap() + marker.len()..].split_whitespace().next().unwrap().to_owned();
    identity.reset_password(&token, "BrandNewPass456$%^".into(), &ctx).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), 2, "nothing more is sent once recorded");
}
