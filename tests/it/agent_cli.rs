//! `mini-xdr agent` against the agent gateway of an in-process server, over real PostgreSQL
//! and NATS (a NATS prefix of its own per test): org isolation of orders, refused keys and
//! foreign ack tokens, the re-sync on start, and the nftables backend in a private network
//! namespace where the machine allows it.

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;
use xdr_commands::auth::{Clock, IdentityService, PasswordHasher, TokenService};
use xdr_commands::handler::{execute, load};
use xdr_commands::response::actions::{request_and_dispatch, NewAction};
use xdr_commands::response::agent_keys::{create_agent_key, revoke_agent_key};
use xdr_commands::response::{Dispatcher, ResponseConfig};
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_domain::ids::{ActionId, AgentKeyId, IncidentId, OrgId};
use xdr_domain::incident::{
    incident_id_for, Incident, IncidentCategory, IncidentCommand, IncidentStatus, OpenIncident, Severity,
};
use xdr_domain::response::action::{Action, ActionKind, ActionStatus};
use xdr_domain::EventMetadata;

/// A server with the agent gateway, the results consumer beside it, and the org keys.
struct Env {
    db: TestDb,
    store: EventStore,
    base: String,
    dispatcher: Dispatcher,
    config: ResponseConfig,
    js: async_nats::jetstream::Context,
    client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Env {
    async fn start() -> Env {
        Env::start_with(true).await
    }

    async fn start_with(with_dispatcher: bool) -> Env {
        Env::start_full(with_dispatcher, None).await
    }

    async fn start_full(with_dispatcher: bool, tls: Option<(std::path::PathBuf, std::path::PathBuf)>) -> Env {
        let db = TestDb::new().await;
        let store = EventStore::new(db.api.clone());
        let config = ResponseConfig::with_prefix(&format!("t{}.", Uuid::new_v4().simple()));
        let nats = async_nats::connect("nats://127.0.0.1:4222").await.expect("NATS");
        let js = async_nats::jetstream::new(nats);
        let dispatcher = Dispatcher::new(js.clone(), config.clone()).await.expect("dispatcher");
        let identity = IdentityService::new(
            store.clone(),
            PasswordHasher::owasp().unwrap(),
            TokenService::new(&SecretString::from("agent-test-secret-0123456789abcdef0123")),
            Clock::system(),
        );
        let server_config = xdr_graphql::ServerConfig {
            bind: "127.0.0.1:0".into(),
            dispatcher: with_dispatcher.then(|| dispatcher.clone()),
            tls: tls.clone(),
            ..Default::default()
        };
        let app = xdr_graphql::Application::build(server_config, identity, db.api.clone()).expect("build app");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(xdr_commands::response::results::run_results_consumer(
            store.clone(),
            js.clone(),
            config.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Env { db, store, base, dispatcher, config, js, client: reqwest::Client::new(), _stop: stop }
    }

    async fn agent_key(&self, org: OrgId) -> (AgentKeyId, String) {
        let k = create_agent_key(&self.store, org, "edge-fw", &EventMetadata::system("test")).await.unwrap();
        (k.key_id, k.key.expose_secret().to_owned())
    }

    async fn open_incident(&self, org: OrgId, ip: &str) -> IncidentId {
        let now = Utc::now();
        let id = incident_id_for(org, ip, now);
        let command = IncidentCommand::Open(OpenIncident {
            incident_id: id,
            org_id: org,
            src_ip: ip.into(),
            category: IncidentCategory::BruteForce,
            severity: Severity::High,
            risk_score: 0.9,
            confidence: 0.9,
            rule_ids: vec!["ssh_brute_force".into()],
            techniques: vec!["T1110.001".into()],
            reason: "failed logins".into(),
            top_features: vec![],
            evidence: vec![],
            model: None,
            first_seen: now,
            last_seen: now,
            now,
        });
        execute::<Incident>(&self.store, org, &id.stream_id(), &command, &EventMetadata::system("detector"), None)
            .await
            .unwrap();
        id
    }

    /// Request a block on `ip` for the incident and send it at once (no approval needed).
    async fn block(&self, org: OrgId, incident: Option<IncidentId>, ip: &str) -> ActionId {
        let action_id = ActionId(Uuid::now_v7());
        let new = NewAction {
            action_id,
            incident_id: incident,
            kind: ActionKind::BlockIp,
            target: ip.into(),
            duration_secs: Some(600),
            note: None,
            requested_by: None,
            follows: None,
            policy: None,
            automatic: false,
            needs_approval: false,
        };
        let state = request_and_dispatch(
            &self.store,
            Some(&self.dispatcher),
            org,
            new,
            &EventMetadata::system("test"),
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(state.status, ActionStatus::Dispatched);
        action_id
    }

    async fn action(&self, org: OrgId, id: ActionId) -> Action {
        load::<Action>(&self.store, org, &id.stream_id()).await.unwrap().0
    }

    async fn wait_for_action(&self, org: OrgId, id: ActionId, status: ActionStatus) -> Action {
        let started = Instant::now();
        loop {
            let a = self.action(org, id).await;
            if a.status == status {
                return a;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "action {id} is {:?}, not {status:?}", a.status);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/agent/v1/{path}", self.base)
    }

    async fn pull(&self, key: &str, wait_ms: u64) -> reqwest::Response {
        self.client
            .post(self.url("orders/pull"))
            .bearer_auth(key)
            .json(&json!({"max": 10, "wait_ms": wait_ms}))
            .send()
            .await
            .unwrap()
    }

    async fn post_results(&self, key: &str, items: Value) -> reqwest::Response {
        self.client.post(self.url("results")).bearer_auth(key).json(&items).send().await.unwrap()
    }

    async fn insert_active_block(&self, org: OrgId, ip: &str, expires_at: Option<DateTime<Utc>>) {
        sqlx::query(
            "INSERT INTO rm_active_blocks (org_id, action_id, ip, since, expires_at) VALUES ($1, $2, $3, now(), $4)",
        )
        .bind(org.0)
        .bind(Uuid::now_v7())
        .bind(ip)
        .bind(expires_at)
        .execute(&mut self.db.owner_conn().await)
        .await
        .unwrap();
    }

    /// The real binary in dry-run (or another backend), its stderr collected.
    fn spawn_agent(&self, key: &str, extra: &[&str]) -> AgentProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mini-xdr"));
        command
            .args(["agent", "--server", &self.base, "--poll-wait-ms", "500"])
            .args(extra)
            .env("XDR_AGENT_KEY", key)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("XDR_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !extra.contains(&"--backend") {
            command.args(["--backend", "dry-run"]);
        }
        AgentProcess::spawn(command)
    }

    async fn cleanup(&self) {
        for stream in [&self.config.actions_stream, &self.config.results_stream] {
            let _ = self.js.delete_stream(stream).await;
        }
    }
}

struct AgentProcess {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl AgentProcess {
    fn spawn(mut command: Command) -> AgentProcess {
        let mut child = command.spawn().expect("start mini-xdr agent");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        AgentProcess { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    async fn wait_for_log(&self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "agent never logged {needle:?}:\n{log}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The exit status, once the process ends on its own.
    async fn wait_exit(&mut self) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "agent did not exit:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn an_agent_carries_out_only_its_own_orgs_orders_and_its_success_contains_the_incident() {
    let env = Env::start().await;
    let (a, b) = (OrgId(Uuid::new_v4()), OrgId(Uuid::new_v4()));
    let (_, key_a) = env.agent_key(a).await;
    let (_, key_b) = env.agent_key(b).await;
    let incident_a = env.open_incident(a, "203.0.113.10").await;
    let incident_b = env.open_incident(b, "198.51.100.20").await;
    // B's consumer exists first, so its order is waiting when A's agent runs.
    assert_eq!(env.pull(&key_b, 0).await.status(), StatusCode::OK);
    let action_b = env.block(b, Some(incident_b), "198.51.100.20").await;
    let action_a = env.block(a, Some(incident_a), "203.0.113.10").await;

    let agent = env.spawn_agent(&key_a, &[]);
    let done = env.wait_for_action(a, action_a, ActionStatus::Succeeded).await;
    assert!(done.detail.as_deref().unwrap_or("").contains("dry-run: would block 203.0.113.10 for 600s"), "{done:?}");
    let (incident, _) = load::<Incident>(&env.store, a, &incident_a.stream_id()).await.unwrap();
    assert_eq!(incident.status, IncidentStatus::Contained);

    // B's order is still waiting for B's agent, untouched; A's agent never saw it.
    let pulled: Value = env.pull(&key_b, 2000).await.json().await.unwrap();
    let orders = pulled.as_array().unwrap();
    assert_eq!(orders.len(), 1, "{pulled}");
    assert_eq!(orders[0]["order"]["action_id"], json!(action_b));
    assert_eq!(orders[0]["order"]["target"], "198.51.100.20");
    assert_eq!(env.action(b, action_b).await.status, ActionStatus::Dispatched);
    let log = agent.log();
    assert!(!log.contains("198.51.100.20") && !log.contains(&action_b.to_string()), "{log}");
    let (incident, _) = load::<Incident>(&env.store, b, &incident_b.stream_id()).await.unwrap();
    assert_eq!(incident.status, IncidentStatus::Open);
    drop(agent);
    env.cleanup().await;
}

#[tokio::test]
async fn a_revoked_or_unknown_key_is_refused_and_the_agent_exits_saying_so() {
    let env = Env::start().await;
    let org = OrgId(Uuid::new_v4());
    let (key_id, key) = env.agent_key(org).await;
    assert_eq!(env.client.get(env.url("blocks")).bearer_auth(&key).send().await.unwrap().status(), StatusCode::OK);
    revoke_agent_key(&env.store, org, key_id, &EventMetadata::system("test")).await.unwrap();

    let detail = |r: reqwest::Response| async move {
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        detail(env.client.get(env.url("blocks")).bearer_auth(&key).send().await.unwrap()).await,
        "revoked agent key"
    );
    assert_eq!(detail(env.pull(&key, 0).await).await, "revoked agent key");
    assert_eq!(detail(env.post_results(&key, json!([])).await).await, "revoked agent key");
    let unknown = format!("xdra_{}", Uuid::new_v4().simple());
    assert_eq!(detail(env.pull(&unknown, 0).await).await, "unknown agent key");
    assert_eq!(detail(env.client.get(env.url("blocks")).send().await.unwrap()).await, "missing agent key");

    let mut agent = env.spawn_agent(&key, &[]);
    let status = agent.wait_exit().await;
    assert!(!status.success());
    let log = agent.log();
    assert!(log.contains("the server refused the agent key: revoked agent key"), "{log}");
    assert!(!log.contains(&key), "the key must never be logged");

    // Without a dispatcher the gateway says so instead of failing obscurely.
    let bare = Env::start_with(false).await;
    let r = bare.pull(&key, 0).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("not enabled"));
    env.cleanup().await;
    bare.cleanup().await;
}

#[tokio::test]
async fn an_ack_token_of_another_agent_is_refused() {
    let env = Env::start().await;
    let (a, b) = (OrgId(Uuid::new_v4()), OrgId(Uuid::new_v4()));
    let (_, first) = env.agent_key(a).await;
    let (_, second) = env.agent_key(a).await;
    let (_, other_org) = env.agent_key(b).await;
    let action = env.block(a, None, "203.0.113.77").await;

    let pulled: Value = env.pull(&first, 5000).await.json().await.unwrap();
    let token = pulled[0]["ack_token"].as_str().expect("an order").to_owned();
    assert_eq!(pulled[0]["order"]["action_id"], json!(action));
    let answer = |token: &str, ok: bool| json!([{"ack_token": token, "action_id": action, "attempt": 1, "ok": ok, "detail": "x"}]);
    for key in [&second, &other_org] {
        let r = env.post_results(key, answer(&token, false)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("ack token"));
    }
    // A token naming another order of the agent's own consumer is refused too.
    let wrong_action =
        json!([{"ack_token": token, "action_id": Uuid::new_v4(), "attempt": 1, "ok": true, "detail": ""}]);
    assert_eq!(env.post_results(&first, wrong_action).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(env.post_results(&first, answer("$JS.API.STREAM.DELETE.X", true)).await.status(), StatusCode::FORBIDDEN);
    // Nothing reached the log; the rightful agent's answer does.
    assert_eq!(env.action(a, action).await.status, ActionStatus::Dispatched);
    let r = env.post_results(&first, answer(&token, true)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let outcome: Value = r.json().await.unwrap();
    assert_eq!((outcome[0]["status"].as_str(), outcome[0]["acked"].as_bool()), (Some("recorded"), Some(true)));
    let done = env.wait_for_action(a, action, ActionStatus::Succeeded).await;
    assert_eq!(done.status, ActionStatus::Succeeded);
    // Acked: not delivered again.
    assert_eq!(env.pull(&first, 0).await.json::<Value>().await.unwrap(), json!([]));
    env.cleanup().await;
}

/// An agent answers (and so acknowledges) only orders delivered to it. Agent A of the org
/// writes ack tokens by hand for its own consumer: one naming the order the gateway
/// delivered to agent B, one naming an order nobody pulled yet. Both pass the token's shape
/// checks; the log shows neither went to A, so both are refused and nothing is forwarded.
#[tokio::test]
async fn an_agent_cannot_acknowledge_an_order_that_was_not_delivered_to_it() {
    let env = Env::start().await;
    let org = OrgId(Uuid::new_v4());
    let (a_id, a) = env.agent_key(org).await;
    let (b_id, b) = env.agent_key(org).await;
    let first = env.block(org, None, "203.0.113.81").await;
    let pulled: Value = env.pull(&b, 5000).await.json().await.unwrap();
    let b_token = pulled[0]["ack_token"].as_str().expect("B got the order").to_owned();
    let second = env.block(org, None, "203.0.113.82").await;

    let stream = env.config.actions_stream.clone();
    let forged_from_b = b_token.replace(&format!(".agent-{b_id}."), &format!(".agent-{a_id}."));
    assert_ne!(forged_from_b, b_token);
    let mut actions = env.js.get_stream(&stream).await.unwrap();
    let undelivered_seq = actions.info().await.unwrap().state.last_sequence;
    let forged_never_sent = format!("$JS.ACK.{stream}.agent-{a_id}.1.{undelivered_seq}.1.1700000000000000000.0");
    let answer = |token: &str, action: ActionId| json!([{"ack_token": token, "action_id": action, "attempt": 1, "ok": true, "detail": "done"}]);
    for (token, action) in [(&forged_from_b, first), (&forged_never_sent, second)] {
        let r = env.post_results(&a, answer(token, action)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{token}");
        let detail = r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().to_owned();
        assert_eq!(detail, "order was not delivered to this agent");
    }
    // Nothing was forwarded, nothing recorded.
    let mut results = env.js.get_stream(&env.config.results_stream).await.unwrap();
    assert_eq!(results.info().await.unwrap().state.messages, 0);
    assert_eq!(env.action(org, first).await.status, ActionStatus::Dispatched);
    assert_eq!(env.action(org, second).await.status, ActionStatus::Dispatched);
    let metrics = env.client.get(format!("{}/metrics", env.base)).send().await.unwrap().text().await.unwrap();
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("xdr_agent_results_refused_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(refused >= 2, "{metrics}");

    // The deliveries are in the log, per agent; B's real answer is taken.
    let delivered = env.action(org, first).await;
    assert!(delivered.was_delivered_to(&format!("agentkey:{b_id}"), 1));
    assert!(!delivered.was_delivered_to(&format!("agentkey:{a_id}"), 1));
    let r = env.post_results(&b, answer(&b_token, first)).await;
    assert_eq!(r.status(), StatusCode::OK);
    env.wait_for_action(org, first, ActionStatus::Succeeded).await;
    env.cleanup().await;
}

/// Orders published on an org's subject by anyone who can reach NATS (here the
/// unauthenticated development server): a made-up block, a copy of a real order with another
/// target, and a real order of another org re-addressed. Only the order the agent's org's
/// log holds (its `ActionDispatched`) reaches the agent; the forgeries are refused and
/// counted on `/metrics`.
#[tokio::test]
async fn a_forged_order_on_an_orgs_subject_never_reaches_its_agents() {
    use xdr_domain::response::order::ActionOrder;
    let env = Env::start().await;
    let (a, b) = (OrgId(Uuid::new_v4()), OrgId(Uuid::new_v4()));
    let (_, key) = env.agent_key(a).await;
    assert_eq!(env.pull(&key, 0).await.status(), StatusCode::OK, "the agent's consumer exists");
    let action_b = env.block(b, None, "198.51.100.9").await;
    let forge = |order: &ActionOrder| {
        let (js, subject, body) = (env.js.clone(), env.config.actions_subject(a.0), serde_json::to_vec(order).unwrap());
        async move { js.publish(subject, body.into()).await.unwrap().await.unwrap() }
    };
    let now = Utc::now();
    let made_up = ActionOrder {
        action_id: ActionId(Uuid::now_v7()),
        org_id: a,
        attempt: 1,
        kind: ActionKind::BlockIp,
        target: "192.0.2.1".into(),
        duration_secs: None,
        issued_at: now,
        deadline: now + chrono::Duration::minutes(5),
    };
    forge(&made_up).await;
    let foreign = ActionOrder { action_id: action_b, org_id: a, target: "198.51.100.9".into(), ..made_up.clone() };
    forge(&foreign).await;
    let real = env.block(a, None, "203.0.113.9").await;
    let altered =
        ActionOrder { action_id: real, target: "10.0.0.1".into(), duration_secs: Some(600), ..made_up.clone() };
    forge(&altered).await;

    let mut delivered = Vec::new();
    for _ in 0..3 {
        let pulled: Value = env.pull(&key, 1000).await.json().await.unwrap();
        delivered.extend(pulled.as_array().unwrap().iter().map(|o| o["order"].clone()));
    }
    assert_eq!(delivered.len(), 1, "only the logged order: {delivered:?}");
    assert_eq!(delivered[0]["action_id"], json!(real));
    assert_eq!(delivered[0]["target"], "203.0.113.9");
    let metrics = env.client.get(format!("{}/metrics", env.base)).send().await.unwrap().text().await.unwrap();
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("xdr_agent_orders_refused_total "))
        .expect("counter on /metrics")
        .parse()
        .unwrap();
    assert!(refused >= 3, "{metrics}");
    env.cleanup().await;
}

#[tokio::test]
async fn a_starting_agent_resyncs_the_orgs_active_blocks() {
    let env = Env::start().await;
    let (a, b) = (OrgId(Uuid::new_v4()), OrgId(Uuid::new_v4()));
    let (_, key) = env.agent_key(a).await;
    env.insert_active_block(a, "203.0.113.5", None).await;
    env.insert_active_block(a, "2001:db8::5", Some(Utc::now() + chrono::Duration::hours(1))).await;
    env.insert_active_block(a, "203.0.113.6", Some(Utc::now() - chrono::Duration::minutes(1))).await;
    env.insert_active_block(b, "198.51.100.5", None).await;

    let blocks: Value = env.client.get(env.url("blocks")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    assert_eq!(blocks.as_array().unwrap().len(), 3, "only org A's rows: {blocks}");

    let agent = env.spawn_agent(&key, &[]);
    let log = agent.wait_for_log("dry-run: re-sync would add 2 [").await;
    assert!(log.contains("[203.0.113.5, 2001:db8::5]"), "{log}");
    assert!(!log.contains("198.51.100.5") && !log.contains("203.0.113.6"), "{log}");
    drop(agent);
    env.cleanup().await;
}

#[tokio::test]
async fn the_agent_speaks_https_to_a_server_with_a_private_ca() {
    let dir = std::env::temp_dir().join(format!("xdr-agent-tls-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A server certificate, not a CA (webpki refuses a CA certificate as the server's).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key_file)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let env = Env::start_full(true, Some((cert.clone(), key_file))).await;
    let org = OrgId(Uuid::new_v4());
    let (_, key) = env.agent_key(org).await;
    env.insert_active_block(org, "203.0.113.44", None).await;

    let agent = env.spawn_agent(&key, &["--ca-cert", cert.to_str().unwrap()]);
    agent.wait_for_log("re-sync would add 1 [203.0.113.44]").await;
    drop(agent);
    // Without the CA the certificate is not trusted: the agent keeps retrying, never syncs.
    let untrusted = env.spawn_agent(&key, &[]);
    untrusted.wait_for_log("re-sync failed; retrying").await;
    assert!(!untrusted.log().contains("re-sync would add"));
    drop(untrusted);
    let _ = std::fs::remove_dir_all(&dir);
    env.cleanup().await;
}

/// Root, `ip netns`, the backend's tool and `socat` in a scratch namespace, or why not.
fn netns_available(tool: &str) -> Result<(), String> {
    let probe = format!("xdrprobe{}", &Uuid::new_v4().simple().to_string()[..8]);
    let run = |args: &[&str]| Command::new(args[0]).args(&args[1..]).output();
    match run(&["ip", "netns", "add", &probe]) {
        Ok(o) if o.status.success() => {}
        Ok(o) => return Err(format!("ip netns add: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => return Err(format!("ip: {e}")),
    }
    let list = if tool == "nft" { ["nft", "list", "tables"] } else { ["iptables", "-w", "-S"] };
    let probed = run(&[&["ip", "netns", "exec", &probe][..], &list].concat());
    let _ = run(&["ip", "netns", "del", &probe]);
    match probed {
        Ok(o) if o.status.success() => {}
        Ok(o) => return Err(format!("{tool}: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => return Err(format!("{tool}: {e}")),
    }
    run(&["socat", "-V"]).map(|_| ()).map_err(|e| format!("socat: {e}"))
}

/// Two namespaces joined by a veth pair: `server` (198.51.100.1, a TCP listener on 8080) and
/// `client` with two sources, 198.51.100.2 and 198.51.100.3. Removed on drop.
struct Lab {
    server: String,
    client: String,
    listener: Option<Child>,
}

impl Lab {
    fn new() -> Lab {
        let tag = &Uuid::new_v4().simple().to_string()[..8];
        let lab = Lab { server: format!("xdrsrv{tag}"), client: format!("xdrcli{tag}"), listener: None };
        let veth_s = format!("vs{tag}");
        let veth_c = format!("vc{tag}");
        for args in [
            vec!["ip", "netns", "add", &lab.server],
            vec!["ip", "netns", "add", &lab.client],
            vec!["ip", "link", "add", &veth_s, "type", "veth", "peer", "name", &veth_c],
            vec!["ip", "link", "set", &veth_s, "netns", &lab.server],
            vec!["ip", "link", "set", &veth_c, "netns", &lab.client],
            vec!["ip", "-n", &lab.server, "addr", "add", "198.51.100.1/24", "dev", &veth_s],
            vec!["ip", "-n", &lab.client, "addr", "add", "198.51.100.2/24", "dev", &veth_c],
            vec!["ip", "-n", &lab.client, "addr", "add", "198.51.100.3/24", "dev", &veth_c],
            vec!["ip", "-n", &lab.server, "link", "set", &veth_s, "up"],
            vec!["ip", "-n", &lab.client, "link", "set", &veth_c, "up"],
            vec!["ip", "-n", &lab.server, "link", "set", "lo", "up"],
        ] {
            let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        lab
    }

    fn listen(&mut self) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.server, "socat", "TCP-LISTEN:8080,fork,reuseaddr", "SYSTEM:echo hello"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.listener = Some(child);
    }

    /// Whether a TCP connection from `source` to the listener gets its greeting.
    fn connects_from(&self, source: &str) -> bool {
        let target = format!("TCP:198.51.100.1:8080,bind={source},connect-timeout=2");
        let out = Command::new("ip")
            .args(["netns", "exec", &self.client, "socat", "-T", "3", "-", &target])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("hello")
    }

    /// Until the listener answers the unblocked source (it starts asynchronously).
    async fn wait_listening(&self) {
        let started = Instant::now();
        while !self.connects_from("198.51.100.3") {
            assert!(started.elapsed() < Duration::from_secs(15), "listener never came up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut l) = self.listener.take() {
            let _ = l.kill();
            let _ = l.wait();
        }
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[tokio::test]
async fn nftables_in_a_private_namespace_drops_a_blocked_source_only() {
    firewall_drops_a_blocked_source_only("nftables", "nft").await;
}

#[tokio::test]
async fn iptables_in_a_private_namespace_drops_a_blocked_source_only() {
    firewall_drops_a_blocked_source_only("iptables", "iptables").await;
}

/// The backend, applied by the real agent inside the lab's `server` namespace: a blocked
/// source's TCP connect fails, an unblocked one succeeds, and `--cleanup` undoes it.
async fn firewall_drops_a_blocked_source_only(backend: &str, tool: &str) {
    if let Err(reason) = netns_available(tool) {
        eprintln!("SKIPPED {backend} namespace test: {reason}");
        return;
    }
    let env = Env::start().await;
    let org = OrgId(Uuid::new_v4());
    let (_, key) = env.agent_key(org).await;
    let mut lab = Lab::new();
    lab.listen();
    lab.wait_listening().await;
    assert!(lab.connects_from("198.51.100.2"), "before any block both sources connect");

    // The agent runs in the host namespace (it reaches the server), its firewall in `server`.
    let agent = env.spawn_agent(&key, &["--backend", backend, "--netns", &lab.server]);
    agent.wait_for_log("re-synced; waiting for orders").await;
    let action = env.block(org, None, "198.51.100.2").await;
    let done = env.wait_for_action(org, action, ActionStatus::Succeeded).await;
    let detail = done.detail.unwrap();
    assert!(detail.contains("198.51.100.2") && detail.contains("600s"), "{detail}");

    assert!(!lab.connects_from("198.51.100.2"), "the blocked source still connects");
    assert!(lab.connects_from("198.51.100.3"), "the unblocked source was cut off too");
    if tool == "nft" {
        let table = Command::new("ip")
            .args(["netns", "exec", &lab.server, "nft", "list", "table", "inet", "mini_xdr"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&table.stdout).contains("198.51.100.2 timeout 10m"), "one timed element");
    }

    // Cleanup removes what the agent owns and nothing else; the source connects again.
    drop(agent);
    let out = Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .args(["agent", "--backend", backend, "--cleanup", "--netns", &lab.server])
        .env_remove("XDR_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(lab.connects_from("198.51.100.2"));
    env.cleanup().await;
}

/// Issue #9's first acceptance point with every real part: the real Cowrie log through the
/// detector core, an auto policy "severity ≥ high → block 10 min", the order through the
/// agent gateway to the real `mini-xdr agent --backend dry-run`, its success back through
/// the results consumer, and the incident contained with the story on its timeline.
#[tokio::test]
async fn the_real_brute_force_is_blocked_by_a_real_dry_run_agent_under_an_auto_policy() {
    use xdr_commands::response::containment::{change_settings, create_policy, set_auto_containment};
    use xdr_domain::ids::PolicyId;
    use xdr_domain::response::action::policy_action_id;
    use xdr_domain::response::policy::{ContainmentPolicy, PolicyAction, PolicyConditions, PolicyMode};
    use xdr_domain::telemetry::parsers::{parse_record, split_records, ParseContext};
    use xdr_domain::telemetry::{telemetry_event_id, SourceType};
    use xdr_domain::Event;

    let env = Env::start().await;
    let org = OrgId(Uuid::new_v4());
    let (_, key) = env.agent_key(org).await;
    let agent = env.spawn_agent(&key, &[]);
    let meta = EventMetadata::system("test");
    let policy = ContainmentPolicy {
        policy_id: PolicyId(Uuid::new_v4()),
        name: "block high".into(),
        priority: 1,
        enabled: true,
        conditions: PolicyConditions { min_severity: Some(Severity::High), ..Default::default() },
        action: PolicyAction { kind: ActionKind::BlockIp, duration_secs: Some(600) },
        mode: PolicyMode::Auto,
    };
    create_policy(&env.store, org, policy.clone(), &meta, Utc::now()).await.unwrap();
    set_auto_containment(&env.store, org, true, &meta, Utc::now()).await.unwrap();
    // The lab's attackers are loopback addresses (shared/data/real-logs/README.md): protect
    // only the server's own one.
    change_settings(&env.store, org, vec!["127.0.0.1/32".into()], false, 10, &meta, Utc::now()).await.unwrap();

    let log =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/domain/tests/fixtures/cowrie.json")).unwrap();
    let ctx = ParseContext::received_at(chrono::DateTime::parse_from_rfc3339("2026-12-31T23:59:59Z").unwrap().to_utc());
    let events: Vec<_> = split_records(SourceType::Cowrie, &log)
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let ev = parse_record(SourceType::Cowrie, r, &ctx).unwrap();
            let id = telemetry_event_id(ev.timestamp, format!("cowrie/{i}").as_bytes());
            xdr_commands::NewEvent::from_event(id, "telemetry-cowrie", &Event::SecurityEventObserved(ev), &meta)
        })
        .collect();
    env.store.append_batch(org, events).await.unwrap();

    let settings = xdr_inference::ResponseSettings { config: env.config.clone(), policy_cache_ttl: Duration::ZERO };
    let mut responder = xdr_inference::Responder::connect(env.js.clone(), &settings).await.unwrap();
    let mut detector = xdr_inference::Detector::default();
    for e in env.store.read_org(org, 0, i64::MAX).await.unwrap() {
        if e.event_type != "SecurityEventObserved" {
            continue;
        }
        let commands = detector.process(&e);
        xdr_inference::execute_commands(&env.store, &commands).await.unwrap();
        responder.respond(&env.store, &commands).await;
    }

    let opened = env.store.read_org(org, 0, i64::MAX).await.unwrap().into_iter().find_map(|e| match e.event() {
        Ok(Event::IncidentOpened(o)) if o.src_ip == "127.0.0.2" => Some(o.incident_id),
        _ => None,
    });
    let incident = opened.expect("the brute force of 127.0.0.2 opens an incident");
    let action = policy_action_id(incident, policy.policy_id);
    let done = env.wait_for_action(org, action, ActionStatus::Succeeded).await;
    assert!(done.detail.as_deref().unwrap_or("").contains("dry-run: would block 127.0.0.2 for 600s"), "{done:?}");
    assert!(done.request.as_ref().is_some_and(|r| r.automatic && !r.needs_approval));
    agent.wait_for_log("127.0.0.2").await;
    let (state, _) = load::<Incident>(&env.store, org, &incident.stream_id()).await.unwrap();
    assert_eq!(state.status, IncidentStatus::Contained);

    xdr_projections::catch_up_once(&env.db.pool).await.unwrap();
    let mut tx = xdr_projections::begin_org_tx(&env.db.pool, org).await.unwrap();
    let steps: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT kind, actor FROM rm_incident_timeline WHERE org_id = $1 AND incident_id = $2 \
           AND kind NOT IN ('evidence', 'escalated') ORDER BY org_seq",
    )
    .bind(org.0)
    .bind(incident.0)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let kinds: Vec<&str> = steps.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["detected", "policy_matched", "action_requested", "action_dispatched", "action_succeeded", "status_changed"]
    );
    let succeeded_by = steps.iter().find(|(k, _)| k == "action_succeeded").and_then(|(_, a)| a.clone());
    assert!(succeeded_by.is_some_and(|a| a.starts_with("agentkey:")), "{steps:?}");
    drop(agent);
    env.cleanup().await;
}
