//! The response API: containment actions requested, approved and rejected over GraphQL and the
//! REST compatibility routes, containment policies and settings, agent keys — each scoped to
//! the caller's org and role, against the real PostgreSQL (and NATS where orders are sent).

use async_nats::jetstream;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;
use xdr_commands::response::{Dispatcher, ResponseConfig};
use xdr_commands::EventStore;
use xdr_domain::ids::OrgId;

use crate::helpers::{detail, spawn_app, spawn_app_with, TestApp, PASSWORD};

async fn gql(app: &TestApp, query: &str, variables: Value, token: &str) -> Value {
    app.post("/graphql", json!({"query": query, "variables": variables}), Some(token)).await.json().await.unwrap()
}

fn code(r: &Value) -> &str {
    r["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {r}"))
}

fn org_of(registered: &Value) -> OrgId {
    OrgId(registered["organization"]["id"].as_str().unwrap().parse().unwrap())
}

/// One brute-force incident per address in `org` (seven failed logins in a minute each, all
/// inside the previous clock hour), detected and projected. Returns the incident ids in order.
async fn incidents_from(app: &TestApp, org: OrgId, token: &str, ips: &[&str]) -> Vec<String> {
    use chrono::DurationRound;
    use xdr_domain::telemetry::{SecurityEvent, SourceType};
    let store = EventStore::new(app.db.pool.clone());
    let start = chrono::Utc::now().duration_trunc(chrono::Duration::hours(1)).unwrap() - chrono::Duration::hours(1)
        + chrono::Duration::minutes(10);
    let mut events = Vec::new();
    for (n, ip) in ips.iter().enumerate() {
        for i in 0..7 {
            let at = start + chrono::Duration::seconds(n as i64 * 10 + i);
            let mut e = SecurityEvent::new(at, SourceType::Cowrie, "cowrie.login.failed", json!({"i": i}));
            e.src_ip = Some(ip.parse().unwrap());
            e.username = Some("root".into());
            e.password = Some(format!("pw{i}"));
            events.push(xdr_commands::NewEvent::from_event(
                Uuid::now_v7(),
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
    let mut ids = Vec::new();
    for ip in ips {
        let r = gql(
            app,
            "query($ip: String) { incidents(filter: {srcIp: $ip}) { edges { node { id } } } }",
            json!({"ip": ip}),
            token,
        )
        .await;
        let edges = r["data"]["incidents"]["edges"].as_array().unwrap_or_else(|| panic!("{r}"));
        assert_eq!(edges.len(), 1, "one incident for {ip}: {r}");
        ids.push(edges[0]["node"]["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// A test's own order and result streams, deleted at the end (also on panic).
struct NatsCorner {
    config: ResponseConfig,
    js: jetstream::Context,
}

impl NatsCorner {
    async fn new() -> NatsCorner {
        let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
        let client = async_nats::connect(url).await.expect("connect to NATS");
        let config = ResponseConfig::with_prefix(&format!("t{}.", Uuid::new_v4().simple()));
        NatsCorner { config, js: jetstream::new(client) }
    }

    async fn dispatcher(&self) -> Dispatcher {
        Dispatcher::new(self.js.clone(), self.config.clone()).await.expect("dispatcher")
    }

    /// The orders published for `org`, oldest first.
    async fn orders(&self, org: OrgId) -> Vec<Value> {
        let mut stream = self.js.get_stream(&self.config.actions_stream).await.expect("actions stream");
        let last = stream.info().await.expect("stream info").state.last_sequence;
        let subject = self.config.actions_subject(org.0);
        let mut out = Vec::new();
        for seq in 1..=last {
            let Ok(m) = stream.get_raw_message(seq).await else { continue };
            if m.subject.as_str() == subject {
                out.push(serde_json::from_slice(&m.payload).expect("order json"));
            }
        }
        out
    }
}

impl Drop for NatsCorner {
    fn drop(&mut self) {
        let js = self.js.clone();
        let names = [self.config.actions_stream.clone(), self.config.results_stream.clone()];
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                for n in names {
                    let _ = js.delete_stream(&n).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

const REQUEST: &str = "mutation($incident: ID!, $kind: ActionKind!, $params: ActionParams) {
  requestAction(incidentId: $incident, kind: $kind, params: $params) {
    id incidentId kind target durationSeconds status needsApproval requestedBy decidedBy attempts } }";
const APPROVE: &str = "mutation($id: ID!) { approveAction(id: $id) { id status decidedBy attempts } }";
const REJECT: &str =
    "mutation($id: ID!, $reason: String) { rejectAction(id: $id, reason: $reason) { id status detail decidedBy } }";
const ACTIONS: &str = "query($filter: ActionFilter, $first: Int, $after: String) {
  actions(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id status kind target incidentId detail decidedBy } } pageInfo { hasNextPage endCursor } } }";
const TIMELINE: &str =
    "query($id: ID!) { incident(id: $id) { status actions { id status } timeline { kind actor detail } } }";

#[tokio::test]
async fn actions_are_requested_by_analysts_approved_by_leads_and_never_cross_orgs() {
    let nats = NatsCorner::new().await;
    let app = spawn_app_with(xdr_graphql::ServerConfig {
        dispatcher: Some(nats.dispatcher().await),
        ..crate::helpers::unlimited()
    })
    .await;
    let a = app.register("Org A", "admin@a.com").await;
    let b = app.register("Org B", "admin@b.com").await;
    let (org_a, org_b) = (org_of(&a), org_of(&b));
    let admin = app.login_ok("admin@a.com", PASSWORD).await.access;
    let other = app.login_ok("admin@b.com", PASSWORD).await.access;
    let (_, viewer) = app.user_with_role(&admin, "viewer@a.com", "viewer").await;
    let (analyst_id, analyst) = app.user_with_role(&admin, "analyst@a.com", "analyst").await;
    let (lead_id, lead) = app.user_with_role(&admin, "lead@a.com", "soc_lead").await;
    let (analyst, lead, viewer) = (analyst.access, lead.access, viewer.access);
    let incidents = incidents_from(&app, org_a, &admin, &["203.0.113.10", "203.0.113.11", "203.0.113.12"]).await;

    // A viewer may not ask; an analyst's block goes out at once, to org A's agents only.
    let r = gql(&app, REQUEST, json!({"incident": incidents[0], "kind": "BLOCK_IP"}), &viewer).await;
    assert_eq!(code(&r), "FORBIDDEN");
    let params = json!({"durationSeconds": 600, "note": "stop the guessing"});
    let r = gql(&app, REQUEST, json!({"incident": incidents[0], "kind": "BLOCK_IP", "params": params}), &analyst).await;
    let block = &r["data"]["requestAction"];
    assert_eq!(block["status"], "DISPATCHED", "{r}");
    assert_eq!(block["target"], "203.0.113.10", "the target defaults to the incident's source");
    assert_eq!(block["durationSeconds"], 600);
    assert_eq!(block["attempts"], 1);
    assert_eq!(block["requestedBy"], analyst_id.as_str());
    let block_id = block["id"].as_str().unwrap().to_owned();
    let orders = nats.orders(org_a).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["action_id"], block_id.as_str());
    assert_eq!(orders[0]["target"], "203.0.113.10");
    assert_eq!(orders[0]["duration_secs"], 600);
    assert!(nats.orders(org_b).await.is_empty());

    // Four-eyes: held until a soc_lead approves; an analyst cannot approve.
    let held = json!({"incident": incidents[1], "kind": "BLOCK_IP", "params": {"requireApproval": true}});
    let r = gql(&app, REQUEST, held.clone(), &analyst).await;
    assert_eq!(r["data"]["requestAction"]["status"], "PENDING_APPROVAL", "{r}");
    assert_eq!(r["data"]["requestAction"]["attempts"], 0);
    let pending = r["data"]["requestAction"]["id"].as_str().unwrap().to_owned();
    assert_eq!(nats.orders(org_a).await.len(), 1, "nothing is sent before approval");
    let r = gql(&app, APPROVE, json!({"id": pending}), &analyst).await;
    assert_eq!(code(&r), "FORBIDDEN");

    // Org B (even its admin) cannot see, approve, reject or contain org A's actions and incidents.
    let r = gql(&app, APPROVE, json!({"id": pending}), &other).await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    let r = gql(&app, REJECT, json!({"id": pending, "reason": "mine now"}), &other).await;
    assert_eq!(code(&r), "NOT_FOUND");
    let r = gql(&app, REQUEST, json!({"incident": incidents[2], "kind": "BLOCK_IP"}), &other).await;
    assert_eq!(code(&r), "NOT_FOUND");
    let r = gql(&app, "query($id: ID!) { action(id: $id) { id } }", json!({"id": block_id}), &other).await;
    assert!(r["data"]["action"].is_null(), "{r}");
    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
    let r = gql(&app, ACTIONS, json!({}), &other).await;
    assert_eq!(r["data"]["actions"]["edges"], json!([]));

    let r = gql(&app, APPROVE, json!({"id": pending}), &lead).await;
    assert_eq!(r["data"]["approveAction"]["status"], "DISPATCHED", "{r}");
    assert_eq!(r["data"]["approveAction"]["decidedBy"], lead_id.as_str());
    assert_eq!(nats.orders(org_a).await.len(), 2, "approval sends at once");

    // A rejection is recorded with its reason, and the action is never sent.
    let held = json!({"incident": incidents[2], "kind": "BLOCK_IP", "params": {"requireApproval": true}});
    let r = gql(&app, REQUEST, held, &analyst).await;
    let rejected = r["data"]["requestAction"]["id"].as_str().unwrap().to_owned();
    let r = gql(&app, REJECT, json!({"id": rejected, "reason": "our own scanner"}), &lead).await;
    assert_eq!(r["data"]["rejectAction"]["status"], "REJECTED", "{r}");
    assert_eq!(r["data"]["rejectAction"]["detail"], "our own scanner");
    let r = gql(&app, APPROVE, json!({"id": rejected}), &lead).await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "a rejected action cannot be approved: {r}");
    assert_eq!(app.count_events("ActionDispatched", &format!("action-{rejected}")).await, 0);
    assert_eq!(nats.orders(org_a).await.len(), 2);

    // Input the rails and the aggregate refuse, with clear codes.
    let r = gql(&app, REQUEST, json!({"incident": incidents[2], "kind": "ISOLATE_HOST"}), &analyst).await;
    assert_eq!(code(&r), "BAD_USER_INPUT");
    assert!(r["errors"][0]["message"].as_str().unwrap().contains("needs a target"), "{r}");
    let params = json!({"target": "127.0.0.1"});
    let r = gql(&app, REQUEST, json!({"incident": incidents[2], "kind": "BLOCK_IP", "params": params}), &analyst).await;
    assert_eq!(code(&r), "BAD_USER_INPUT");
    assert_eq!(r["errors"][0]["extensions"]["reason"], "PROTECTED_TARGET");
    let r = gql(&app, REQUEST, json!({"incident": Uuid::new_v4(), "kind": "BLOCK_IP"}), &analyst).await;
    assert_eq!(code(&r), "NOT_FOUND");

    // The agent confirms the first block: it is in force for org A only.
    let result = xdr_domain::response::order::ActionResult {
        action_id: xdr_domain::ids::ActionId(block_id.parse().unwrap()),
        org_id: org_a,
        attempt: 1,
        agent: "agentkey:test".into(),
        ok: true,
        detail: "dry-run: nft add element".into(),
        at: chrono::Utc::now(),
    };
    let store = EventStore::new(app.db.pool.clone());
    xdr_commands::response::actions::record_result(&store, org_a, &result).await.unwrap();
    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
    let r = gql(&app, "{ activeBlocks { actionId ip incidentId expiresAt } }", json!({}), &admin).await;
    let blocks = r["data"]["activeBlocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1, "{r}");
    assert_eq!(blocks[0]["ip"], "203.0.113.10");
    assert_eq!(blocks[0]["incidentId"], incidents[0].as_str());
    assert!(!blocks[0]["expiresAt"].is_null());
    let r = gql(&app, "{ activeBlocks { ip } }", json!({}), &other).await;
    assert_eq!(r["data"]["activeBlocks"], json!([]));

    // Lists: newest first, paged with cursors, filtered.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let r = gql(&app, ACTIONS, json!({"first": 2, "after": after}), &viewer).await;
        let page = &r["data"]["actions"];
        seen.extend(page["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap().to_owned()));
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, vec![rejected.clone(), pending.clone(), block_id.clone()]);
    let r = gql(&app, ACTIONS, json!({"filter": {"status": "REJECTED"}}), &viewer).await;
    let edges = r["data"]["actions"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0]["node"]["detail"], "our own scanner");
    assert_eq!(edges[0]["node"]["decidedBy"], lead_id.as_str());
    let r = gql(&app, ACTIONS, json!({"filter": {"incidentId": incidents[0], "kind": "BLOCK_IP"}}), &viewer).await;
    assert_eq!(r["data"]["actions"]["edges"][0]["node"]["status"], "SUCCEEDED", "{r}");
    assert_eq!(r["data"]["actions"]["edges"].as_array().unwrap().len(), 1);

    // The incident's timeline tells who did what: request → dispatch → success, contained.
    let r = gql(&app, TIMELINE, json!({"id": incidents[0]}), &viewer).await;
    let incident = &r["data"]["incident"];
    assert_eq!(incident["status"], "CONTAINED", "{r}");
    assert_eq!(incident["actions"][0]["id"], block_id.as_str());
    let steps: Vec<(&str, &str)> = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"].as_str().unwrap().starts_with("action_"))
        .map(|t| (t["kind"].as_str().unwrap(), t["actor"].as_str().unwrap_or_default()))
        .collect();
    let analyst_actor = format!("user:{analyst_id}");
    assert_eq!(
        steps,
        vec![
            ("action_requested", analyst_actor.as_str()),
            ("action_dispatched", "dispatcher"),
            ("action_succeeded", "agentkey:test"),
        ]
    );
    let r = gql(&app, TIMELINE, json!({"id": incidents[2]}), &viewer).await;
    let timeline = r["data"]["incident"]["timeline"].as_array().unwrap();
    let last = timeline.last().unwrap();
    assert_eq!(last["kind"], "action_rejected");
    assert_eq!(last["actor"], format!("user:{lead_id}"));
    assert_eq!(last["detail"]["reason"], "our own scanner");
    assert!(!timeline.iter().any(|t| t["kind"] == "action_dispatched"));
    let r = gql(&app, TIMELINE, json!({"id": incidents[1]}), &viewer).await;
    let kinds: Vec<&str> = r["data"]["incident"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .filter(|k| k.starts_with("action_"))
        .collect();
    assert_eq!(kinds, vec!["action_requested", "action_approved", "action_dispatched"]);

    // Every request records who asked and from where.
    let meta: Value =
        sqlx::query_scalar("SELECT metadata FROM event_log WHERE event_type = 'ActionRequested' AND stream_id = $1")
            .bind(format!("action-{block_id}"))
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(meta["actor_user_id"], analyst_id.as_str());
    assert_eq!(meta["request_ip"], "127.0.0.1");
}

#[tokio::test]
async fn rest_contain_and_unblock_follow_roles_rails_and_org_scope() {
    let app = spawn_app().await;
    let a = app.register("Org A", "admin@a.com").await;
    app.register("Org B", "admin@b.com").await;
    let admin = app.login_ok("admin@a.com", PASSWORD).await.access;
    let other = app.login_ok("admin@b.com", PASSWORD).await.access;
    let (_, viewer) = app.user_with_role(&admin, "viewer@a.com", "viewer").await;
    let (analyst_id, analyst) = app.user_with_role(&admin, "analyst@a.com", "analyst").await;
    let (analyst, viewer) = (analyst.access, viewer.access);
    let ids = incidents_from(&app, org_of(&a), &admin, &["198.51.100.7", "127.0.0.9", "10.20.30.40"]).await;
    let (public, loopback, private) = (&ids[0], &ids[1], &ids[2]);
    let contain = |id: &str| format!("/api/incidents/{id}/contain?duration_seconds=600");

    let (status, _) = detail(app.post(&contain(public), json!({}), Some(&viewer)).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let r = app.post(&contain(public), json!({}), None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Without a dispatcher the block is approved and waits for the scheduler to send it.
    let r = app.post(&contain(public), json!({}), Some(&analyst)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["kind"], "block_ip");
    assert_eq!(body["target"], "198.51.100.7");
    assert_eq!(body["status"], "approved");
    assert_eq!(body["duration_seconds"], 600);
    assert_eq!(body["incident_id"], public.as_str());
    let action = body["action_id"].as_str().unwrap().to_owned();
    let meta: Value =
        sqlx::query_scalar("SELECT metadata FROM event_log WHERE event_type = 'ActionRequested' AND stream_id = $1")
            .bind(format!("action-{action}"))
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(meta["actor_user_id"], analyst_id.as_str());

    // The rails: loopback is protected, private ranges need the org's opt-in.
    let (status, why) = detail(app.post(&contain(loopback), json!({}), Some(&analyst)).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(why.contains("protected range 127.0.0.0/8"), "{why}");
    let (status, why) = detail(app.post(&contain(private), json!({}), Some(&analyst)).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(why.contains("private range 10.0.0.0/8"), "{why}");
    let r = gql(
        &app,
        "mutation { updateContainmentSettings(allowPrivateTargets: true) { allowPrivateTargets } }",
        json!({}),
        &admin,
    )
    .await;
    assert_eq!(r["data"]["updateContainmentSettings"]["allowPrivateTargets"], true, "{r}");
    let r = app.post(&contain(private), json!({}), Some(&analyst)).await;
    assert_eq!(r.status(), StatusCode::OK, "allowed once the org opts in");
    let (status, why) = detail(
        app.post(&format!("/api/incidents/{public}/contain?duration_seconds=0"), json!({}), Some(&analyst)).await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(why.contains("duration"), "{why}");

    // Unblocking is always allowed, even for a protected address.
    let r = app.post(&format!("/api/incidents/{loopback}/unblock"), json!({}), Some(&analyst)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!((body["kind"].as_str(), body["target"].as_str()), (Some("unblock_ip"), Some("127.0.0.9")));
    assert_eq!(body["status"], "approved");

    // Another org's incident, an unknown one and a malformed id are all simply not found.
    for path in [contain(public), format!("/api/incidents/{public}/unblock")] {
        let (status, _) = detail(app.post(&path, json!({}), Some(&other)).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = detail(app.post(&contain(&Uuid::new_v4().to_string()), json!({}), Some(&analyst)).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = detail(app.post(&contain("not-an-id"), json!({}), Some(&analyst)).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.count_events("ActionRequested", &format!("action-{action}")).await, 1);
    let requested: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log WHERE event_type = 'ActionRequested'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(requested, 3, "the block, the private block once allowed, the unblock");
}

const CREATE_POLICY: &str = "mutation($input: ContainmentPolicyInput!) { createContainmentPolicy(input: $input) {
  id name priority enabled mode conditions { minSeverity categories minRisk techniques sourceIn sourceNotIn }
  action { kind durationSeconds } } }";
const UPDATE_POLICY: &str = "mutation($id: ID!, $input: ContainmentPolicyInput!) {
  updateContainmentPolicy(id: $id, input: $input) { id priority enabled mode } }";
const POLICIES: &str = "{ containmentPolicies { id name priority enabled mode
  conditions { minSeverity categories techniques sourceNotIn } action { kind durationSeconds } } }";
const SETTINGS: &str =
    "{ containmentSettings { autoContainment protectedRanges allowPrivateTargets maxAutoBlocksPerMinute } }";

fn policy(name: &str, priority: i32, mode: &str) -> Value {
    json!({
        "name": name,
        "priority": priority,
        "mode": mode,
        "conditions": {"minSeverity": "HIGH", "categories": ["BRUTE_FORCE"], "techniques": ["T1110"],
                       "sourceNotIn": ["192.0.2.0/24"]},
        "action": {"kind": "BLOCK_IP", "durationSeconds": 600}
    })
}

#[tokio::test]
async fn containment_policies_and_settings_are_validated_admin_managed_and_per_org() {
    let app = spawn_app().await;
    app.register("Org A", "admin@a.com").await;
    app.register("Org B", "admin@b.com").await;
    let admin = app.login_ok("admin@a.com", PASSWORD).await.access;
    let other = app.login_ok("admin@b.com", PASSWORD).await.access;
    let (_, analyst) = app.user_with_role(&admin, "analyst@a.com", "analyst").await;
    let (_, lead) = app.user_with_role(&admin, "lead@a.com", "soc_lead").await;
    let (analyst, lead) = (analyst.access, lead.access);

    // Before any containment event, the domain's defaults.
    let defaults = json!({"autoContainment": false, "protectedRanges": ["127.0.0.0/8", "::1/128"],
                          "allowPrivateTargets": false, "maxAutoBlocksPerMinute": 10});
    let r = gql(&app, SETTINGS, json!({}), &analyst).await;
    assert_eq!(r["data"]["containmentSettings"], defaults, "{r}");

    // Admin only.
    for token in [&analyst, &lead] {
        let r = gql(&app, CREATE_POLICY, json!({"input": policy("p", 10, "AUTO")}), token).await;
        assert_eq!(code(&r), "FORBIDDEN");
        let r = gql(&app, "mutation { setAutoContainment(enabled: true) { autoContainment } }", json!({}), token).await;
        assert_eq!(code(&r), "FORBIDDEN");
        let r = gql(
            &app,
            "mutation { updateContainmentSettings(maxAutoBlocksPerMinute: 1) { maxAutoBlocksPerMinute } }",
            json!({}),
            token,
        )
        .await;
        assert_eq!(code(&r), "FORBIDDEN");
    }

    let r = gql(&app, CREATE_POLICY, json!({"input": policy(" high → block 10 min ", 10, "AUTO")}), &admin).await;
    let high = &r["data"]["createContainmentPolicy"];
    assert_eq!(high["name"], "high → block 10 min", "{r}");
    assert_eq!(high["enabled"], true, "enabled by default");
    assert_eq!(high["conditions"]["minSeverity"], "HIGH");
    assert_eq!(high["conditions"]["categories"], json!(["BRUTE_FORCE"]));
    assert_eq!(high["action"], json!({"kind": "BLOCK_IP", "durationSeconds": 600}));
    let high_id = high["id"].as_str().unwrap().to_owned();

    // Validation: unique priorities, real CIDRs, supported actions.
    let r = gql(&app, CREATE_POLICY, json!({"input": policy("again", 10, "APPROVAL")}), &admin).await;
    assert_eq!(code(&r), "BAD_USER_INPUT");
    assert!(r["errors"][0]["message"].as_str().unwrap().contains("priority 10"), "{r}");
    let mut bad_cidr = policy("cidr", 11, "AUTO");
    bad_cidr["conditions"]["sourceIn"] = json!(["10.0.0.0/99"]);
    let r = gql(&app, CREATE_POLICY, json!({"input": bad_cidr}), &admin).await;
    assert_eq!(code(&r), "BAD_USER_INPUT");
    assert!(r["errors"][0]["message"].as_str().unwrap().contains("10.0.0.0/99"), "{r}");
    let mut isolate = policy("isolate", 12, "AUTO");
    isolate["action"] = json!({"kind": "ISOLATE_HOST"});
    let r = gql(&app, CREATE_POLICY, json!({"input": isolate}), &admin).await;
    assert_eq!(code(&r), "BAD_USER_INPUT");

    let r = gql(&app, CREATE_POLICY, json!({"input": policy("leads decide", 20, "APPROVAL")}), &admin).await;
    let second = r["data"]["createContainmentPolicy"]["id"].as_str().unwrap().to_owned();
    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
    let r = gql(&app, POLICIES, json!({}), &analyst).await;
    let list = r["data"]["containmentPolicies"].as_array().unwrap();
    assert_eq!(list.iter().map(|p| p["priority"].as_i64().unwrap()).collect::<Vec<_>>(), vec![10, 20], "{r}");
    assert_eq!(list[0]["conditions"]["techniques"], json!(["T1110"]));
    assert_eq!(list[0]["conditions"]["sourceNotIn"], json!(["192.0.2.0/24"]));
    assert_eq!(list[1]["mode"], "APPROVAL");

    // Updates replace the policy; another policy's priority is still refused.
    let mut moved = policy("leads decide", 5, "APPROVAL");
    moved["enabled"] = json!(false);
    let r = gql(&app, UPDATE_POLICY, json!({"id": second, "input": moved}), &admin).await;
    assert_eq!(r["data"]["updateContainmentPolicy"]["priority"], 5, "{r}");
    let r = gql(&app, UPDATE_POLICY, json!({"id": second, "input": policy("x", 10, "AUTO")}), &admin).await;
    assert_eq!(code(&r), "BAD_USER_INPUT");
    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
    let r = gql(&app, POLICIES, json!({}), &admin).await;
    let list = r["data"]["containmentPolicies"].as_array().unwrap();
    assert_eq!(list[0]["id"], second.as_str());
    assert_eq!(list[0]["enabled"], false);
    assert_eq!(list[1]["id"], high_id.as_str());

    // Org B sees none of it and can change none of it.
    let r = gql(&app, POLICIES, json!({}), &other).await;
    assert_eq!(r["data"]["containmentPolicies"], json!([]));
    let r = gql(&app, UPDATE_POLICY, json!({"id": high_id, "input": policy("mine", 1, "AUTO")}), &other).await;
    assert_eq!(code(&r), "NOT_FOUND");
    let r = gql(&app, "mutation($id: ID!) { deleteContainmentPolicy(id: $id) }", json!({"id": high_id}), &other).await;
    assert_eq!(code(&r), "NOT_FOUND");

    let r = gql(&app, "mutation($id: ID!) { deleteContainmentPolicy(id: $id) }", json!({"id": second}), &admin).await;
    assert_eq!(r["data"]["deleteContainmentPolicy"], true, "{r}");

    // The switch and the rails.
    let r = gql(&app, "mutation { setAutoContainment(enabled: true) { autoContainment } }", json!({}), &admin).await;
    assert_eq!(r["data"]["setAutoContainment"]["autoContainment"], true);
    let r = gql(
        &app,
        "mutation { updateContainmentSettings(protectedRanges: [\"nope\"]) { protectedRanges } }",
        json!({}),
        &admin,
    )
    .await;
    assert_eq!(code(&r), "BAD_USER_INPUT");
    let r = gql(
        &app,
        "mutation { updateContainmentSettings(maxAutoBlocksPerMinute: -1) { protectedRanges } }",
        json!({}),
        &admin,
    )
    .await;
    assert_eq!(code(&r), "BAD_USER_INPUT");
    let r = gql(
        &app,
        "mutation { updateContainmentSettings(protectedRanges: [\"127.0.0.0/8\", \"198.51.100.9/24\"], maxAutoBlocksPerMinute: 3) {
           autoContainment protectedRanges allowPrivateTargets maxAutoBlocksPerMinute } }",
        json!({}),
        &admin,
    )
    .await;
    let expected = json!({"autoContainment": true, "protectedRanges": ["127.0.0.0/8", "198.51.100.0/24"],
                          "allowPrivateTargets": false, "maxAutoBlocksPerMinute": 3});
    assert_eq!(r["data"]["updateContainmentSettings"], expected, "{r}");
    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
    let r = gql(&app, SETTINGS, json!({}), &analyst).await;
    assert_eq!(r["data"]["containmentSettings"], expected);
    let r = gql(&app, POLICIES, json!({}), &analyst).await;
    assert_eq!(r["data"]["containmentPolicies"].as_array().unwrap().len(), 1);
    let r = gql(&app, SETTINGS, json!({}), &other).await;
    assert_eq!(r["data"]["containmentSettings"], defaults, "org B keeps its defaults");

    // Each change records its admin and address.
    let actors: Vec<Value> = sqlx::query_scalar(
        "SELECT metadata FROM event_log WHERE stream_id LIKE 'containment-%' ORDER BY org_id, org_seq",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(actors.len(), 6, "2 creates, 1 update, 1 delete, the switch, the rails");
    assert!(actors.iter().all(|m| m["actor_user_id"].is_string() && m["request_ip"] == "127.0.0.1"), "{actors:?}");
}

#[tokio::test]
async fn agent_keys_are_shown_once_listed_without_the_key_and_revoked_per_org() {
    use xdr_commands::response::agent_keys::{resolve_agent_key, AgentKeyStatus};
    let app = spawn_app().await;
    let a = app.register("Org A", "admin@a.com").await;
    app.register("Org B", "admin@b.com").await;
    let admin = app.login_ok("admin@a.com", PASSWORD).await.access;
    let other = app.login_ok("admin@b.com", PASSWORD).await.access;
    let (_, analyst) = app.user_with_role(&admin, "analyst@a.com", "analyst").await;
    const CREATE: &str =
        "mutation($name: String!) { createAgentKey(name: $name) { key agentKey { id name prefix revokedAt } } }";
    const LIST: &str = "{ agentKeys { id name prefix createdAt revokedAt } }";
    const REVOKE: &str = "mutation($id: ID!) { revokeAgentKey(id: $id) }";

    let r = gql(&app, CREATE, json!({"name": "edge-fw"}), &analyst.access).await;
    assert_eq!(code(&r), "FORBIDDEN");
    let r = gql(&app, LIST, json!({}), &analyst.access).await;
    assert_eq!(code(&r), "FORBIDDEN");
    let r = gql(&app, CREATE, json!({"name": "  "}), &admin).await;
    assert_eq!(code(&r), "BAD_USER_INPUT");

    let r = gql(&app, CREATE, json!({"name": "edge-fw"}), &admin).await;
    let created = &r["data"]["createAgentKey"];
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("xdra_"), "{r}");
    assert_eq!(created["agentKey"]["prefix"], &key[..8]);
    let id = created["agentKey"]["id"].as_str().unwrap().to_owned();
    let org_a = org_of(&a);
    assert!(
        matches!(resolve_agent_key(&app.db.api, &key).await.unwrap(), AgentKeyStatus::Valid { org_id, .. } if org_id == org_a)
    );

    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
    let r = gql(&app, LIST, json!({}), &admin).await;
    assert_eq!(r["data"]["agentKeys"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["data"]["agentKeys"][0]["name"], "edge-fw");
    assert!(!r.to_string().contains(&key), "a list never shows the key");
    let r = gql(&app, LIST, json!({}), &other).await;
    assert_eq!(r["data"]["agentKeys"], json!([]));

    // Org B cannot revoke org A's key.
    let r = gql(&app, REVOKE, json!({"id": id}), &other).await;
    assert_eq!(code(&r), "NOT_FOUND");
    assert!(matches!(resolve_agent_key(&app.db.api, &key).await.unwrap(), AgentKeyStatus::Valid { .. }));

    let r = gql(&app, REVOKE, json!({"id": id}), &analyst.access).await;
    assert_eq!(code(&r), "FORBIDDEN");
    let r = gql(&app, REVOKE, json!({"id": id}), &admin).await;
    assert_eq!(r["data"]["revokeAgentKey"], true, "{r}");
    let r = gql(&app, REVOKE, json!({"id": id}), &admin).await;
    assert_eq!(r["data"]["revokeAgentKey"], false, "already revoked");
    assert_eq!(resolve_agent_key(&app.db.api, &key).await.unwrap(), AgentKeyStatus::Revoked);
    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
    let r = gql(&app, LIST, json!({}), &admin).await;
    assert!(!r["data"]["agentKeys"][0]["revokedAt"].is_null(), "{r}");
}

/// Four-eyes: a soc_lead who asked for an action cannot approve it themselves; another lead
/// can. An org admin may allow self-approval (an event), and only an admin may.
#[tokio::test]
async fn a_soc_lead_cannot_approve_their_own_request_unless_an_admin_allows_it() {
    let app = spawn_app().await;
    let a = app.register("Org A", "admin@a.com").await;
    let admin = app.login_ok("admin@a.com", PASSWORD).await.access;
    let (lead_id, lead) = app.user_with_role(&admin, "lead@a.com", "soc_lead").await;
    let (second_id, second) = app.user_with_role(&admin, "second@a.com", "soc_lead").await;
    let (lead, second) = (lead.access, second.access);
    let incidents = incidents_from(&app, org_of(&a), &admin, &["203.0.113.40", "203.0.113.41"]).await;
    let held = |i: usize| json!({"incident": incidents[i], "kind": "BLOCK_IP", "params": {"requireApproval": true}});

    let r = gql(&app, REQUEST, held(0), &lead).await;
    assert_eq!(r["data"]["requestAction"]["requestedBy"], lead_id.as_str(), "{r}");
    let mine = r["data"]["requestAction"]["id"].as_str().unwrap().to_owned();
    let r = gql(&app, APPROVE, json!({"id": mine}), &lead).await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");
    assert_eq!(r["errors"][0]["extensions"]["reason"], "SELF_APPROVAL");
    assert_eq!(app.count_events("ActionApproved", &format!("action-{mine}")).await, 0, "nothing recorded");
    // A second pair of eyes approves it.
    let r = gql(&app, APPROVE, json!({"id": mine}), &second).await;
    assert_eq!(r["data"]["approveAction"]["status"], "APPROVED", "{r}");
    assert_eq!(r["data"]["approveAction"]["decidedBy"], second_id.as_str());

    // Only an admin changes the setting; it is off by default and recorded as an event.
    const SETTINGS: &str = "{ containmentSettings { allowSelfApproval } }";
    const SET: &str = "mutation($allowed: Boolean!) { setSelfApproval(allowed: $allowed) { allowSelfApproval } }";
    assert_eq!(gql(&app, SETTINGS, json!({}), &lead).await["data"]["containmentSettings"]["allowSelfApproval"], false);
    let r = gql(&app, SET, json!({"allowed": true}), &lead).await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");
    let r = gql(&app, SET, json!({"allowed": true}), &admin).await;
    assert_eq!(r["data"]["setSelfApproval"]["allowSelfApproval"], true, "{r}");
    xdr_projections::catch_up_once(&app.db.pool).await.unwrap();
    assert_eq!(gql(&app, SETTINGS, json!({}), &lead).await["data"]["containmentSettings"]["allowSelfApproval"], true);
    let meta: Value = sqlx::query_scalar("SELECT metadata FROM event_log WHERE event_type = 'SelfApprovalSet'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(meta["actor"], format!("user:{}", a["user"]["id"].as_str().unwrap()));

    // Allowed now: the lead approves their own next request.
    let r = gql(&app, REQUEST, held(1), &lead).await;
    let own = r["data"]["requestAction"]["id"].as_str().unwrap().to_owned();
    let r = gql(&app, APPROVE, json!({"id": own}), &lead).await;
    assert_eq!(r["data"]["approveAction"]["status"], "APPROVED", "{r}");
    assert_eq!(r["data"]["approveAction"]["decidedBy"], lead_id.as_str());
}
