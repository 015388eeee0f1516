//! Response acceptance: containment policies evaluated by the detector on the real logs,
//! orders over NATS to an emulated dry-run agent, its results back into the log, approval,
//! the scheduler's retries and timed unblocks with an injected clock, the safety rails.
//!
//! Until the real agent and its HTTP gateway exist, the agent is emulated here exactly as
//! the gateway would act for it: it consumes the org's orders from JetStream
//! (`ResponseConfig::actions_subject`) and publishes `ActionResult` JSON on
//! `results_subject(org)`, with the agent's name filled in by "the gateway".

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use futures::StreamExt;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;
use xdr_commands::handler::load;
use xdr_commands::response::actions::{approve_action, reject_action, Approver};
use xdr_commands::response::containment::{change_settings, create_policy, set_auto_containment};
use xdr_commands::response::results::run_results_consumer;
use xdr_commands::response::scheduler::{self, Sweep};
use xdr_commands::response::{Dispatcher, ResponseConfig};
use xdr_commands::testing::TestDb;
use xdr_commands::EventStore;
use xdr_domain::identity::Role;
use xdr_domain::ids::{IncidentId, OrgId, PolicyId, UserId};
use xdr_domain::incident::{Incident, IncidentStatus, Severity};
use xdr_domain::response::action::{
    expiry_unblock_id, policy_action_id, Action, ActionError, ActionKind, ActionStatus,
};
use xdr_domain::response::order::{ActionOrder, ActionResult};
use xdr_domain::response::policy::{ContainmentPolicy, PolicyAction, PolicyConditions, PolicyMode};
use xdr_domain::EventMetadata;
use xdr_inference::response::Outcome;
use xdr_inference::{run_detector, Detector, DetectorConfig, Responder, ResponseSettings};

use crate::support::*;

