//! `incidentUpdates` over WebSocket (`graphql-transport-ws`): pushes the caller's org's
//! incidents, never another org's; ends when the session ends; is capped per socket and per
//! user; and one org's subscribers share one poll of the read model.

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_websockets::{ClientBuilder, Message};

use crate::cost::metric;
use crate::helpers::{spawn_app, spawn_app_with, TestApp, PASSWORD};
use xdr_graphql::{GraphqlLimits, ServerConfig};

type Ws = tokio_websockets::WebSocketStream<tokio_websockets::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(app: &TestApp, token: &str) -> Ws {
    let mut ws = connect(app, token).await;
    subscribe_on(&mut ws, "1").await;
    ws
}

/// A socket past `connection_init` with `token`.
async fn connect(app: &TestApp, token: &str) -> Ws {
    let uri: http::Uri = format!("{}/graphql", app.address.replace("http://", "ws://")).parse().unwrap();
    let (mut ws, _) = ClientBuilder::from_uri(uri)
        .add_header(http::header::SEC_WEBSOCKET_PROTOCOL, http::HeaderValue::from_static("graphql-transport-ws"))
        .connect()
        .await
        .expect("websocket upgrade");
    ws.send(Message::text(
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}).to_string(),
    ))
    .await
    .unwrap();
    let ack = next_json(&mut ws, Duration::from_secs(5)).await.expect("ack");
    assert_eq!(ack["type"], "connection_ack");
    ws
}

async fn subscribe_on(ws: &mut Ws, id: &str) {
    let message = json!({"id": id, "type": "subscribe",
        "payload": {"query": "subscription { incidentUpdates { id srcIp severity } }"}});
    ws.send(Message::text(message.to_string())).await.unwrap();
}

