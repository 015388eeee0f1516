//! What one GraphQL request may cost: lists cost per item asked for, top-level fields and
//! aliases are capped, all refused before anything runs; and a request verifies its caller
//! once and reads through one transaction however many nested resolvers it has.

use serde_json::{json, Value};
use xdr_graphql::GraphqlLimits;

use crate::helpers::{spawn_app, TestApp, PASSWORD};

async fn gql(app: &TestApp, query: &str, variables: Value, token: &str) -> Value {
    let r = app.post("/graphql", json!({"query": query, "variables": variables}), Some(token)).await;
    assert!(r.status().is_success(), "status {}", r.status());
    r.json().await.unwrap()
}

fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"].as_str().unwrap_or_default()
}

fn message(response: &Value) -> &str {
    response["errors"][0]["message"].as_str().unwrap_or_default()
}

/// One counter or gauge from `/metrics`.
pub async fn metric(app: &TestApp, name: &str) -> u64 {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// Tokens verified and read transactions begun so far.
async fn work(app: &TestApp) -> (u64, u64) {
    (metric(app, "xdr_graphql_authentications_total").await, metric(app, "xdr_graphql_transactions_total").await)
}

#[tokio::test]
async fn the_page_size_bomb_is_refused_before_anything_runs() {
    let app = spawn_app().await;
    app.register("Acme", "admin@acme.com").await;
    let admin = app.login_ok("admin@acme.com", PASSWORD).await;
    let (_, viewer) = app.user_with_role(&admin.access, "viewer@acme.com", "viewer").await;
    let before = work(&app).await;

    // The query under five aliases: 1 500 nested queries and 250 000 raw records asked for.
    let one =
        "incidents(first: 500) { edges { node { events(first: 500) { raw } timeline { kind } actions { id } } } }";
    let five: String = (1..=5).map(|i| format!("a{i}: {one} ")).collect();
    let r = gql(&app, &format!("{{ {five} }}"), json!({}), &viewer.access).await;
    assert_eq!(code(&r), "QUERY_TOO_COSTLY", "{r}");
    // 5 × 500 × (edges + node + events 10 + 500 + timeline 10 + 20 + actions 10 + 20).
    assert!(message(&r).starts_with("Query cost 1430000 exceeds the limit of 10000"), "{r}");
    assert!(r["data"].is_null(), "{r}");

    // Once, without aliases, it is still far over: the cost is per item asked for.
    let r = gql(&app, &format!("{{ {one} }}"), json!({}), &viewer.access).await;
    assert_eq!(code(&r), "QUERY_TOO_COSTLY", "{r}");
    // The page size may come in a variable; it is counted all the same.
    let by_variable = "query($n: Int) { incidents(first: $n) { edges { node { events(first: $n) { raw } } } } }";
    let r = gql(&app, by_variable, json!({"n": 500}), &viewer.access).await;
    assert_eq!(code(&r), "QUERY_TOO_COSTLY", "{r}");
    let r = gql(&app, by_variable, json!({"n": 5}), &viewer.access).await;
    assert!(r["errors"].is_null(), "a small page of the same shape runs: {r}");

    // Refused before execution: no token was verified and no transaction begun for the three.
    let after = work(&app).await;
    assert_eq!(after, (before.0 + 1, before.1 + 1), "only the small page ran");
    assert_eq!(metric(&app, "xdr_graphql_refused_cost_total").await, 3);
}

#[tokio::test]
async fn a_query_at_the_cost_limit_runs_and_one_field_more_is_refused() {
    let app = spawn_app().await;
    app.register("Acme", "admin@acme.com").await;
    let admin = app.login_ok("admin@acme.com", PASSWORD).await.access;
    let limit = GraphqlLimits::default().max_cost;
    // 500 items × (edges + cursor + node + 17 fields) = 10 000 (`__typename` is free).
    let fields = "id orgSeq timestamp sourceType eventType srcIp srcPort dstIp dstPort protocol username command url \
                  fileHash sessionId hostname message __typename";
    let at_limit = format!("{{ events(first: 500) {{ edges {{ cursor node {{ {fields} }} }} }} }}");
    let r = gql(&app, &at_limit, json!({}), &admin).await;
    assert!(r["errors"].is_null(), "{r}");
    assert!(r["data"]["events"]["edges"].is_array(), "{r}");
    assert_eq!(r["extensions"]["cost"], json!({"requested": limit, "limit": limit}), "{r}");

    let over = format!("{{ events(first: 500) {{ edges {{ cursor node {{ {fields} raw }} }} }} }}");
    let r = gql(&app, &over, json!({}), &admin).await;
    assert_eq!(code(&r), "QUERY_TOO_COSTLY", "{r}");
    assert!(message(&r).contains("Query cost 10500 exceeds the limit of 10000"), "{r}");
    assert!(r["data"].is_null(), "{r}");
}

#[tokio::test]
async fn top_level_fields_and_aliases_are_capped() {
    let app = spawn_app().await;
    app.register("Acme", "admin@acme.com").await;
    let admin = app.login_ok("admin@acme.com", PASSWORD).await.access;
    let limits = GraphqlLimits::default();

    // Ten aliased `me` run — and verify the caller once for all ten.
    let me = |n: usize| (1..=n).map(|i| format!("m{i}: me {{ user {{ id }} }} ")).collect::<String>();
    let before = work(&app).await;
    let r = gql(&app, &format!("{{ {} }}", me(limits.max_root_fields)), json!({}), &admin).await;
    assert!(r["errors"].is_null(), "{r}");
    assert!(r["data"]["m10"]["user"]["id"].is_string(), "{r}");
    assert_eq!(work(&app).await.0, before.0 + 1, "one verification for ten fields");

    // Eleven are refused, whether written out or spread from a fragment.
    let r = gql(&app, &format!("{{ {} }}", me(limits.max_root_fields + 1)), json!({}), &admin).await;
    assert_eq!(code(&r), "QUERY_TOO_COSTLY", "{r}");
    assert!(message(&r).contains("at most 10 top-level fields"), "{r}");
    let spread = "{ ...F stats { since } } fragment F on Query { me { user { id } } organization { id } users { nodes { id } } \
                  events { nodes { id } } auditLog { nodes { orgSeq } } incidents { nodes { id } } actions { nodes { id } } \
                  activeBlocks { ip } containmentPolicies { id } containmentSettings { autoContainment } }";
    let r = gql(&app, spread, json!({}), &admin).await;
    assert!(message(&r).contains("this one selects 11"), "{r}");

    // Aliases below the root count too, and so do aliased mutations (each a password hash).
    let aliased: String = (1..=limits.max_aliases + 1).map(|i| format!("a{i}: id ")).collect();
    let r = gql(&app, &format!("{{ incidents(first: 1) {{ edges {{ node {{ {aliased} }} }} }} }}"), json!({}), &admin)
        .await;
    assert_eq!(code(&r), "QUERY_TOO_COSTLY", "{r}");
    assert!(message(&r).contains("at most 10 aliases; this one holds 11"), "{r}");
    let registrations: String = (1..=limits.max_aliases + 1)
        .map(|i| {
            format!(
                "r{i}: registerOrganization(input: {{organizationName: \"O{i}\", adminEmail: \"a{i}@o.com\", \
                 adminPassword: \"{PASSWORD}\", adminName: \"A\"}}) {{ accessToken }} "
            )
        })
        .collect();
    let r = gql(&app, &format!("mutation {{ {registrations} }}"), json!({}), &admin).await;
    assert_eq!(code(&r), "QUERY_TOO_COSTLY", "{r}");
    assert_eq!(app.login("a1@o.com", PASSWORD).await.status(), 401, "no organization was registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_query_verifies_its_caller_once_and_reads_in_one_transaction() {
    let app = spawn_app().await;
    let org = app.register("Acme", "admin@acme.com").await;
    let admin = app.login_ok("admin@acme.com", PASSWORD).await.access;
    crate::incidents::attacked(&app, &admin, org["organization"]["id"].as_str().unwrap()).await;

    let nested = "{ incidents(first: 20) { edges { node { id timeline { kind } actions { id } events(first: 5) { orgSeq raw } } } }
                    stats { incidentsByStatus { key count } } organization { slug } }";
    let before = work(&app).await;
    let r = gql(&app, nested, json!({}), &admin).await;
    assert!(r["errors"].is_null(), "{r}");
    let incidents = r["data"]["incidents"]["edges"].as_array().unwrap();
    assert!(incidents.len() >= 4, "{r}");
    for edge in incidents {
        assert!(!edge["node"]["timeline"].as_array().unwrap().is_empty(), "{edge}");
        assert!(!edge["node"]["events"].as_array().unwrap().is_empty(), "{edge}");
    }
    // 1 + 3 per incident + 2 resolvers would each verify the token and begin a transaction.
    assert_eq!(work(&app).await, (before.0 + 1, before.1 + 1), "one verification, one transaction");

    // A refused caller is refused once, too: every field answers the same error.
    let before = work(&app).await;
    let r = gql(&app, nested, json!({}), "not-a-token").await;
    assert_eq!(code(&r), "UNAUTHENTICATED", "{r}");
    assert_eq!(work(&app).await, (before.0 + 1, before.1), "one verification, no transaction");
}