/// One scheduler sweep at `now` over the queue the actions read model keeps.
async fn sweep(
    store: &EventStore,
    dispatcher: &Dispatcher,
    now: DateTime<Utc>,
) -> Result<Sweep, xdr_commands::StoreError> {
    let queue = xdr_projections::action_queue::ActionSchedule::new(store.pool().clone());
    scheduler::sweep(store, dispatcher, &queue, now).await
}

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// One test's world: a fresh database, an org, its own NATS names, the results consumer.
struct Lab {
    db: TestDb,
    store: EventStore,
    js: async_nats::jetstream::Context,
    config: ResponseConfig,
    dispatcher: Dispatcher,
    org: OrgId,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Lab {
    async fn new() -> Lab {
        let db = TestDb::new().await;
        let store = EventStore::new(db.pool.clone());
        let client = async_nats::connect(nats_url()).await.expect("connect to NATS");
        let js = async_nats::jetstream::new(client);
        let config = ResponseConfig::with_prefix(&format!("t{}.", Uuid::new_v4().simple()));
        let dispatcher = Dispatcher::new(js.clone(), config.clone()).await.expect("dispatcher");
        let results = tokio::spawn({
            let (store, js, config) = (store.clone(), js.clone(), config.clone());
            async move {
                run_results_consumer(store, js, config, std::future::pending()).await.expect("results consumer");
            }
        });
        Lab { db, store, js, config, dispatcher, org: new_org(), tasks: vec![results] }
    }

    fn metadata() -> EventMetadata {
        EventMetadata::system("test-admin")
    }

    /// A block policy for incidents of at least `min_severity`.
    async fn block_policy(&self, priority: i32, conditions: PolicyConditions, mode: PolicyMode) -> PolicyId {
        let policy = ContainmentPolicy {
            policy_id: PolicyId(Uuid::new_v4()),
            name: format!("block, priority {priority}"),
            priority,
            enabled: true,
            conditions,
            action: PolicyAction { kind: ActionKind::BlockIp, duration_secs: Some(600) },
            mode,
        };
        let id = policy.policy_id;
        create_policy(&self.store, self.org, policy, &Lab::metadata(), Utc::now()).await.expect("create policy");
        id
    }

    /// Auto-containment on, and the rails: only `protected` is protected (the lab's attackers
    /// are loopback addresses, see shared/data/real-logs/README.md).
    async fn settings(&self, protected: &[&str], cap: u32) {
        let m = Lab::metadata();
        set_auto_containment(&self.store, self.org, true, &m, Utc::now()).await.expect("auto-containment on");
        let ranges = protected.iter().map(|s| s.to_string()).collect();
        change_settings(&self.store, self.org, ranges, false, cap, &m, Utc::now()).await.expect("settings");
    }

    /// The emulated dry-run agent: records every order and, if `answer`, reports success.
    async fn agent(&mut self, answer: bool) -> Arc<Mutex<Vec<ActionOrder>>> {
        let received = Arc::new(Mutex::new(Vec::new()));
        let stream = self.js.get_stream(&self.config.actions_stream).await.expect("actions stream");
        let consumer: async_nats::jetstream::consumer::PullConsumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                durable_name: Some("agent-dry-run".into()),
                filter_subject: self.config.actions_subject(self.org.0),
                ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            })
            .await
            .expect("agent consumer");
        let (js, results_subject, seen) = (self.js.clone(), self.config.results_subject(self.org.0), received.clone());
        self.tasks.push(tokio::spawn(async move {
            let mut messages = consumer.messages().await.expect("agent messages");
            while let Some(Ok(message)) = messages.next().await {
                let order: ActionOrder = serde_json::from_slice(&message.payload).expect("an order");
                seen.lock().unwrap().push(order.clone());
                if answer {
                    let result = ActionResult {
                        action_id: order.action_id,
                        org_id: order.org_id,
                        attempt: order.attempt,
                        agent: "agentkey:dry-run".into(),
                        ok: true,
                        detail: format!("dry-run: would {} {}", order.kind.as_str(), order.target),
                        at: Utc::now(),
                    };
                    let body = serde_json::to_vec(&result).unwrap();
                    js.publish(results_subject.clone(), body.into()).await.unwrap().await.unwrap();
                }
                message.ack().await.expect("ack order");
            }
        }));
        received
    }

    /// Orders published to the org so far (the stream is this test's own).
    async fn orders_published(&self) -> u64 {
        let mut stream = self.js.get_stream(&self.config.actions_stream).await.expect("actions stream");
        stream.info().await.expect("stream info").state.messages
    }

    async fn project(&self) {
        xdr_projections::catch_up_once(&self.db.pool).await.expect("projections catch up");
    }

    async fn action(&self, id: xdr_domain::ids::ActionId) -> Action {
        load::<Action>(&self.store, self.org, &id.stream_id()).await.expect("load action").0
    }

    async fn incident(&self, ip: &str) -> (IncidentId, Incident) {
        let found = incidents(&self.store, self.org).await;
        let state = found.get(ip).unwrap_or_else(|| panic!("no incident for {ip}")).state.clone();
        (state.id.unwrap(), state)
    }

    /// Timeline kinds of an incident in org_seq order (after a projection catch-up).
    async fn timeline(&self, incident: IncidentId) -> Vec<(String, serde_json::Value)> {
        let mut tx = xdr_projections::begin_org_tx(&self.db.pool, self.org).await.unwrap();
        sqlx::query_as(
            "SELECT kind, detail FROM rm_incident_timeline WHERE org_id = $1 AND incident_id = $2 ORDER BY org_seq",
        )
        .bind(self.org.0)
        .bind(incident.0)
        .fetch_all(&mut *tx)
        .await
        .unwrap()
    }

    /// Event types of the org's log, in order.
    async fn log_types(&self) -> Vec<String> {
        read_all(&self.store, self.org).await.into_iter().map(|e| e.event_type).collect()
    }

    async fn finish(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        let _ = self.js.delete_stream(&self.config.actions_stream).await;
        let _ = self.js.delete_stream(&self.config.results_stream).await;
    }
}

/// Wait (bounded) until `check` holds; a failure names what never happened.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn severity_at_least_high() -> PolicyConditions {
    PolicyConditions { min_severity: Some(Severity::High), ..Default::default() }
}

/// The detection test harness plus the response step: process the org's telemetry with
/// `detector`, execute its commands, and let `responder` evaluate policies at `now`.
async fn detect_and_respond(
    detector: &mut Detector,
    responder: &mut Responder,
    lab: &Lab,
    now: DateTime<Utc>,
) -> Vec<Outcome> {
    detect_and_respond_through(detector, responder, lab, &lab.store, now).await
}