async fn next_json(ws: &mut Ws, within: Duration) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(within, ws.next()).await.ok()??.ok()?;
        if let Some(text) = msg.as_text() {
            let v: Value = serde_json::from_str(text).unwrap();
            if v["type"] != "ping" && v["type"] != "pong" {
                return Some(v);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_updates_push_only_the_callers_org() {
    let app = spawn_app().await;
    let a = app.register("Org A", "admin@a.com").await;
    app.register("Org B", "admin@b.com").await;
    let a_token = app.login_ok("admin@a.com", PASSWORD).await.access;
    let b_token = app.login_ok("admin@b.com", PASSWORD).await.access;
    let mut a_ws = subscribe(&app, &a_token).await;
    let mut b_ws = subscribe(&app, &b_token).await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Org A is attacked: detection opens incidents, the projector projects them.
    crate::incidents::attacked(&app, &a_token, a["organization"]["id"].as_str().unwrap()).await;

    let pushed = next_json(&mut a_ws, Duration::from_secs(10)).await.expect("an incident update for org A");
    assert_eq!(pushed["type"], "next", "{pushed}");
    let ip = pushed["payload"]["data"]["incidentUpdates"]["srcIp"].as_str().unwrap();
    assert!(["127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.8"].contains(&ip), "{pushed}");
    assert!(next_json(&mut b_ws, Duration::from_secs(2)).await.is_none(), "org B hears nothing of org A");

    // Without a valid token the subscription is refused.
    let mut anon = subscribe(&app, "not-a-token").await;
    let refused = next_json(&mut anon, Duration::from_secs(5)).await.expect("an error");
    assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{refused}");
    assert!(refused["payload"]["data"].is_null());
}

fn limits(subscriptions_per_connection: usize, subscriptions_per_user: usize) -> ServerConfig {
    ServerConfig {
        login_rate_per_minute: 10_000,
        graphql: GraphqlLimits {
            subscriptions_per_connection,
            subscriptions_per_user,
            subscription_recheck: Duration::from_millis(200),
            subscription_poll: Duration::from_millis(100),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A changed incident of `org` in the read model, written as the projector would (as owner).
async fn incident_changed(app: &TestApp, org: &str, src_ip: &str, seq: i64) {
    let mut owner = app.db.owner_conn().await;
    sqlx::query(
        "INSERT INTO rm_incidents (org_id, incident_id, src_ip, status, severity, severity_rank, category, risk_score, \
           confidence, first_seen, last_seen, event_count, evidence, reason, rule_ids, techniques, top_features, \
           opened_at, updated_at, last_seq) \
         VALUES ($1::uuid, gen_random_uuid(), $2, 'open', 'high', 3, 'brute_force', 0.8, 0.9, now(), now(), 1, \
           ARRAY[$3]::bigint[], 'test', ARRAY['ssh_brute_force'], ARRAY['T1110.001'], '[]'::jsonb, now(), now(), $3)",
    )
    .bind(org)
    .bind(src_ip)
    .bind(seq)
    .execute(&mut owner)
    .await
    .unwrap();
}

/// Waits (bounded) until a gauge in `/metrics` reads `value`.
async fn gauge_reaches(app: &TestApp, name: &str, value: u64) {
    for _ in 0..200 {
        if metric(app, name).await == value {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never reached {value} (now {})", metric(app, name).await);
}

/// The next message for subscription `id`, skipping others.
async fn next_for(ws: &mut Ws, id: &str) -> Value {
    loop {
        let v = next_json(ws, Duration::from_secs(10)).await.unwrap_or_else(|| panic!("a message for {id}"));
        if v["id"] == id {
            return v;
        }
    }
}

/// Reads `n` messages: the ids that were refused, and the ids that got data.
async fn collect(ws: &mut Ws, n: usize) -> (Vec<String>, Vec<String>) {
    let (mut refused, mut pushed) = (Vec::new(), Vec::new());
    while refused.len() + pushed.len() < n {
        let v = next_json(ws, Duration::from_secs(10)).await.expect("a message");
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        match v["type"].as_str() {
            Some("next") if v["payload"]["errors"].is_array() => {
                assert_eq!(v["payload"]["errors"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS", "{v}");
                refused.push(id);
            }
            Some("next") => pushed.push(id),
            _ => {}
        }
    }
    (refused, pushed)
}

/// The subscription `id` ends with an error carrying `code`, then `complete`.
async fn ends_with(ws: &mut Ws, id: &str, code: &str) {
    let ended = next_for(ws, id).await;
    assert_eq!(ended["type"], "next", "{ended}");
    let error = &ended["payload"]["errors"][0];
    assert_eq!(error["extensions"]["code"], code, "{ended}");
    assert_eq!(error["extensions"]["reason"], "SESSION_ENDED", "{ended}");
    assert!(error["message"].as_str().unwrap().starts_with("Subscription ended: "), "{ended}");
    assert_eq!(next_for(ws, id).await["type"], "complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_ends_when_its_session_ends() {
    let app = spawn_app_with(limits(5, 10)).await;
    app.register("Acme", "admin@acme.com").await;
    let admin = app.login_ok("admin@acme.com", PASSWORD).await.access;
    let (_, leaving) = app.user_with_role(&admin, "leaving@acme.com", "viewer").await;
    let (locked_id, locked) = app.user_with_role(&admin, "locked@acme.com", "analyst").await;
    let (_, staying) = app.user_with_role(&admin, "staying@acme.com", "viewer").await;
    let mut leaving_ws = subscribe(&app, &leaving.access).await;
    let mut locked_ws = subscribe(&app, &locked.access).await;
    let mut staying_ws = subscribe(&app, &staying.access).await;
    gauge_reaches(&app, "xdr_graphql_subscriptions_open", 3).await;

    // Logout: the session is revoked, the open subscription sees it at its next check.
    let r = app.post("/graphql", json!({"query": "mutation { logout }"}), Some(&leaving.access)).await;
    assert_eq!(r.json::<Value>().await.unwrap()["data"]["logout"], true);
    ends_with(&mut leaving_ws, "1", "UNAUTHENTICATED").await;

    // An admin locks a user: that user's stream stops too.
    let lock = json!({"query": "mutation($id: ID!) { lockUser(id: $id) { id } }", "variables": {"id": locked_id}});
    let r: Value = app.post("/graphql", lock, Some(&admin)).await.json().await.unwrap();
    assert!(r["errors"].is_null(), "{r}");
    ends_with(&mut locked_ws, "1", "ACCOUNT_LOCKED").await;
    gauge_reaches(&app, "xdr_graphql_subscriptions_open", 1).await;

    // The token expires (8 h): the last one ends as well.
    app.clock.advance(chrono::Duration::hours(9));
    ends_with(&mut staying_ws, "1", "UNAUTHENTICATED").await;
    gauge_reaches(&app, "xdr_graphql_subscriptions_open", 0).await;
    assert_eq!(metric(&app, "xdr_graphql_subscriptions_ended_by_session_total").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_capped_per_connection_and_per_user() {
    let app = spawn_app_with(limits(2, 3)).await;
    let org = app.register("Acme", "admin@acme.com").await;
    let org = org["organization"]["id"].as_str().unwrap().to_owned();
    let token = app.login_ok("admin@acme.com", PASSWORD).await.access;

    // Three on one socket: the third (whichever the server reaches last) is refused.
    let mut first = connect(&app, &token).await;
    for id in ["1", "2", "3"] {
        subscribe_on(&mut first, id).await;
    }
    let (refused_first, _) = collect(&mut first, 1).await;
    // Two more on a second socket of the same user: the user's third fits, the fourth not.
    let mut second = connect(&app, &token).await;
    for id in ["a", "b"] {
        subscribe_on(&mut second, id).await;
    }
    let (refused_second, _) = collect(&mut second, 1).await;
    gauge_reaches(&app, "xdr_graphql_subscriptions_open", 3).await;
    assert_eq!(metric(&app, "xdr_graphql_subscriptions_refused_total").await, 2);

    // The three admitted ones are live.
    incident_changed(&app, &org, "10.0.0.1", 1).await;
    let (_, pushed_first) = collect(&mut first, 2).await;
    let (_, pushed_second) = collect(&mut second, 1).await;
    assert!(!pushed_first.contains(&refused_first[0]) && pushed_first.len() == 2, "{pushed_first:?}");
    assert!(!pushed_second.contains(&refused_second[0]), "{pushed_second:?}");

    // Closing a socket gives its places back.
    drop(first);
    gauge_reaches(&app, "xdr_graphql_subscriptions_open", 1).await;
    subscribe_on(&mut second, "c").await;
    gauge_reaches(&app, "xdr_graphql_subscriptions_open", 2).await;
    incident_changed(&app, &org, "10.0.0.2", 2).await;
    let (refused, mut pushed) = collect(&mut second, 2).await;
    pushed.sort();
    assert!(refused.is_empty());
    assert_eq!(pushed, [pushed_second[0].clone(), "c".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_of_one_org_share_one_poll() {
    let app = spawn_app_with(limits(5, 10)).await;
    let a = app.register("Org A", "admin@a.com").await;
    let b = app.register("Org B", "admin@b.com").await;
    let (a, b) = (a["organization"]["id"].as_str().unwrap(), b["organization"]["id"].as_str().unwrap());
    let a_token = app.login_ok("admin@a.com", PASSWORD).await.access;
    let b_token = app.login_ok("admin@b.com", PASSWORD).await.access;

    let mut a_ws = connect(&app, &a_token).await;
    for id in ["1", "2", "3", "4", "5"] {
        subscribe_on(&mut a_ws, id).await;
    }
    let mut b_ws = subscribe(&app, &b_token).await;
    gauge_reaches(&app, "xdr_graphql_subscriptions_open", 6).await;
    // Six subscribers, two orgs: two poll loops, each one query per tick.
    assert_eq!(metric(&app, "xdr_graphql_subscription_feeds").await, 2);
    let polls = metric(&app, "xdr_graphql_subscription_polls_total").await;

    incident_changed(&app, a, "10.0.0.1", 1).await;
    let (refused, mut pushed) = collect(&mut a_ws, 5).await;
    pushed.sort();
    assert!(refused.is_empty());
    assert_eq!(pushed, ["1", "2", "3", "4", "5"], "every subscriber of org A got the change");
    // Org B's subscriber hears its own org's change first, never org A's.
    incident_changed(&app, b, "10.9.9.9", 1).await;
    let heard = next_for(&mut b_ws, "1").await;
    assert_eq!(heard["payload"]["data"]["incidentUpdates"]["srcIp"], "10.9.9.9", "{heard}");
    assert!(metric(&app, "xdr_graphql_subscription_polls_total").await > polls);

    // The feeds stop with their last subscriber.
    drop(a_ws);
    gauge_reaches(&app, "xdr_graphql_subscription_feeds", 1).await;
    drop(b_ws);
    gauge_reaches(&app, "xdr_graphql_subscription_feeds", 0).await;
}
