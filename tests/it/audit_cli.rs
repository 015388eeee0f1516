//! Audit bundles: export, offline verification that catches any edit, and import elsewhere
//! that rebuilds to the same read models.

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use secrecy::SecretString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use xdr_commands::auth::identity::RequestContext;
use xdr_commands::auth::{Clock, IdentityService, PasswordHasher, TokenService};
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;

fn run(db: Option<&TestDb>, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"));
    cmd.args(args)
        .env_remove("XDR_CONFIG")
        .env_remove("DATABASE_URL")
        .env_remove("XDR_MIGRATE_DATABASE_URL")
        .env_remove("XDR_API_DATABASE_URL");
    if let Some(db) = db {
        cmd.envs(db.env());
    }
    cmd.output().expect("run mini-xdr")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn source_db(with_other_org: bool) -> TestDb {
    let db = TestDb::new().await;
    let identity = IdentityService::new(
        EventStore::new(db.api.clone()),
        PasswordHasher::owasp().unwrap(),
        TokenService::new(&SecretString::from("audit-test-secret-0123456789abcdef")),
        Clock::system(),
    );
    let ctx = RequestContext { ip: Some("192.0.2.1".into()), user_agent: None, operator: false };
    let reg =
        identity.register("Audit Corp", "admin@audit.test", "SecurePass123!@#".into(), "Admin", &ctx).await.unwrap();
    let admin = identity.authenticate(&reg.tokens.access_token).await.unwrap();
    for i in 0..3 {
        identity.invite(&admin, &format!("u{i}@audit.test"), "User", "viewer", &ctx).await.unwrap();
    }
    let store = EventStore::new(db.api.clone());
    let meta = xdr_domain::EventMetadata::system("test");
    for name in ["kept", "revoked"] {
        let key = xdr_commands::ingest_keys::create_ingest_key(&store, admin.org_id, name, &meta).await.unwrap();
        if name == "revoked" {
            xdr_commands::ingest_keys::revoke_ingest_key(&store, admin.org_id, key.key_id, &meta).await.unwrap();
        }
    }
    if with_other_org {
        identity.register("Other Corp", "admin@other.test", "SecurePass123!@#".into(), "Other", &ctx).await.unwrap();
    }
    db
}

fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("xdr-audit-{}-{name}", uuid::Uuid::new_v4().simple()))
}

fn read_lines(path: &Path) -> Vec<String> {
    let mut text = String::new();
    GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut text).unwrap();
    text.lines().map(str::to_owned).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut gz = GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
    for l in lines {
        writeln!(gz, "{l}").unwrap();
    }
    gz.finish().unwrap();
}