/// [`detect_and_respond`] with the responder reading and writing through `respond_store`
/// (the incidents still commit to the lab's store).
async fn detect_and_respond_through(
    detector: &mut Detector,
    responder: &mut Responder,
    lab: &Lab,
    respond_store: &EventStore,
    now: DateTime<Utc>,
) -> Vec<Outcome> {
    let events: Vec<_> =
        read_all(&lab.store, lab.org).await.into_iter().filter(|e| e.event_type == "SecurityEventObserved").collect();
    let mut outcomes = Vec::new();
    for e in &events {
        let commands = detector.process(e);
        xdr_inference::execute_commands(&lab.store, &commands).await.expect("execute");
        outcomes.extend(responder.respond_at(respond_store, &commands, now).await.into_iter().map(|(_, o)| o));
    }
    outcomes
}

/// Sources whose incident is at least `high` in the real logs' ground truth.
async fn high_sources(lab: &Lab) -> BTreeSet<String> {
    incidents(&lab.store, lab.org)
        .await
        .into_iter()
        .filter(|(_, v)| v.state.severity.is_some_and(|s| s >= Severity::High))
        .map(|(ip, _)| ip)
        .collect()
}

#[tokio::test]
async fn an_auto_policy_blocks_the_real_brute_force_through_the_detector_and_the_incident_is_contained() {
    let mut lab = Lab::new().await;
    let policy = lab.block_policy(10, severity_at_least_high(), PolicyMode::Auto).await;
    lab.settings(&["127.0.0.1/32"], 10).await;
    let orders = lab.agent(true).await;

    // The detector role as deployed: consuming committed events from NATS, responding.
    let tag = Uuid::new_v4().simple().to_string();
    let config = DetectorConfig {
        subject_prefix: format!("t{tag}."),
        stream_name: format!("T{tag}_EVENTS"),
        response: Some(ResponseSettings { config: lab.config.clone(), policy_cache_ttl: Duration::ZERO }),
        ..Default::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker =
        tokio::spawn(run_detector(config.clone(), lab.store.clone(), lab.js.clone(), Detector::default(), async {
            let _ = stop_rx.await;
        }));
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.js.get_stream(&config.stream_name).await.is_err() {
        assert!(Instant::now() < deadline, "detector stream not created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lab.store.append_batch(lab.org, real_log_events("sshd-auth-rfc3339.log")).await.expect("append");
    let subject = format!("{}events.{}.SecurityEventObserved", config.subject_prefix, lab.org);
    for e in read_all(&lab.store, lab.org).await {
        lab.js.publish(subject.clone(), serde_json::to_vec(&e).unwrap().into()).await.unwrap().await.unwrap();
    }

    // The brute force of 127.0.0.2 (40 failures against Cowrie) is blocked and contained.
    let (incident, _) = {
        eventually("the 127.0.0.2 incident", || async {
            incidents(&lab.store, lab.org).await.contains_key("127.0.0.2")
        })
        .await;
        lab.incident("127.0.0.2").await
    };
    eventually("127.0.0.2 contained", || async {
        lab.incident("127.0.0.2").await.1.status == IncidentStatus::Contained
    })
    .await;
    let action = lab.action(policy_action_id(incident, policy)).await;
    assert_eq!(action.status, ActionStatus::Succeeded);
    assert_eq!(action.detail.as_deref(), Some("dry-run: would block_ip 127.0.0.2"));
    let request = action.request.as_ref().unwrap();
    assert!(request.automatic && !request.needs_approval);
    assert_eq!((request.kind, request.duration_secs), (ActionKind::BlockIp, Some(600)));
    let why = action.policy.as_ref().expect("PolicyMatched recorded");
    assert_eq!((why.mode.as_str(), why.held_for_approval.as_deref()), ("auto", None));
    assert_eq!(why.matched, vec!["severity high >= high"]);

    // Every high or critical source gets exactly one block order; nothing else does.
    eventually("the detector drained its consumer", || async {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            lab.js.get_stream(&config.stream_name).await.unwrap().get_consumer("detector").await.unwrap();
        let info = consumer.info().await.unwrap();
        info.num_pending == 0 && info.num_ack_pending == 0
    })
    .await;
    let high = high_sources(&lab).await;
    assert_eq!(high.len(), 4, "{high:?}");
    eventually("one order per high-severity source", || async {
        let targets: BTreeSet<String> = orders.lock().unwrap().iter().map(|o| o.target.clone()).collect();
        targets == high
    })
    .await;
    stop_tx.send(()).unwrap();
    worker.await.unwrap().expect("detector ends cleanly");
    let received = orders.lock().unwrap().clone();
    assert_eq!(received.len(), 4, "{received:?}");
    assert!(received.iter().all(|o| o.kind == ActionKind::BlockIp && o.attempt == 1 && o.duration_secs == Some(600)));

    // The incident's timeline tells the story in log order.
    lab.project().await;
    let steps: Vec<String> = lab
        .timeline(incident)
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .filter(|k| k != "evidence" && k != "escalated")
        .collect();
    assert_eq!(
        steps,
        vec![
            "detected",
            "policy_matched",
            "action_requested",
            "action_dispatched",
            "action_succeeded",
            "status_changed"
        ]
    );
    lab.finish().await;
}

#[tokio::test]
async fn an_approval_policy_dispatches_nothing_until_a_soc_lead_approves_and_records_a_rejection() {
    let mut lab = Lab::new().await;
    let policy = lab.block_policy(1, severity_at_least_high(), PolicyMode::Approval).await;
    lab.settings(&["127.0.0.1/32"], 10).await;
    let orders = lab.agent(true).await;
    lab.store.append_batch(lab.org, real_log_events("sshd-auth.log")).await.expect("append");
    let dispatcher = Some(lab.dispatcher.clone());
    let t0 = Utc::now();
    let outcomes =
        detect_and_respond(&mut Detector::default(), &mut Responder::new(dispatcher, Duration::ZERO), &lab, t0).await;
    let pending = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Requested { status: ActionStatus::PendingApproval, .. }))
        .count();
    assert_eq!(pending, 4, "{outcomes:?}");

    // Nothing goes out, not even when the scheduler sweeps far in the future.
    lab.project().await;
    sweep(&lab.store, &lab.dispatcher, t0 + ChronoDuration::hours(1)).await.unwrap();
    assert_eq!(lab.orders_published().await, 0);

    let (brute, _) = lab.incident("127.0.0.2").await;
    let (other, _) = lab.incident("127.0.0.6").await;
    let (brute_action, other_action) = (policy_action_id(brute, policy), policy_action_id(other, policy));
    let analyst = Approver { user: UserId(Uuid::new_v4()), role: Role::Analyst };
    let lead = Approver { user: UserId(Uuid::new_v4()), role: Role::SocLead };
    let m = EventMetadata::system("test");
    let err = approve_action(&lab.store, lab.org, brute_action, analyst, &m, t0).await.unwrap_err();
    assert!(matches!(err, xdr_commands::handler::CommandError::Domain(ActionError::NotAllowedToApprove)), "{err:?}");
    assert_eq!(lab.action(brute_action).await.status, ActionStatus::PendingApproval);

    // A soc_lead approves one and rejects the other.
    let approved = approve_action(&lab.store, lab.org, brute_action, lead, &m, t0).await.unwrap();
    assert_eq!((approved.status, approved.approved_by), (ActionStatus::Approved, Some(lead.user)));
    let reason = Some("that address is our pentester".to_owned());
    let rejected = reject_action(&lab.store, lab.org, other_action, lead, reason, &m, t0).await.unwrap();
    assert_eq!(rejected.status, ActionStatus::Rejected);

    // The scheduler sends the approved one (after its grace period) and only that one.
    lab.project().await;
    let done = sweep(&lab.store, &lab.dispatcher, t0 + ChronoDuration::seconds(5)).await.unwrap();
    assert_eq!(done.dispatched, 1);
    eventually("the approved block succeeds", || async {
        lab.incident("127.0.0.2").await.1.status == IncidentStatus::Contained
    })
    .await;
    lab.project().await;
    sweep(&lab.store, &lab.dispatcher, t0 + ChronoDuration::seconds(10)).await.unwrap();
    assert_eq!(lab.orders_published().await, 1);
    let sent: Vec<String> = orders.lock().unwrap().iter().map(|o| o.target.clone()).collect();
    assert_eq!(sent, vec!["127.0.0.2"]);
    assert_eq!(lab.action(other_action).await.status, ActionStatus::Rejected);
    assert_eq!(lab.incident("127.0.0.6").await.1.status, IncidentStatus::Open);

    lab.project().await;
    let kinds: Vec<String> = lab.timeline(other).await.into_iter().map(|(k, _)| k).collect();
    assert!(kinds.contains(&"action_rejected".to_owned()), "{kinds:?}");
    assert!(!kinds.contains(&"action_dispatched".to_owned()), "{kinds:?}");
    let brute_steps: Vec<(String, serde_json::Value)> = lab.timeline(brute).await;
    let matched = brute_steps.iter().find(|(k, _)| k == "policy_matched").expect("policy_matched");
    assert_eq!(matched.1["mode"], "approval");
    let kinds: Vec<&str> = brute_steps.iter().map(|(k, _)| k.as_str()).collect();
    let position = |k: &str| kinds.iter().position(|x| *x == k).unwrap_or_else(|| panic!("{k} missing: {kinds:?}"));
    assert!(position("action_requested") < position("action_approved"));
    assert!(position("action_approved") < position("action_dispatched"));
    assert!(position("action_dispatched") < position("action_succeeded"));
    lab.finish().await;
}

#[tokio::test]
async fn a_timed_block_is_lifted_once_at_expiry_across_a_scheduler_restart_and_concurrent_sweeps() {
    let mut lab = Lab::new().await;
    let conditions = PolicyConditions { source_in: vec!["127.0.0.2/32".into()], ..Default::default() };
    let policy = lab.block_policy(1, conditions, PolicyMode::Auto).await;
    lab.settings(&["127.0.0.1/32"], 10).await;
    let orders = lab.agent(true).await;
    lab.store.append_batch(lab.org, real_log_events("sshd-auth.log")).await.expect("append");
    let mut responder = Responder::new(Some(lab.dispatcher.clone()), Duration::ZERO);
    detect_and_respond(&mut Detector::default(), &mut responder, &lab, Utc::now()).await;
    let (incident, _) = lab.incident("127.0.0.2").await;
    let block = policy_action_id(incident, policy);
    eventually("the block succeeds", || async { lab.action(block).await.status == ActionStatus::Succeeded }).await;
    let expires_at = lab.action(block).await.expires_at.expect("a timed block expires");
    lab.project().await;

    // Before expiry: nothing.
    let before = sweep(&lab.store, &lab.dispatcher, expires_at - ChronoDuration::seconds(1)).await.unwrap();
    assert_eq!(before.expired, 0);
    assert_eq!(lab.action(block).await.status, ActionStatus::Succeeded);
    assert_eq!(lab.orders_published().await, 1);

    // "Restart": new scheduler instances (nothing in memory), two of them sweeping at once.
    let a = Dispatcher::new(lab.js.clone(), lab.config.clone()).await.unwrap();
    let b = Dispatcher::new(lab.js.clone(), lab.config.clone()).await.unwrap();
    let after = expires_at + ChronoDuration::seconds(1);
    let (ra, rb) = tokio::join!(sweep(&lab.store, &a, after), sweep(&lab.store, &b, after));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ra.errors, rb.errors), (0, 0));
    let unblock = expiry_unblock_id(block);
    assert_eq!(lab.action(block).await.status, ActionStatus::Expired);
    eventually("the unblock succeeds", || async { lab.action(unblock).await.status == ActionStatus::Succeeded }).await;
    // A later sweep (schedule caught up or not) changes nothing.
    sweep(&lab.store, &b, after + ChronoDuration::seconds(1)).await.unwrap();
    lab.project().await;
    sweep(&lab.store, &a, after + ChronoDuration::hours(2)).await.unwrap();

    let types = lab.log_types().await;
    assert_eq!(types.iter().filter(|t| *t == "ActionExpired").count(), 1);
    assert_eq!(lab.orders_published().await, 2, "one block and one unblock order");
    let kinds: Vec<(ActionKind, String)> = orders.lock().unwrap().iter().map(|o| (o.kind, o.target.clone())).collect();
    assert_eq!(kinds, vec![(ActionKind::BlockIp, "127.0.0.2".into()), (ActionKind::UnblockIp, "127.0.0.2".into())]);
    let lifted = lab.action(unblock).await;
    assert_eq!(lifted.request.as_ref().unwrap().follows, Some(block));
    // Lifting the block reopens the incident.
    assert_eq!(lab.incident("127.0.0.2").await.1.status, IncidentStatus::Open);
    lab.project().await;
    let active: i64 = {
        let mut tx = xdr_projections::begin_org_tx(&lab.db.pool, lab.org).await.unwrap();
        sqlx::query_scalar("SELECT count(*) FROM rm_active_blocks").fetch_one(&mut *tx).await.unwrap()
    };
    assert_eq!(active, 0);
    lab.finish().await;
}

