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
pub const ENCRYPTION_KEY: &str = "test-encryption-key-0123456789abcdef";

pub struct TestApp {
    pub address: String,
    /// `http://127.0.0.1:<port>` of `/readyz` and `/metrics` when `probe_bind` was set.
    pub probe_address: Option<String>,
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
    spawn_app_with(unlimited()).await
}

/// Defaults, with rate limits no test that is not about them reaches.
pub fn unlimited() -> ServerConfig {
    ServerConfig {
        login_rate_per_minute: 10_000,
        register_rate_per_minute: 10_000,
        refresh_rate_per_minute: 10_000,
        password_reset_rate_per_minute: 10_000,
        ..Default::default()
    }
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
    )
    .with_secret_sealer(xdr_commands::auth::totp::SecretSealer::new(&SecretString::from(ENCRYPTION_KEY), &[]));
    config.bind = "127.0.0.1:0".into();
    if config.probe_bind.is_some() {
        config.probe_bind = Some("127.0.0.1:0".into());
    }
    let app = Application::build(config, identity, db.api.clone()).expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let probe_address = app.probe_port().map(|p| format!("http://127.0.0.1:{p}"));
    tokio::spawn(app.run_until_stopped());
    TestApp { address, probe_address, client: reqwest::Client::new(), clock, db }
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

/// How [`post_raw`] sends its body.
#[derive(Debug, Clone, Copy)]
pub enum Framing {
    /// `Content-Length` announces the whole size up front.
    Declared,
    /// `Transfer-Encoding: chunked`: the server learns the size only by reading.
    Chunked,
}

/// POST `size` bytes to `path` over a raw connection, streamed in 1 MiB pieces without ever
/// holding more than one, reading the answer while still sending (a server that answers early
/// and closes is what a limit looks like). Returns the status and the head of the answer.
pub async fn post_raw(port: u16, path: &str, headers: &[(&str, &str)], size: usize, framing: Framing) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match framing {
        Framing::Declared => head.push_str(&format!("Content-Length: {size}\r\n\r\n")),
        Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n\r\n"),
    }
    let sender = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        // An unterminated JSON string: nothing can reject it before the end but a size limit.
        let opening = br#"{"query": ""#;
        let mut piece = vec![b'a'; 1 << 20];
        piece[..opening.len()].copy_from_slice(opening);
        let mut sent = 0;
        while sent < size {
            let n = piece.len().min(size - sent);
            if let Framing::Chunked = framing {
                writer.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            }
            writer.write_all(&piece[..n]).await?;
            if let Framing::Chunked = framing {
                writer.write_all(b"\r\n").await?;
            }
            sent += n;
            piece[..opening.len()].fill(b'a');
        }
        if let Framing::Chunked = framing {
            writer.write_all(b"0\r\n\r\n").await?;
        }
        writer.flush().await?;
        Ok::<_, std::io::Error>(writer)
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    sender.abort();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status =
        answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    (status, answer)
}

/// `http://127.0.0.1:<port>` → the port.
pub fn port_of(address: &str) -> u16 {
    address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port")
}