#[tokio::test]
async fn an_exported_bundle_verifies_offline_and_any_edit_is_found_with_its_position() {
    let db = source_db(true).await;
    let bundle = temp_file("bundle.gz");
    ok(run(Some(&db), &["audit", "export", "--org", "audit-corp", "--out", bundle.to_str().unwrap()]));
    let out = ok(run(None, &["verify", "--bundle", bundle.to_str().unwrap()]));
    assert!(out.starts_with("ok: bundle of org"), "{out}");
    let lines = read_lines(&bundle);
    assert!(lines.len() > 5);
    assert!(lines.iter().skip(1).all(|l| !l.contains("Other Corp")), "only the exported org");

    let broken = |name: &str, lines: Vec<String>| {
        let path = temp_file(name);
        write_lines(&path, &lines);
        let out = run(None, &["verify", "--bundle", path.to_str().unwrap()]);
        std::fs::remove_file(&path).ok();
        assert_eq!(out.status.code(), Some(1), "{name} must fail");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // One character of the first event changed.
    let mut flipped = lines.clone();
    flipped[1] = flipped[1].replacen("Audit Corp", "Audit Corq", 1);
    assert_ne!(flipped[1], lines[1]);
    assert!(broken("flip", flipped).contains("event #1 (org_seq 1): hash mismatch"));
    // The third event dropped.
    let mut dropped = lines.clone();
    dropped.remove(3);
    assert!(broken("drop", dropped).contains("event #3 (org_seq 4): expected org_seq 3"));
    // Events 2 and 3 swapped.
    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    assert!(broken("swap", swapped).contains("event #2 (org_seq 3): expected org_seq 2"));
    // The last event removed (and the manifest left alone).
    let mut truncated = lines.clone();
    truncated.pop();
    assert!(broken("truncate", truncated).contains("manifest promises"));
    std::fs::remove_file(&bundle).ok();
}

#[tokio::test]
async fn an_imported_bundle_rebuilds_to_the_same_digest_as_its_source() {
    let source = source_db(false).await;
    let bundle = temp_file("bundle.gz");
    ok(run(Some(&source), &["audit", "export", "--org", "audit-corp", "--out", bundle.to_str().unwrap()]));
    let source_digest = ok(run(Some(&source), &["rebuild"]));

    let target = TestDb::new().await;
    ok(run(Some(&target), &["audit", "import", bundle.to_str().unwrap()]));
    ok(run(Some(&target), &["verify"]));
    assert_eq!(ok(run(Some(&target), &["rebuild"])), source_digest);
    let replayed = ok(run(Some(&target), &["replay", "--org", "audit-corp", "--type", "UserCreated"]));
    assert_eq!(replayed.lines().count(), 4);
    // Producer keys keep working after a restore, and a revoked one stays revoked.
    // (Read as the owner: no runtime login may list the key lookup.)
    let keys = |db: &TestDb| {
        let owner = db.options.clone();
        async move {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&owner).await.unwrap();
            sqlx::query_as::<_, (String, bool)>(
                "SELECT encode(key_hash, 'hex'), revoked_at IS NOT NULL FROM ingest_key_lookup ORDER BY 1",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap()
        }
    };
    let restored = keys(&target).await;
    assert_eq!(restored.len(), 2);
    assert_eq!(restored, keys(&source).await);

    // Importing into a database that already has the org is refused.
    let out = run(Some(&target), &["audit", "import", bundle.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds events"));
    std::fs::remove_file(&bundle).ok();
}

#[tokio::test]
async fn a_truncated_tail_with_a_rewound_head_is_caught_by_the_anchors() {
    use sqlx::Executor;
    let db = source_db(false).await;
    let prefix = format!("t{}.", uuid::Uuid::new_v4().simple());
    let anchor_file = temp_file("anchors.jsonl");
    let with_anchors = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"));
        cmd.args(args)
            .env_remove("XDR_CONFIG")
            .envs(db.env())
            .env("XDR_NATS_PREFIX", &prefix)
            .env("XDR_ANCHOR_FILE", &anchor_file);
        cmd.output().expect("run mini-xdr")
    };
    let anchored = ok(with_anchors(&["audit", "anchor"]));
    let anchor: serde_json::Value = serde_json::from_str(anchored.lines().next().unwrap()).unwrap();
    let head = anchor["org_seq"].as_i64().unwrap();
    assert!(head > 3);
    ok(with_anchors(&["verify", "--anchors", "--anchor-file", anchor_file.to_str().unwrap()]));

    // The attacker deletes the newest two events and rewinds the head to the new end.
    let mut conn = db.owner_conn().await;
    conn.execute("SET session_replication_role = replica").await.unwrap();
    let org = anchor["org_id"].as_str().unwrap();
    conn.execute(format!("DELETE FROM event_log WHERE org_id = '{org}' AND org_seq > {}", head - 2).as_str())
        .await
        .unwrap();
    conn.execute(
        format!(
            "UPDATE org_heads h SET last_seq = e.org_seq, last_hash = e.hash FROM event_log e \
             WHERE h.org_id = '{org}' AND e.org_id = h.org_id AND e.org_seq = {}",
            head - 2
        )
        .as_str(),
    )
    .await
    .unwrap();

    // The chain alone cannot tell…
    ok(run(Some(&db), &["verify"]));
    // …the anchors can, from NATS and from the file.
    for args in [vec!["verify", "--anchors"], vec!["verify", "--anchor-file", anchor_file.to_str().unwrap()]] {
        let out = with_anchors(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("org {org} org_seq {head}:")), "{text}");
        assert!(text.contains("the tail was truncated") && text.contains("anchor of"), "{text}");
    }

    let nats = async_nats::connect("nats://127.0.0.1:4222").await.unwrap();
    let _ = async_nats::jetstream::new(nats)
        .delete_stream(xdr_audit::anchors::AnchorConfig::with_prefix(&prefix).stream_name)
        .await;
    std::fs::remove_file(&anchor_file).ok();
}