#[tokio::test]
async fn an_order_nobody_answers_is_retried_and_fails_after_max_attempts() {
    let lab = Lab::new().await;
    let conditions = PolicyConditions { source_in: vec!["127.0.0.2/32".into()], ..Default::default() };
    let policy = lab.block_policy(1, conditions, PolicyMode::Auto).await;
    lab.settings(&["127.0.0.1/32"], 10).await;
    lab.store.append_batch(lab.org, real_log_events("sshd-auth.log")).await.expect("append");
    let t0 = Utc::now();
    let mut responder = Responder::new(Some(lab.dispatcher.clone()), Duration::ZERO);
    detect_and_respond(&mut Detector::default(), &mut responder, &lab, t0).await;
    let (incident, _) = lab.incident("127.0.0.2").await;
    let action = policy_action_id(incident, policy);
    assert_eq!(lab.action(action).await.attempts, 1, "dispatched inline");
    let max_attempts = lab.config.max_attempts;
    let step = ChronoDuration::from_std(lab.config.ack_timeout).unwrap() + ChronoDuration::seconds(1);
    // Just before the first deadline: nothing.
    lab.project().await;
    sweep(&lab.store, &lab.dispatcher, t0 + step - ChronoDuration::seconds(2)).await.unwrap();
    assert_eq!(lab.orders_published().await, 1);
    for k in 1..=max_attempts as i32 {
        lab.project().await;
        sweep(&lab.store, &lab.dispatcher, t0 + step * k).await.unwrap();
    }
    let failed = lab.action(action).await;
    assert_eq!(failed.status, ActionStatus::Failed);
    assert_eq!(failed.detail.as_deref(), Some(format!("no agent answered after {max_attempts} attempt(s)").as_str()));
    assert_eq!(lab.orders_published().await, max_attempts as u64);
    lab.project().await;
    sweep(&lab.store, &lab.dispatcher, t0 + ChronoDuration::hours(1)).await.unwrap();
    assert_eq!(lab.orders_published().await, max_attempts as u64, "nothing after the action failed");
    assert_eq!(lab.incident("127.0.0.2").await.1.status, IncidentStatus::Open);
    lab.finish().await;
}

