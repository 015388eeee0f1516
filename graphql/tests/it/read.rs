//! GraphQL reads are scoped by the token's org: another org's data never appears, whatever
//! the query asks; pages are bounded and walk every row once.

use serde_json::{json, Value};
use uuid::Uuid;
use xdr_commands::{EventStore, NewEvent};
use xdr_domain::ids::OrgId;
use xdr_domain::telemetry::{SecurityEvent, SourceType};
use xdr_domain::{Event, EventMetadata};

use crate::helpers::{spawn_app, TestApp, PASSWORD};

async fn gql(app: &TestApp, query: &str, variables: Value, token: &str) -> Value {
    let r = app.post("/graphql", json!({"query": query, "variables": variables}), Some(token)).await;
    r.json().await.unwrap()
}

/// `n` failed-login records from `src_ip` into `org`'s log.
async fn telemetry(app: &TestApp, org: &str, src_ip: &str, n: usize, offset: usize) {
    let org = OrgId(Uuid::parse_str(org).unwrap());
    let events = (0..n)
        .map(|i| {
            let mut e = SecurityEvent::new(
                chrono::Utc::now(),
                SourceType::Cowrie,
                "cowrie.login.failed",
                json!({"seq": i + offset, "src_ip": src_ip}),
            );
            e.src_ip = Some(src_ip.parse().unwrap());
            e.username = Some(format!("user{}", i + offset));
            NewEvent::from_event(
                Uuid::now_v7(),
                "source-cowrie-test",
                &Event::SecurityEventObserved(e),
                &EventMetadata::system("test"),
            )
        })
        .collect();
    EventStore::new(app.db.pool.clone()).append_batch(org, events).await.unwrap();
}

async fn project(app: &TestApp) {
    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
}

const EVENTS: &str = "query($first: Int, $after: String, $filter: EventFilter) {
  events(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id orgSeq srcIp eventType username raw } }
    pageInfo { hasNextPage endCursor } } }";

#[tokio::test]
async fn every_list_shows_only_the_callers_org() {
    let app = spawn_app().await;
    let a = app.register("Org A", "admin@a.com").await;
    let b = app.register("Org B", "admin@b.com").await;
    let a_token = app.login_ok("admin@a.com", PASSWORD).await.access;
    let b_token = app.login_ok("admin@b.com", PASSWORD).await.access;
    app.user_with_role(&b_token, "analyst@b.com", "analyst").await;
    telemetry(&app, a["organization"]["id"].as_str().unwrap(), "10.0.0.1", 3, 0).await;
    telemetry(&app, b["organization"]["id"].as_str().unwrap(), "10.0.0.2", 5, 0).await;
    project(&app).await;

    let r = gql(
        &app,
        "{ organization { id slug } users { edges { node { email organizationId } } } }",
        json!({}),
        &a_token,
    )
    .await;
    assert_eq!(r["data"]["organization"]["slug"], "org-a");
    let emails: Vec<&str> =
        r["data"]["users"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["email"].as_str().unwrap()).collect();
    assert_eq!(emails, vec!["admin@a.com"]);

    let r = gql(&app, EVENTS, json!({}), &a_token).await;
    let edges = r["data"]["events"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 3);
    assert!(edges.iter().all(|e| e["node"]["srcIp"] == "10.0.0.1"));
    // Asking for B's source by filter returns nothing, not B's data.
    let r = gql(&app, EVENTS, json!({"filter": {"srcIp": "10.0.0.2"}}), &a_token).await;
    assert_eq!(r["data"]["events"]["edges"].as_array().unwrap().len(), 0);

    let r = gql(
        &app,
        "{ auditLog(first: 100) { edges { node { streamId eventType actorUserId } } } }",
        json!({}),
        &a_token,
    )
    .await;
    let entries = r["data"]["auditLog"]["edges"].as_array().unwrap();
    assert!(!entries.is_empty());
    let a_admin = a["user"]["id"].as_str().unwrap();
    let b_streams = [
        format!("org-{}", b["organization"]["id"].as_str().unwrap()),
        format!("user-{}", b["user"]["id"].as_str().unwrap()),
    ];
    for e in entries {
        assert!(!b_streams.contains(&e["node"]["streamId"].as_str().unwrap().to_owned()), "{e}");
        assert!(e["node"]["actorUserId"].is_null() || e["node"]["actorUserId"] == a_admin, "{e}");
    }
    assert!(!r.to_string().contains("password_hash"));
}

