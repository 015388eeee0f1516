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
async fn attacked(app: &TestApp, admin: &str, org: &str) {
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