#[tokio::test]
async fn a_policy_never_blocks_a_protected_address_and_says_why() {
    let lab = Lab::new().await;
    let policy = lab.block_policy(1, severity_at_least_high(), PolicyMode::Auto).await;
    // Defaults kept: loopback (all the lab's sources) is protected.
    set_auto_containment(&lab.store, lab.org, true, &Lab::metadata(), Utc::now()).await.unwrap();
    lab.store.append_batch(lab.org, real_log_events("sshd-auth.log")).await.expect("append");
    let mut responder = Responder::new(Some(lab.dispatcher.clone()), Duration::ZERO);
    detect_and_respond(&mut Detector::default(), &mut responder, &lab, Utc::now()).await;
    assert_eq!(responder.stats().refused, 4);
    for ip in high_sources(&lab).await {
        let (incident, state) = lab.incident(&ip).await;
        let action = lab.action(policy_action_id(incident, policy)).await;
        assert_eq!((action.status, action.attempts), (ActionStatus::Failed, 0), "{ip}");
        let detail = action.detail.unwrap();
        assert_eq!(detail, format!("refusing to block {ip}: it is in the org's protected range 127.0.0.0/8"));
        assert_eq!(state.status, IncidentStatus::Open);
    }
    lab.project().await;
    sweep(&lab.store, &lab.dispatcher, Utc::now() + ChronoDuration::hours(1)).await.unwrap();
    assert_eq!(lab.orders_published().await, 0);
    let (incident, _) = lab.incident("127.0.0.2").await;
    let timeline = lab.timeline(incident).await;
    let failed = timeline.iter().find(|(k, _)| k == "action_failed").expect("the refusal is on the timeline");
    assert!(failed.1["detail"].as_str().unwrap().contains("protected range"));
    assert!(timeline.iter().any(|(k, _)| k == "policy_matched"));
    lab.finish().await;
}

