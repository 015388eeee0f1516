//! `mini-xdr api` under a 256 MiB body: every route class answers 413 (declared or chunked,
//! anonymous or not) and the process's peak memory grows by less than the route's limit plus a
//! small margin, read from `/proc/<pid>/status` of the spawned server. Its probes live on their
//! own listener, away from the public one.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xdr_commands::testing::TestDb;

use crate::support::{free_port, Process};

const HUGE: usize = 256 * 1024 * 1024;
/// What may grow besides the buffered body: allocator arenas of the worker threads, one read
/// buffer per connection, the JSON of an error answer.
const MARGIN: u64 = 16 * 1024 * 1024;

/// Peak resident memory of `pid` so far, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib * 1024
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    Declared,
    Chunked,
}

/// POST `size` bytes in 1 MiB pieces (never more held here), reading the answer while sending.
async fn post_huge(port: u16, path: &str, headers: &[(&str, &str)], size: usize, framing: Framing) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&match framing {
        Framing::Declared => format!("Content-Length: {size}\r\n\r\n"),
        Framing::Chunked => "Transfer-Encoding: chunked\r\n\r\n".to_owned(),
    });
    let sender = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let mut piece = vec![b'a'; 1 << 20];
        piece[..11].copy_from_slice(br#"{"query": ""#);
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
            piece[..11].fill(b'a');
        }
        if let Framing::Chunked = framing {
            writer.write_all(b"0\r\n\r\n").await?;
        }
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
        answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no answer: {answer:?}"));
    (status, answer)
}

/// A path, the headers it needs, and its body limit.
type Route<'a> = (&'a str, Vec<(&'a str, &'a str)>, usize);

#[tokio::test]
async fn a_256_mib_body_gets_413_on_every_route_class_without_the_server_holding_it() {
    let db = TestDb::new().await;
    let (port, probe_port) = (free_port(), free_port());
    let server = Process(
        std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
            .arg("api")
            .envs(db.env())
            .env("XDR_BIND", format!("127.0.0.1:{port}"))
            .env("XDR_PROBE_BIND", format!("127.0.0.1:{probe_port}"))
            .env("JWT_SECRET_KEY", "limits-test-secret-0123456789abcdef0123")
            // No NATS: the API serves without it, and nothing here needs it.
            .env("NATS_URL", "nats://127.0.0.1:1")
            .env("RUST_LOG", "error")
            .env_remove("XDR_CONFIG")
            .env_remove("XDR_BODY_LIMIT_BYTES")
            .env_remove("XDR_GRAPHQL_BODY_LIMIT_BYTES")
            .env_remove("XDR_INGEST_BODY_LIMIT_BYTES")
            .spawn()
            .expect("start mini-xdr api"),
    );
    let pid = server.0.id();
    let client = reqwest::Client::new();
    let (base, probes) = (format!("http://127.0.0.1:{port}"), format!("http://127.0.0.1:{probe_port}"));
    let started = Instant::now();
    while !client.get(format!("{probes}/readyz")).send().await.map(|r| r.status().is_success()).unwrap_or(false) {
        assert!(started.elapsed() < Duration::from_secs(30), "api did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The public listener has no readiness or metrics; the probe listener has.
    assert_eq!(client.get(format!("{base}/readyz")).send().await.unwrap().status(), 404);
    assert_eq!(client.get(format!("{base}/metrics")).send().await.unwrap().status(), 404);
    assert_eq!(client.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);

    // Warm up everything the routes allocate once (argon2's memory, pools, the schema).
    let reg: serde_json::Value = client
        .post(format!("{base}/api/auth/register"))
        .json(&serde_json::json!({"organization_name": "Limits Corp", "admin_email": "admin@limits.test",
                                  "admin_password": "SecurePass123!@#", "admin_name": "Admin"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(reg["access_token"].is_string(), "registered: {reg}");
    // The key from the operator CLI (no projector runs beside `api` to confirm a GraphQL write).
    let created = std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .args(["ingest-key", "create", "--org", "limits-corp", "--name", "hp"])
        .envs(db.env())
        .env("RUST_LOG", "error")
        .env_remove("XDR_CONFIG")
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    for path in ["/graphql", "/api/auth/login", "/ingest/cowrie"] {
        let _ = client.post(format!("{base}{path}")).header("X-Ingest-Key", &key).body("{}").send().await;
    }

    let (mib, defaults) = (1024 * 1024, xdr_graphql::BodyLimits::default());
    let routes: [Route; 4] = [
        ("/graphql", vec![], defaults.graphql),
        ("/api/auth/login", vec![], defaults.api),
        ("/api/auth/register", vec![], defaults.api),
        ("/ingest/cowrie", vec![("X-Ingest-Key", key.as_str())], defaults.ingest),
    ];
    let mut report = Vec::new();
    for (path, headers, limit) in &routes {
        for framing in [Framing::Declared, Framing::Chunked] {
            let before = peak_rss(pid);
            let (status, answer) = post_huge(port, path, headers, HUGE, framing).await;
            assert_eq!(status, 413, "{path} {framing:?}: {answer}");
            // The server is still there and answers the next request.
            assert_eq!(client.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
            let grown = peak_rss(pid).saturating_sub(before);
            report.push(format!("{path} {framing:?}: peak RSS +{:.1} MiB", grown as f64 / mib as f64));
            assert!(
                grown < *limit as u64 + MARGIN,
                "{path} {framing:?}: peak RSS grew {grown} bytes under a {HUGE}-byte body (limit {limit})"
            );
        }
    }
    eprintln!("{}", report.join("\n"));
    let metrics = client.get(format!("{probes}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("xdr_http_bodies_too_large_total 8"), "{metrics}");
}
