//! `incidentUpdates` over WebSocket (`graphql-transport-ws`): pushes the caller's org's
//! incidents, never another org's.

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_websockets::{ClientBuilder, Message};

use crate::helpers::{spawn_app, TestApp, PASSWORD};

type Ws = tokio_websockets::WebSocketStream<tokio_websockets::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(app: &TestApp, token: &str) -> Ws {
    let uri: http::Uri = format!("{}/graphql", app.address.replace("http://", "ws://")).parse().unwrap();
    let (mut ws, _) = ClientBuilder::from_uri(uri)
        .add_header(http::header::SEC_WEBSOCKET_PROTOCOL, http::HeaderValue::from_static("graphql-transport-ws"))
        .connect()
        .await
        .expect("websocket upgrade");
    let send = |v: Value| Message::text(v.to_string());
    ws.send(send(json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}})))
        .await
        .unwrap();
    let ack = next_json(&mut ws, Duration::from_secs(5)).await.expect("ack");
    assert_eq!(ack["type"], "connection_ack");
    ws.send(send(json!({"id": "1", "type": "subscribe",
        "payload": {"query": "subscription { incidentUpdates { id srcIp severity } }"}})))
        .await
        .unwrap();
    ws
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