#[tokio::test]
async fn the_per_minute_cap_queues_further_automatic_blocks_for_approval_across_replicas() {
    let lab = Lab::new().await;
    // Every incident matches; at most 2 automatic blocks per minute.
    lab.block_policy(1, PolicyConditions::default(), PolicyMode::Auto).await;
    lab.settings(&["127.0.0.1/32"], 2).await;
    lab.store.append_batch(lab.org, real_log_events("sshd-auth.log")).await.expect("append");
    let t0 = Utc::now();
    // Replica A decides until it has sent 2 blocks; replica B (no memory of A's blocks, only
    // the read model) decides the rest.
    let mut a = Responder::new(Some(lab.dispatcher.clone()), Duration::ZERO);
    let mut b = Responder::new(Some(lab.dispatcher.clone()), Duration::ZERO);
    let mut detector = Detector::default();
    let events: Vec<_> =
        read_all(&lab.store, lab.org).await.into_iter().filter(|e| e.event_type == "SecurityEventObserved").collect();
    let mut outcomes = Vec::new();
    let mut switched = false;
    for e in &events {
        let commands = detector.process(e);
        xdr_inference::execute_commands(&lab.store, &commands).await.unwrap();
        let replica = if switched { &mut b } else { &mut a };
        outcomes.extend(replica.respond_at(&lab.store, &commands, t0).await.into_iter().map(|(_, o)| o));
        if !switched && a.stats().requested == 2 {
            lab.project().await;
            switched = true;
        }
    }
    let requested: Vec<(ActionStatus, Option<String>)> = outcomes
        .into_iter()
        .filter_map(|o| match o {
            Outcome::Requested { status, held_for_approval, .. } => Some((status, held_for_approval)),
            _ => None,
        })
        .collect();
    assert_eq!(requested.len(), 6, "one per incident: {requested:?}");
    assert!(requested[..2].iter().all(|(s, h)| *s == ActionStatus::Dispatched && h.is_none()), "{requested:?}");
    let held = "2 automatic blocks in the last minute (cap 2)";
    assert!(
        requested[2..].iter().all(|(s, h)| *s == ActionStatus::PendingApproval && h.as_deref() == Some(held)),
        "{requested:?}"
    );
    assert_eq!(b.stats().held_for_approval, 4, "replica B saw A's blocks through the read model");
    assert_eq!(lab.orders_published().await, 2);

    // A minute later the cap has room again (a new, higher-priority policy's action).
    let only_8 = PolicyConditions { source_in: vec!["127.0.0.8/32".into()], ..Default::default() };
    lab.block_policy(0, only_8, PolicyMode::Auto).await;
    let (incident, _) = lab.incident("127.0.0.8").await;
    lab.project().await;
    let mut c = Responder::new(Some(lab.dispatcher.clone()), Duration::ZERO);
    let later = c.evaluate(&lab.store, lab.org, incident, Uuid::nil(), t0 + ChronoDuration::seconds(61)).await.unwrap();
    assert!(
        matches!(later, Outcome::Requested { status: ActionStatus::Dispatched, held_for_approval: None, .. }),
        "{later:?}"
    );
    lab.finish().await;
}

