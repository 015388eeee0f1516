//! `spawn_app`: a server on a random port over a fresh database, with a test clock and typed
//! request helpers.

use chrono::{DateTime, Utc};
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use xdr_commands::auth::{Clock, IdentityService, PasswordHasher, TokenService};
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_graphql::{Application, ServerConfig};

pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123456789";
pub const PASSWORD: &str = "SecurePass123!@#";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub clock: Clock,
    pub db: TestDb,
}

pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Tokens {
    pub fn from(body: &Value) -> Tokens {
        Tokens {
            access: body["access_token"].as_str().expect("access_token").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh_token").to_owned(),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(ServerConfig { login_rate_per_minute: 10_000, ..Default::default() }).await
}

pub async fn spawn_app_with(mut config: ServerConfig) -> TestApp {
    let db = TestDb::new().await;
    let start: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
    let clock = Clock::manual(start);
    let identity = IdentityService::new(
        EventStore::new(db.api.clone()),
        PasswordHasher::owasp().unwrap(),
        TokenService::new(&SecretString::from(JWT_SECRET)),
        clock.clone(),
    );
    config.bind = "127.0.0.1:0".into();
    let app = Application::build(config, identity, db.api.clone()).expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp { address, client: reqwest::Client::new(), clock, db }
}

impl TestApp {
    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> Response {
        let mut req = self.client.post(format!("{}{path}", self.address)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.get(format!("{}{path}", self.address));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn register(&self, org: &str, email: &str) -> Value {
        let r = self
            .post(
                "/api/auth/register",
                json!({"organization_name": org, "admin_email": email, "admin_password": PASSWORD, "admin_name": "Admin"}),
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "register {org}");
        r.json().await.unwrap()
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post("/api/auth/login", json!({"email": email, "password": password}), None).await
    }

    pub async fn login_ok(&self, email: &str, password: &str) -> Tokens {
        let r = self.login(email, password).await;
        assert_eq!(r.status(), StatusCode::OK, "login {email}");
        Tokens::from(&r.json().await.unwrap())
    }

    pub async fn me(&self, token: &str) -> Response {
        self.get("/api/auth/me", Some(token)).await
    }

    /// Invite a user with `role` into the admin's org, accept, log in.
    pub async fn user_with_role(&self, admin_access: &str, email: &str, role: &str) -> (String, Tokens) {
        let r = self
            .post(
                "/api/auth/invite",
                json!({"email": email, "full_name": "Some One", "role": role}),
                Some(admin_access),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "invite {email}");
        let invited: Value = r.json().await.unwrap();
        let token = invited["invitation_token"].as_str().unwrap();
        let r = self.post("/api/auth/accept-invite", json!({"token": token, "password": PASSWORD}), None).await;
        assert_eq!(r.status(), StatusCode::OK, "accept {email}");
        (invited["user"]["id"].as_str().unwrap().to_owned(), self.login_ok(email, PASSWORD).await)
    }

    /// Events of one type in the whole log (all orgs), read as the owner.
    pub async fn count_events(&self, event_type: &str, stream_id: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM event_log WHERE event_type = $1 AND stream_id = $2")
            .bind(event_type)
            .bind(stream_id)
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }
}

pub async fn detail(r: Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body["detail"].as_str().unwrap_or_default().to_owned())
}
