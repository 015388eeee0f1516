//! HTTPS: the server speaks TLS with a given certificate and answers GraphQL over it.

use std::process::Command;

// curl blocks its thread; the server needs another one to answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graphql_request_completes_over_https_with_a_self_signed_certificate() {
    let dir = std::env::temp_dir().join(format!("xdr-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));

    let app = crate::helpers::spawn_app_with(xdr_graphql::ServerConfig {
        tls: Some((cert.clone(), key.clone())),
        ..Default::default()
    })
    .await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let curl = |scheme: &str| {
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&cert)
            .args(["-H", "content-type: application/json", "-d", r#"{"query":"{ __typename }"}"#])
            .arg(format!("{scheme}://localhost:{port}/graphql"))
            .output()
            .unwrap()
    };
    let https = curl("https");
    assert!(https.status.success(), "{}", String::from_utf8_lossy(&https.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&https.stdout).unwrap();
    assert_eq!(answer["data"], serde_json::json!({"__typename": "Query"}), "{answer}");
    // Served over TLS, every answer asks the browser to stay on HTTPS.
    let headers = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o", "/dev/null", "-D", "-", "--cacert"])
        .arg(&cert)
        .arg(format!("https://localhost:{port}/healthz"))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&headers.stdout).to_lowercase();
    assert!(headers.contains("strict-transport-security: max-age=31536000; includesubdomains"), "{headers}");
    // Plain HTTP to the TLS port gets no GraphQL answer.
    let plain = curl("http");
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("__typename")
            && !String::from_utf8_lossy(&plain.stdout).contains("Query")
    );

    // A missing key file is a clear error, not a panic.
    let err = xdr_graphql::Application::build(
        xdr_graphql::ServerConfig {
            bind: "127.0.0.1:0".into(),
            tls: Some((cert, dir.join("missing.pem"))),
            ..Default::default()
        },
        xdr_commands::auth::IdentityService::new(
            xdr_commands::EventStore::new(app.db.api.clone()),
            xdr_commands::auth::PasswordHasher::owasp().unwrap(),
            xdr_commands::auth::TokenService::new(&secrecy::SecretString::from(crate::helpers::JWT_SECRET)),
            xdr_commands::auth::Clock::system(),
        ),
        app.db.api.clone(),
    )
    .err()
    .expect("missing key refused");
    assert!(err.to_string().contains("missing.pem"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