#[tokio::test]
async fn running_the_detector_twice_over_the_same_events_requests_each_action_once() {
    let mut lab = Lab::new().await;
    lab.block_policy(1, severity_at_least_high(), PolicyMode::Auto).await;
    lab.settings(&["127.0.0.1/32"], 10).await;
    let orders = lab.agent(false).await;
    lab.store.append_batch(lab.org, real_log_events("sshd-auth.log")).await.expect("append");
    let t0 = Utc::now();
    let mut first = Responder::new(Some(lab.dispatcher.clone()), Duration::ZERO);
    detect_and_respond(&mut Detector::default(), &mut first, &lab, t0).await;
    let requests = |types: Vec<String>| types.iter().filter(|t| *t == "ActionRequested").count();
    assert_eq!(requests(lab.log_types().await), 4);
    let head = lab.store.head(lab.org).await.unwrap().unwrap().0;
    // A second detector replica (or a restart) over the same events, a little later.
    let mut second = Responder::new(Some(lab.dispatcher.clone()), Duration::ZERO);
    let outcomes =
        detect_and_respond(&mut Detector::default(), &mut second, &lab, t0 + ChronoDuration::seconds(5)).await;
    assert!(outcomes.iter().any(|o| matches!(o, Outcome::AlreadyRequested(_))), "{outcomes:?}");
    assert!(!outcomes.iter().any(|o| matches!(o, Outcome::Requested { .. })), "{outcomes:?}");
    assert_eq!(lab.store.head(lab.org).await.unwrap().unwrap().0, head, "nothing appended");
    assert_eq!(lab.orders_published().await, 4);
    eventually("the agent saw the four orders", || async { orders.lock().unwrap().len() == 4 }).await;
    lab.finish().await;
}