#[tokio::test]
async fn the_audit_log_is_for_admins_only() {
    let app = spawn_app().await;
    app.register("Org A", "admin@a.com").await;
    let admin = app.login_ok("admin@a.com", PASSWORD).await.access;
    let (_, analyst) = app.user_with_role(&admin, "analyst@a.com", "analyst").await;
    let r = gql(&app, "{ auditLog { edges { cursor } } }", json!({}), &analyst.access).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN");
}

#[tokio::test]
async fn walking_pages_of_seven_sees_each_event_once_while_new_ones_arrive() {
    let app = spawn_app().await;
    let a = app.register("Org A", "admin@a.com").await;
    let org = a["organization"]["id"].as_str().unwrap().to_owned();
    let token = app.login_ok("admin@a.com", PASSWORD).await.access;
    telemetry(&app, &org, "10.0.0.1", 100, 0).await;
    project(&app).await;

    let mut seen: Vec<i64> = Vec::new();
    let mut after: Option<String> = None;
    for page in 0.. {
        let r = gql(&app, EVENTS, json!({"first": 7, "after": after}), &token).await;
        let events = &r["data"]["events"];
        seen.extend(events["edges"].as_array().unwrap().iter().map(|e| e["node"]["orgSeq"].as_i64().unwrap()));
        if page == 3 {
            // New telemetry arrives mid-walk: it lands before the cursor, not inside the walk.
            telemetry(&app, &org, "10.0.0.9", 10, 1000).await;
            project(&app).await;
        }
        if events["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = events["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let expected: Vec<i64> = {
        let mut all: Vec<i64> = sqlx::query_scalar("SELECT org_seq FROM event_log WHERE org_id = $1::uuid AND event_type = 'SecurityEventObserved' ORDER BY org_seq DESC")
            .bind(&org)
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
        all.retain(|s| *s <= seen[0]);
        all
    };
    assert_eq!(seen.len(), 100);
    assert_eq!(seen, expected, "each event once, newest first");
}

#[tokio::test]
async fn oversized_pages_and_bad_cursors_are_rejected_clearly() {
    let app = spawn_app().await;
    app.register("Org A", "admin@a.com").await;
    let token = app.login_ok("admin@a.com", PASSWORD).await.access;
    let r = gql(&app, EVENTS, json!({"first": 501}), &token).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(r["errors"][0]["message"], "first must be at most 500");
    let r = gql(&app, EVENTS, json!({"after": "!!"}), &token).await;
    assert_eq!(r["errors"][0]["message"], "invalid cursor");
    let r = gql(&app, EVENTS, json!({"filter": {"srcIp": "not-an-ip"}}), &token).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert!(!r.to_string().contains("SELECT"), "no SQL in errors");
}

#[tokio::test]
async fn a_mutation_returns_after_its_change_is_readable() {
    // A server that waits for the projections, and a projector running beside it.
    let app = crate::helpers::spawn_app_with(xdr_graphql::ServerConfig {
        read_your_writes: Some(std::time::Duration::from_secs(10)),
        ..crate::helpers::unlimited()
    })
    .await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let projector = tokio::spawn(xdr_projections::run_projector(app.db.pool.clone(), async {
        let _ = stopped.await;
    }));
    app.register("Org A", "admin@a.com").await;
    let admin = app.login_ok("admin@a.com", PASSWORD).await.access;
    let invite = "mutation { inviteUser(email: \"new@a.com\", fullName: \"New\", role: VIEWER) { invitationToken } }";
    let r = gql(&app, invite, json!({}), &admin).await;
    assert!(r["data"]["inviteUser"]["invitationToken"].is_string(), "{r}");
    // Immediately: the read model already has the invitee.
    let r = gql(&app, "{ users { edges { node { email } } } }", json!({}), &admin).await;
    let emails: Vec<&str> =
        r["data"]["users"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["email"].as_str().unwrap()).collect();
    assert!(emails.contains(&"new@a.com"), "{r}");
    let _ = stop.send(());
    projector.await.unwrap();
}

/// A telemetry event an older version stored with a time PostgreSQL cannot hold.
async fn poison(app: &TestApp, org: &str) -> i64 {
    let org = OrgId(Uuid::parse_str(org).unwrap());
    let e = SecurityEvent::new(chrono::Utc::now(), SourceType::Cowrie, "cowrie.session.connect", json!({}));
    let mut new = NewEvent::from_event(
        Uuid::now_v7(),
        "source-cowrie-old",
        &Event::SecurityEventObserved(e),
        &EventMetadata::system("test"),
    );
    new.payload["timestamp"] = json!("0000-01-01T00:00:00Z");
    EventStore::new(app.db.pool.clone()).append_batch(org, vec![new]).await.unwrap().last_seq
}

const QUARANTINED: &str = "query($first: Int, $after: String) { quarantinedEvents(first: $first, after: $after) {
  edges { cursor node { projection orgSeq eventType error quarantinedAt } } pageInfo { hasNextPage endCursor } } }";

