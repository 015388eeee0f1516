//! `mini-xdr rebuild --org ORG --until T|SEQ --into SCHEMA`: the read models as they were at a
//! point of the log, in a schema of their own, equal to a rebuild of a log that really ends
//! there — and the live read models untouched.

use secrecy::SecretString;
use std::process::Output;
use xdr_commands::auth::identity::RequestContext;
use xdr_commands::auth::{Clock, IdentityService, PasswordHasher, TokenService};
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_domain::ids::OrgId;
use xdr_domain::incident::{Incident, IncidentCommand, IncidentStatus, UpdateIncidentStatus};
use xdr_domain::EventMetadata;

const PASSWORD: &str = "SecurePass123!@#";

fn run(db: &TestDb, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .args(args)
        .envs(db.env())
        .env_remove("XDR_CONFIG")
        .output()
        .expect("run mini-xdr")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Exit code 2 and stderr, for the refusals.
fn refused(out: Output) -> String {
    assert_eq!(out.status.code(), Some(2), "stdout: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct History {
    db: TestDb,
    org: OrgId,
    /// The org's head at the end of the first phase: the cut.
    cut: i64,
    /// A time between the two phases.
    between: chrono::DateTime<chrono::Utc>,
}

async fn set_status(store: &EventStore, org: OrgId, incident: xdr_domain::ids::IncidentId, status: IncidentStatus) {
    let stream = incident.stream_id();
    let command = IncidentCommand::UpdateStatus(UpdateIncidentStatus {
        incident_id: incident,
        status,
        note: Some("scripted".into()),
        by_user: None,
        now: chrono::Utc::now(),
    });
    xdr_commands::handler::execute::<Incident>(store, org, &stream, &command, &EventMetadata::system("operator"), None)
        .await
        .unwrap();
}

/// Phase 1: register, invite, an ingest key, the real Cowrie log through detection (incidents),
/// one incident contained. Phase 2 (after the cut): more users, a lockout, the key revoked, the
/// incident resolved, more telemetry, and a second org.
async fn scripted_history() -> History {
    let db = TestDb::new().await;
    let store = EventStore::new(db.api.clone());
    let identity = IdentityService::new(
        store.clone(),
        PasswordHasher::owasp().unwrap(),
        TokenService::new(&SecretString::from("rebuild-into-test-secret-0123456789")),
        Clock::system(),
    );
    let ctx = RequestContext { ip: Some("198.51.100.7".into()), user_agent: None, operator: false };
    let reg = identity.register("Cut Corp", "admin@cut.test", PASSWORD.into(), "Admin", &ctx).await.unwrap();
    let admin = identity.authenticate(&reg.tokens.access_token).await.unwrap();
    let org = admin.org_id;
    let ann = identity.invite(&admin, "ann@cut.test", "Ann", "analyst", &ctx).await.unwrap();
    identity.accept_invite(&ann.invitation_token, PASSWORD.into(), &ctx).await.unwrap();
    let meta = EventMetadata::system("test");
    let key = xdr_commands::ingest_keys::create_ingest_key(&store, org, "honeypot", &meta).await.unwrap();
    let cowrie =
        std::fs::read_to_string(format!("{}/domain/tests/fixtures/cowrie.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let ingest = |body: String, label: &'static str| {
        let store = store.clone();
        async move {
            xdr_commands::ingest::ingest_body(
                &store,
                chrono::Utc::now(),
                org,
                key.key_id,
                xdr_domain::telemetry::SourceType::Cowrie,
                None,
                &body,
                label,
            )
            .await
            .unwrap();
        }
    };
    ingest(cowrie.clone(), "first").await;
    let mut detector = xdr_inference::Detector::default();
    let commands: Vec<_> =
        store.read_org(org, 0, 100_000).await.unwrap().iter().flat_map(|e| detector.process(e)).collect();
    xdr_inference::execute_commands(&store, &commands).await.unwrap();
    let incident = commands[0].incident_id;
    set_status(&store, org, incident, IncidentStatus::Contained).await;
    let cut: i64 = sqlx::query_scalar("SELECT last_seq FROM org_heads WHERE org_id = $1")
        .bind(org.0)
        .fetch_one(&db.pool)
        .await
        .unwrap();

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let bob = identity.invite(&admin, "bob@cut.test", "Bob", "viewer", &ctx).await.unwrap();
    identity.lock_user(&admin, xdr_domain::ids::UserId(ann.user.id), None, &ctx).await.unwrap();
    xdr_commands::ingest_keys::revoke_ingest_key(&store, org, key.key_id, &meta).await.unwrap();
    set_status(&store, org, incident, IncidentStatus::Resolved).await;
    // The same records again under another dedupe label: new events, new rows.
    ingest(cowrie, "second").await;
    identity.register("Other Corp", "admin@other.test", PASSWORD.into(), "Other", &ctx).await.unwrap();
    assert!(!bob.invitation_token.is_empty());
    History { db, org, cut, between }
}

async fn checkpoints(db: &TestDb) -> Vec<(String, uuid::Uuid, i64)> {
    sqlx::query_as("SELECT projection, org_id, last_seq FROM projection_checkpoints ORDER BY 1, 2")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_rebuild_into_a_schema_equals_a_rebuild_of_the_log_cut_there_and_leaves_live_models_alone() {
    let h = scripted_history().await;
    let live = ok(run(&h.db, &["rebuild"]));
    let live_checkpoints = checkpoints(&h.db).await;
    let org = h.org.0.to_string();
    let live_org = ok(run(&h.db, &["digest", "--org", "cut-corp"]));

    let cut = h.cut.to_string();
    let out = run(&h.db, &["rebuild", "--org", "cut-corp", "--until", &cut, "--into", "audit_cut"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let at_cut = ok(out);
    assert_eq!(at_cut.len(), 64, "{at_cut}");
    assert!(stderr.contains(&format!("up to org_seq {cut} of ")), "{stderr}");
    assert!(stderr.contains(&format!("from {cut} events")), "{stderr}");
    assert_eq!(ok(run(&h.db, &["digest", "--org", &org, "--schema", "audit_cut"])), at_cut);
    assert_ne!(at_cut, live_org, "the cut excludes the second phase");

    // The live read models, their digest and their checkpoints are exactly as before.
    assert_eq!(ok(run(&h.db, &["digest"])), live);
    assert_eq!(checkpoints(&h.db).await, live_checkpoints);

    // The schema holds what the first phase produced: Ann unlocked, the key live, the
    // incident contained, one copy of the telemetry.
    let mut owner = h.db.owner_conn().await;
    let (locked, revoked, status, telemetry): (bool, bool, String, i64) = sqlx::query_as(
        "SELECT (SELECT bool_or(locked_until IS NOT NULL) FROM audit_cut.rm_users), \
                (SELECT bool_or(revoked_at IS NOT NULL) FROM audit_cut.rm_ingest_keys), \
                (SELECT string_agg(DISTINCT status, ',') FROM audit_cut.rm_incidents WHERE status <> 'open'), \
                (SELECT count(*) FROM audit_cut.rm_security_events)",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!((locked, revoked, status.as_str(), telemetry), (false, false, "contained", 234));
    let live_telemetry: i64 = sqlx::query_scalar("SELECT count(*) FROM public.rm_security_events WHERE org_id = $1")
        .bind(h.org.0)
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(live_telemetry, 468);

    // The reference: a log that really ends at the cut (exported up to it, imported into a
    // fresh database, rebuilt there).
    let bundle = std::env::temp_dir().join(format!("xdr-cut-{}.gz", uuid::Uuid::new_v4().simple()));
    let bundle_path = bundle.to_str().unwrap();
    ok(run(&h.db, &["audit", "export", "--org", "cut-corp", "--until", &cut, "--out", bundle_path]));
    let reference = TestDb::new().await;
    ok(run(&reference, &["audit", "import", bundle_path]));
    std::fs::remove_file(&bundle).ok();
    assert_eq!(ok(run(&reference, &["rebuild"])), at_cut);
}

#[tokio::test]
async fn a_time_cut_takes_the_last_event_recorded_by_then() {
    let h = scripted_history().await;
    let between = h.between.to_rfc3339();
    let out = run(&h.db, &["rebuild", "--org", "cut-corp", "--until", &between, "--into", "at_time"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let by_time = ok(out);
    assert!(stderr.contains(&format!("up to org_seq {} of ", h.cut)), "{stderr}");
    let cut = h.cut.to_string();
    let by_seq = ok(run(&h.db, &["rebuild", "--org", "cut-corp", "--until", &cut, "--into", "at_seq"]));
    assert_eq!(by_time, by_seq);

    // Before the first event there is nothing to show; a seq beyond the head does not exist.
    let err = refused(run(&h.db, &["rebuild", "--org", "cut-corp", "--until", "2001-01-01T00:00:00Z", "--into", "x"]));
    assert!(err.contains("no event recorded at or before"), "{err}");
    let err = refused(run(&h.db, &["rebuild", "--org", "cut-corp", "--until", "999999", "--into", "x"]));
    assert!(err.contains("has only"), "{err}");
    let out = run(&h.db, &["rebuild", "--org", "cut-corp", "--until", "yesterday", "--into", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither an org_seq number nor an RFC 3339 timestamp"));
    // Nothing was left behind by the refusals.
    let schemas: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'x'")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(schemas, 0);
}

#[tokio::test]
async fn an_existing_schema_unknown_orgs_and_bad_names_are_refused() {
    use sqlx::Executor;
    let db = TestDb::new().await;
    let identity = IdentityService::new(
        EventStore::new(db.api.clone()),
        PasswordHasher::owasp().unwrap(),
        TokenService::new(&SecretString::from("rebuild-into-test-secret-0123456789")),
        Clock::system(),
    );
    let ctx = RequestContext { ip: None, user_agent: None, operator: false };
    identity.register("Cut Corp", "admin@cut.test", PASSWORD.into(), "Admin", &ctx).await.unwrap();
    let mut owner = db.owner_conn().await;
    owner
        .execute("CREATE SCHEMA taken; CREATE TABLE taken.notes (body text); INSERT INTO taken.notes VALUES ('keep')")
        .await
        .unwrap();

    let err = refused(run(&db, &["rebuild", "--org", "cut-corp", "--into", "taken"]));
    assert!(err.contains("schema \"taken\" already exists and holds 1 table(s)"), "{err}");
    // --replace drops only schemas an earlier `rebuild --into` made.
    let err = refused(run(&db, &["rebuild", "--org", "cut-corp", "--into", "taken", "--replace"]));
    assert!(err.contains("was not made by `rebuild --into`"), "{err}");
    let kept: String = sqlx::query_scalar("SELECT body FROM taken.notes").fetch_one(&mut owner).await.unwrap();
    assert_eq!(kept, "keep");

    // An empty schema is used; a second run needs --replace, which then rebuilds it.
    owner.execute("CREATE SCHEMA empty_one").await.unwrap();
    let first = ok(run(&db, &["rebuild", "--org", "cut-corp", "--into", "empty_one"]));
    let err = refused(run(&db, &["rebuild", "--org", "cut-corp", "--into", "empty_one"]));
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(ok(run(&db, &["rebuild", "--org", "cut-corp", "--into", "empty_one", "--replace"])), first);

    let err = refused(run(&db, &["rebuild", "--org", "no-such-corp", "--into", "s"]));
    assert!(err.contains("no organization with slug or id"), "{err}");
    let stranger = uuid::Uuid::new_v4().to_string();
    let err = refused(run(&db, &["rebuild", "--org", &stranger, "--into", "s"]));
    assert!(err.contains("has no events"), "{err}");
    for bad in ["public", "Bad-Name", "pg_mine"] {
        let err = refused(run(&db, &["rebuild", "--org", "cut-corp", "--into", bad]));
        assert!(err.contains("invalid schema name"), "{bad}: {err}");
    }
    let err = refused(run(&db, &["digest", "--org", "cut-corp", "--schema", "nowhere"]));
    assert!(err.contains("no schema named"), "{err}");
}