#[tokio::test]
async fn a_containment_whose_evaluation_failed_is_retried_until_the_database_answers() {
    let mut lab = Lab::new().await;
    lab.block_policy(1, severity_at_least_high(), PolicyMode::Auto).await;
    lab.settings(&["127.0.0.1/32"], 10).await;
    let orders = lab.agent(false).await;
    lab.store.append_batch(lab.org, real_log_events("sshd-auth.log")).await.expect("append");
    // The incidents commit; then the responder's database is away (a port nobody listens on:
    // a real refused connection), as during a PostgreSQL restart.
    let away = EventStore::new(
        sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(200))
            .connect_lazy("postgres://postgres@127.0.0.1:1/nowhere")
            .expect("lazy pool"),
    );
    let mut responder = Responder::new(Some(lab.dispatcher.clone()), Duration::ZERO);
    let outcomes = detect_and_respond_through(&mut Detector::default(), &mut responder, &lab, &away, Utc::now()).await;
    assert!(outcomes.is_empty(), "{outcomes:?}");
    // Every incident was opened once, however often it escalated.
    let decided = incidents(&lab.store, lab.org).await;
    assert!(decided.len() >= 4, "{decided:?}");
    assert!(responder.stats().failures >= decided.len() as u64, "{:?}", responder.stats());
    assert_eq!(responder.pending_retries(), decided.len(), "one retry per incident, however often it escalated");
    assert_eq!(lab.orders_published().await, 0);

    // Still away at the first retry: the delay doubles, nothing is lost.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let retried_at = Instant::now();
    assert!(responder.retry_due(&away).await.is_empty());
    assert_eq!(responder.pending_retries(), decided.len());
    let next = responder.next_retry().expect("a retry is due later");
    assert!(next > retried_at + Duration::from_millis(1_900), "the second delay is 2 s");

    // The database is back: each incident's block is requested and sent exactly once.
    let mut outcomes = Vec::new();
    let back = Instant::now();
    while let Some(next) = responder.next_retry() {
        assert!(back.elapsed() < Duration::from_secs(30), "retries never finished: {outcomes:?}");
        tokio::time::sleep_until(next.into()).await;
        outcomes.extend(responder.retry_due(&lab.store).await);
    }
    let requested = outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Requested { .. })).count();
    assert_eq!(requested, 4, "the four high incidents: {outcomes:?}");
    assert_eq!(outcomes.len(), decided.len());
    assert_eq!(responder.pending_retries(), 0);
    assert_eq!(responder.stats().retried, decided.len() as u64);
    assert!(responder.retry_due(&lab.store).await.is_empty());
    eventually("the agent saw the four orders", || async { orders.lock().unwrap().len() == 4 }).await;
    assert_eq!(lab.orders_published().await, 4);
    lab.finish().await;
}
