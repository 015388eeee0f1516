//! Incidents over GraphQL, from the real honeypot log through detection and projection:
//! scoped to the caller's org, paged, explained, and moved through their lifecycle by analysts.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use xdr_commands::EventStore;
use xdr_domain::ids::OrgId;

use crate::helpers::{spawn_app, TestApp, PASSWORD};

async fn gql(app: &TestApp, query: &str, variables: Value, token: &str) -> Value {
    app.post("/graphql", json!({"query": query, "variables": variables}), Some(token)).await.json().await.unwrap()
}

/// Ingest the real Cowrie log for `org` over HTTP, detect, project.
pub async fn attacked(app: &TestApp, admin: &str, org: &str) {
    let r = gql(app, "mutation { createIngestKey(name: \"hp\") { key } }", json!({}), admin).await;
    let key = r["data"]["createIngestKey"]["key"].as_str().unwrap().to_owned();
    let body = std::fs::read_to_string(format!("{}/../domain/tests/fixtures/cowrie.json", env!("CARGO_MANIFEST_DIR")))
        .unwrap();
    let r = app
        .client
        .post(format!("{}/ingest/cowrie", app.address))
        .header("X-Ingest-Key", key)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["stored"], 234);
    let store = EventStore::new(app.db.pool.clone());
    let org = OrgId(org.parse().unwrap());
    let mut detector = xdr_inference::Detector::default();
    let events = store.read_org(org, 0, 10_000).await.unwrap();
    let mut commands = Vec::new();
    for e in &events {
        commands.extend(detector.process(e));
    }
    xdr_inference::execute_commands(&store, &commands).await.unwrap();
    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
}

const LIST: &str = "query($first: Int, $after: String, $filter: IncidentFilter) {
  incidents(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id srcIp status severity category attackTechniques detectors reason evidenceSeqs } }
    pageInfo { hasNextPage endCursor } } }";