#[tokio::test]
async fn quarantined_events_are_shown_to_their_orgs_admins_only_and_counted_in_metrics() {
    let app = spawn_app().await;
    let a = app.register("Org A", "admin@a.com").await;
    app.register("Org B", "admin@b.com").await;
    let a_org = a["organization"]["id"].as_str().unwrap().to_owned();
    let a_token = app.login_ok("admin@a.com", PASSWORD).await.access;
    let b_token = app.login_ok("admin@b.com", PASSWORD).await.access;
    let (_, analyst) = app.user_with_role(&a_token, "analyst@a.com", "analyst").await;
    let first = poison(&app, &a_org).await;
    telemetry(&app, &a_org, "10.0.0.1", 2, 0).await;
    let second = poison(&app, &a_org).await;
    project(&app).await;

    let r = gql(&app, QUARANTINED, json!({"first": 1}), &a_token).await;
    let page = &r["data"]["quarantinedEvents"];
    let node = &page["edges"][0]["node"];
    assert_eq!(node["orgSeq"], second, "{r}");
    assert_eq!(
        (node["projection"].as_str(), node["eventType"].as_str()),
        (Some("security_events"), Some("SecurityEventObserved"))
    );
    assert!(node["error"].as_str().unwrap().contains("out of range"), "{node}");
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let r = gql(&app, QUARANTINED, json!({"first": 5, "after": page["pageInfo"]["endCursor"]}), &a_token).await;
    let rest: Vec<i64> = r["data"]["quarantinedEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["orgSeq"].as_i64().unwrap())
        .collect();
    assert_eq!(rest, [first]);
    // The org's other telemetry went on.
    assert_eq!(gql(&app, EVENTS, json!({}), &a_token).await["data"]["events"]["edges"].as_array().unwrap().len(), 2);

    let r = gql(&app, QUARANTINED, json!({}), &b_token).await;
    assert_eq!(r["data"]["quarantinedEvents"]["edges"], json!([]), "another org sees nothing");
    let r = gql(&app, QUARANTINED, json!({}), &analyst.access).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN");

    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("# TYPE xdr_projection_quarantined_events gauge"), "{metrics}");
    assert!(metrics.contains("xdr_projection_quarantined_events{projection=\"security_events\"} 2"), "{metrics}");
    assert!(metrics.contains("# TYPE xdr_projection_events_quarantined_total counter"), "{metrics}");
}
