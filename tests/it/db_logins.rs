//! The runtime logins as an operator makes them (`deploy/db-logins.sql`, the same script
//! `deploy/dev.sh` runs), and the binary's refusal to run a role on a login that could do more.

use std::process::Command;
use xdr_commands::db::{self, RuntimeRole};
use xdr_commands::testing::TestDb;

fn psql_available() -> bool {
    Command::new("psql").arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

fn run_login_script(db: &TestDb, api: &str, worker: &str) {
    let out = Command::new("psql")
        .arg(db.url())
        .args(["-q", "-v", "ON_ERROR_STOP=1"])
        .args(["-v", &format!("api_login={api}"), "-v", "api_password=api-secret"])
        .args(["-v", &format!("worker_login={worker}"), "-v", "worker_password=worker-secret"])
        .arg("-f")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/db-logins.sql"))
        .output()
        .expect("run psql");
    assert!(out.status.success(), "db-logins.sql failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn the_operators_login_script_makes_logins_the_roles_accept_and_can_run_twice() {
    if !psql_available() {
        eprintln!("psql not installed: skipping the login script test");
        return;
    }
    let db = TestDb::new().await;
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let (api, worker) = (format!("xdr_t_api_{suffix}"), format!("xdr_t_worker_{suffix}"));
    run_login_script(&db, &api, &worker);
    run_login_script(&db, &api, &worker);
    db::runtime_pool(&db.options.clone().username(&api), RuntimeRole::Api, 1).await.unwrap().close().await;
    db::runtime_pool(&db.options.clone().username(&worker), RuntimeRole::Worker, 1).await.unwrap().close().await;
    // Each login is fit for its own group only.
    db::runtime_pool(&db.options.clone().username(&api), RuntimeRole::Worker, 1).await.unwrap_err();
    let mut owner = db.owner_conn().await;
    for login in [&api, &worker] {
        sqlx::Executor::execute(&mut owner, format!("DROP ROLE {login}").as_str()).await.unwrap();
    }
}

#[tokio::test]
async fn the_api_refuses_to_run_on_the_schema_owners_login() {
    let db = TestDb::new().await;
    let out = Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .arg("api")
        .envs(db.env())
        .env("XDR_API_DATABASE_URL", db.url())
        .env("XDR_BIND", "127.0.0.1:0")
        .env("JWT_SECRET_KEY", "db-logins-test-secret-0123456789abcdef")
        .env_remove("XDR_CONFIG")
        .env_remove("XDR_DEV_SINGLE_DB_LOGIN")
        .output()
        .expect("run mini-xdr api");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("must not run as xdr_api") && stderr.contains("superuser"), "{stderr}");
    // Without its own URL the API does not quietly fall back to the workers' or the owner's.
    let out = Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .arg("api")
        .env("DATABASE_URL", db.url())
        .env_remove("XDR_API_DATABASE_URL")
        .env_remove("XDR_CONFIG")
        .env_remove("XDR_DEV_SINGLE_DB_LOGIN")
        .env("JWT_SECRET_KEY", "db-logins-test-secret-0123456789abcdef")
        .output()
        .expect("run mini-xdr api");
    assert!(String::from_utf8_lossy(&out.stderr).contains("XDR_API_DATABASE_URL is required"));
}