#[tokio::test]
async fn incidents_are_explained_scoped_paged_and_worked_by_analysts() {
    let app = spawn_app().await;
    let a = app.register("Org A", "admin@a.com").await;
    app.register("Org B", "admin@b.com").await;
    let admin = app.login_ok("admin@a.com", PASSWORD).await.access;
    let other = app.login_ok("admin@b.com", PASSWORD).await.access;
    attacked(&app, &admin, a["organization"]["id"].as_str().unwrap()).await;

    let r = gql(&app, LIST, json!({"first": 50}), &admin).await;
    let incidents: Vec<&Value> =
        r["data"]["incidents"]["edges"].as_array().unwrap().iter().map(|e| &e["node"]).collect();
    let by_ip: BTreeMap<&str, &Value> = incidents.iter().map(|i| (i["srcIp"].as_str().unwrap(), *i)).collect();
    // Ground truth of the Cowrie log: four attackers, one scanner; the benign user (127.0.0.4) none.
    assert_eq!(
        by_ip.keys().copied().collect::<Vec<_>>(),
        vec!["127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.8"],
        "{r}"
    );
    let compromised = by_ip["127.0.0.3"];
    assert_eq!(compromised["severity"], "CRITICAL");
    let techniques: Vec<&str> =
        compromised["attackTechniques"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    for t in ["T1078", "T1105", "T1098.004"] {
        assert!(techniques.contains(&t), "{techniques:?}");
    }
    assert!(!compromised["reason"].as_str().unwrap().is_empty());
    assert_eq!(by_ip["127.0.0.5"]["category"], "RECON");
    assert_eq!(by_ip["127.0.0.8"]["category"], "MALWARE_BOTNET");

    // One incident with its timeline and evidence events.
    let id = compromised["id"].as_str().unwrap().to_owned();
    let one = gql(
        &app,
        "query($id: ID!) { incident(id: $id) { srcIp timeline { kind actor } events { srcIp eventType } } }",
        json!({"id": id}),
        &admin,
    )
    .await;
    let incident = &one["data"]["incident"];
    assert_eq!(incident["timeline"][0]["kind"], "detected");
    assert_eq!(incident["timeline"][0]["actor"], "detector");
    let events = incident["events"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["srcIp"] == "127.0.0.3"));

    // Pages of two walk every incident once, in order.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let r = gql(&app, LIST, json!({"first": 2, "after": after}), &admin).await;
        let page = &r["data"]["incidents"];
        seen.extend(page["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap().to_owned()));
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let all: Vec<String> = incidents.iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(seen, all);
    let r = gql(&app, LIST, json!({"filter": {"severity": "CRITICAL"}}), &admin).await;
    assert_eq!(r["data"]["incidents"]["edges"].as_array().unwrap().len(), 1);

    // Another org sees nothing and can change nothing.
    let r = gql(&app, LIST, json!({}), &other).await;
    assert_eq!(r["data"]["incidents"]["edges"], json!([]));
    let r = gql(&app, "query($id: ID!) { incident(id: $id) { id } }", json!({"id": id}), &other).await;
    assert!(r["data"]["incident"].is_null());
    const UPDATE: &str = "mutation($id: ID!, $s: IncidentStatus!) { updateIncidentStatus(id: $id, status: $s, note: \"checked\") { status } }";
    let r = gql(&app, UPDATE, json!({"id": id, "s": "DISMISSED"}), &other).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "NOT_FOUND");
    let stats =
        gql(&app, "{ stats(since: \"2026-01-01T00:00:00Z\") { incidentsByStatus { key count } } }", json!({}), &other)
            .await;
    assert_eq!(stats["data"]["stats"]["incidentsByStatus"], json!([]));

    // A viewer may not change status; an analyst may, and the timeline says who.
    let (_, viewer) = app.user_with_role(&admin, "viewer@a.com", "viewer").await;
    let (analyst_id, analyst) = app.user_with_role(&admin, "analyst@a.com", "analyst").await;
    let r = gql(&app, UPDATE, json!({"id": id, "s": "CONTAINED"}), &viewer.access).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let r = gql(&app, UPDATE, json!({"id": id, "s": "CONTAINED"}), &analyst.access).await;
    assert_eq!(r["data"]["updateIncidentStatus"]["status"], "CONTAINED", "{r}");
    let r = gql(&app, UPDATE, json!({"id": id, "s": "DISMISSED"}), &analyst.access).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "contained cannot be dismissed");
    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
    let one = gql(
        &app,
        "query($id: ID!) { incident(id: $id) { status timeline { kind actor detail } } }",
        json!({"id": id}),
        &admin,
    )
    .await;
    assert_eq!(one["data"]["incident"]["status"], "CONTAINED");
    let last = one["data"]["incident"]["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "status_changed");
    assert_eq!(last["actor"], format!("user:{analyst_id}"));
    assert_eq!(last["detail"]["note"], "checked");

    let stats = gql(
        &app,
        "{ stats(since: \"2026-01-01T00:00:00Z\") { incidentsBySeverity { key count } eventsPerHour { count } } }",
        json!({}),
        &admin,
    )
    .await;
    let total: i64 = stats["data"]["stats"]["incidentsBySeverity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 4);
    let events: i64 =
        stats["data"]["stats"]["eventsPerHour"].as_array().unwrap().iter().map(|c| c["count"].as_i64().unwrap()).sum();
    assert_eq!(events, 234);
}

/// `n` brute-force sources (7 failed logins in a minute each) into `org`'s log, detected and
/// projected, starting at `minute_of_last_hour` of the previous clock hour; source addresses
/// start at `10.<block>.0.1`.
async fn brute_forcers(app: &TestApp, org: OrgId, block: u8, n: u16, minute_of_last_hour: i64) {
    use xdr_domain::telemetry::{SecurityEvent, SourceType};
    let store = EventStore::new(app.db.pool.clone());
    // Inside one clock hour, whatever time the test runs: incidents are bucketed by hour, and
    // an attack straddling a boundary rightly opens one incident per hour.
    use chrono::DurationRound;
    let last_hour = chrono::Utc::now().duration_trunc(chrono::Duration::hours(1)).unwrap() - chrono::Duration::hours(1);
    let start = last_hour + chrono::Duration::minutes(minute_of_last_hour);
    let mut events = Vec::new();
    for s in 0..n {
        let ip: std::net::IpAddr = format!("10.{block}.{}.{}", s / 250, s % 250 + 1).parse().unwrap();
        for i in 0..7 {
            let at = start + chrono::Duration::seconds(i64::from(s) + i);
            let mut e = SecurityEvent::new(at, SourceType::Cowrie, "cowrie.login.failed", json!({"i": i}));
            e.src_ip = Some(ip);
            e.username = Some("root".into());
            e.password = Some(format!("pw{i}"));
            events.push(xdr_commands::NewEvent::from_event(
                uuid::Uuid::now_v7(),
                "source-cowrie-test",
                &xdr_domain::Event::SecurityEventObserved(e),
                &xdr_domain::EventMetadata::system("test"),
            ));
        }
    }
    let head = store.head(org).await.unwrap().map_or(0, |h| h.0);
    store.append_batch(org, events).await.unwrap();
    let mut detector = xdr_inference::Detector::default();
    let commands: Vec<_> =
        store.read_org(org, head, 100_000).await.unwrap().iter().flat_map(|e| detector.process(e)).collect();
    xdr_inference::execute_commands(&store, &commands).await.unwrap();
    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
}

#[tokio::test]
async fn pages_of_seven_walk_a_hundred_incidents_once_while_new_ones_open() {
    let app = spawn_app().await;
    let a = app.register("Org A", "admin@a.com").await;
    let org = OrgId(a["organization"]["id"].as_str().unwrap().parse().unwrap());
    let admin = app.login_ok("admin@a.com", PASSWORD).await.access;
    brute_forcers(&app, org, 1, 100, 10).await;
    let before: Vec<String> = {
        let r = gql(&app, LIST, json!({"first": 500}), &admin).await;
        r["data"]["incidents"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(before.len(), 100);

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for page in 0.. {
        let r = gql(&app, LIST, json!({"first": 7, "after": after}), &admin).await;
        let edges = r["data"]["incidents"]["edges"].as_array().unwrap().clone();
        assert!(edges.len() <= 7);
        seen.extend(edges.iter().map(|e| e["node"]["id"].as_str().unwrap().to_owned()));
        if page == 2 {
            // Five new attackers mid-walk: newer activity, so they sort before the cursor.
            brute_forcers(&app, org, 2, 5, 40).await;
        }
        if r["data"]["incidents"]["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = r["data"]["incidents"]["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, before, "each of the hundred exactly once, in order");
}

#[tokio::test]
async fn a_query_that_outlives_its_budget_is_cancelled_with_a_code() {
    let app = crate::helpers::spawn_app_with(xdr_graphql::ServerConfig {
        query_timeout: std::time::Duration::from_nanos(1),
        ..crate::helpers::unlimited()
    })
    .await;
    app.register("Org A", "admin@a.com").await;
    let token = app.login_ok("admin@a.com", PASSWORD).await.access;
    let r = gql(&app, "{ me { user { id } } }", json!({}), &token).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "TIMEOUT", "{r}");
    assert!(r["data"].is_null());
}
