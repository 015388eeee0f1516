//! `mini-xdr serve` as the README starts it: migrations, the HTTP API and the projector in one
//! process, answering real requests.

use std::time::{Duration, Instant};
use xdr_commands::testing::TestDb;

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn serve_migrates_serves_the_api_and_projects_what_it_writes() {
    let db = TestDb::new().await;
    let port = free_port();
    let _server = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
            .arg("serve")
            .env("DATABASE_URL", db.url())
            .env("XDR_BIND", format!("127.0.0.1:{port}"))
            .env("JWT_SECRET_KEY", "serve-test-secret-0123456789abcdef0123")
            .env("RUST_LOG", "warn")
            .env_remove("XDR_CONFIG")
            .spawn()
            .expect("start mini-xdr serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client.get(format!("{base}/readyz")).send().await.map(|r| r.status().is_success()).unwrap_or(false) {
        assert!(started.elapsed() < Duration::from_secs(30), "serve did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reg: serde_json::Value = client
        .post(format!("{base}/api/auth/register"))
        .json(&serde_json::json!({"organization_name": "Test Corp", "admin_email": "admin@test.com",
                                  "admin_password": "SecurePass123!@#", "admin_name": "Test Admin"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = reg["access_token"].as_str().expect("registered");
    let me: serde_json::Value =
        client.get(format!("{base}/api/auth/me")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["organization"]["slug"], "test-corp");

    // The projector inside serve brings the read model up to date.
    let started = Instant::now();
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM rm_users").fetch_one(&mut db.owner_conn().await).await.unwrap();
        if n == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "projector did not project the new user");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
