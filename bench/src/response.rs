//! `mini-xdr bench response`: time from an incident opened to its block confirmed by a
//! dry-run agent, through the real path — the detector's response step (policy evaluation,
//! cap, request, inline dispatch on JetStream), an in-process emulated dry-run agent that
//! answers every order on the results subject as the gateway would, the results consumer
//! committing `ActionSucceeded` and the incident turning `contained` — in a scratch database
//! under a unique NATS prefix. Baseline in the same run: a core NATS request/reply round trip
//! to an in-process responder (the floor for any order sent to an agent and answered).

use anyhow::Context;
use chrono::Utc;
use futures::StreamExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use uuid::Uuid;
use xdr_commands::handler::{execute, load};
use xdr_commands::response::containment::{change_settings, create_policy, set_auto_containment};
use xdr_commands::response::results::run_results_consumer;
use xdr_commands::response::{Dispatcher, ResponseConfig};
use xdr_commands::EventStore;
use xdr_domain::ids::{IncidentId, OrgId, PolicyId};
use xdr_domain::incident::{Incident, IncidentCategory, IncidentCommand, OpenIncident, Severity};
use xdr_domain::response::action::{policy_action_id, Action, ActionKind, ActionStatus};
use xdr_domain::response::order::{ActionOrder, ActionResult};
use xdr_domain::response::policy::{ContainmentPolicy, PolicyAction, PolicyConditions, PolicyMode};
use xdr_domain::EventMetadata;
use xdr_inference::{IssuedCommand, Responder};

use crate::Env;
use crate::{percentiles, BenchResponseArgs};
use xdr_commands::testing::TestDb;

pub async fn response(env: &Env, args: BenchResponseArgs) -> anyhow::Result<ExitCode> {
    let scratch = crate::scratch_db(env).await?;
    let client = (env.nats_api)().await?;
    let config = ResponseConfig::with_prefix(&format!("bench{}.", Uuid::new_v4().simple()));
    let js = async_nats::jetstream::new(client.clone());
    let result = run(&scratch, &client, &js, &config, &args).await;
    let _ = js.delete_stream(&config.actions_stream).await;
    let _ = js.delete_stream(&config.results_stream).await;
    drop(scratch);
    result?;
    Ok(ExitCode::SUCCESS)
}

/// The emulated dry-run agent: answers every order of `org` with success, as the gateway
/// would publish it for a verified agent key.
async fn spawn_agent(
    js: &async_nats::jetstream::Context,
    config: &ResponseConfig,
    org: OrgId,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
    let stream = js.get_stream(&config.actions_stream).await.context("actions stream")?;
    let consumer: PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("bench-agent".into()),
            filter_subject: config.actions_subject(org.0),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .context("agent consumer")?;
    let (js, subject) = (js.clone(), config.results_subject(org.0));
    Ok(tokio::spawn(async move {
        let Ok(mut messages) = consumer.messages().await else { return };
        while let Some(Ok(message)) = messages.next().await {
            let Ok(order) = serde_json::from_slice::<ActionOrder>(&message.payload) else { continue };
            let result = ActionResult {
                action_id: order.action_id,
                org_id: order.org_id,
                attempt: order.attempt,
                agent: "agentkey:bench-dry-run".into(),
                ok: true,
                detail: format!("dry-run: would {} {}", order.kind.as_str(), order.target),
                at: Utc::now(),
            };
            let body = serde_json::to_vec(&result).expect("serializable");
            if let Ok(ack) = js.publish(subject.clone(), body.into()).await {
                let _ = ack.await;
            }
            let _ = message.ack().await;
        }
    }))
}

async fn run(
    scratch: &TestDb,
    client: &async_nats::Client,
    js: &async_nats::jetstream::Context,
    config: &ResponseConfig,
    args: &BenchResponseArgs,
) -> anyhow::Result<()> {
    let pool = scratch.worker_pool(8).await?;
    let store = EventStore::new(pool);
    let org = OrgId(Uuid::new_v4());
    let m = EventMetadata::system("bench");
    let policy = ContainmentPolicy {
        policy_id: PolicyId(Uuid::new_v4()),
        name: "block high".into(),
        priority: 1,
        enabled: true,
        conditions: PolicyConditions { min_severity: Some(Severity::High), ..Default::default() },
        action: PolicyAction { kind: ActionKind::BlockIp, duration_secs: Some(600) },
        mode: PolicyMode::Auto,
    };
    let policy_id = policy.policy_id;
    create_policy(&store, org, policy, &m, Utc::now()).await?;
    set_auto_containment(&store, org, true, &m, Utc::now()).await?;
    // The cap's ceiling: the benchmark measures the automatic path, not the approval queue.
    change_settings(&store, org, vec!["127.0.0.0/8".into()], false, 10_000, &m, Utc::now()).await?;

    let dispatcher = Dispatcher::new(js.clone(), config.clone()).await?;
    let agent = spawn_agent(js, config, org).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let results = tokio::spawn(run_results_consumer(store.clone(), js.clone(), config.clone(), async {
        let _ = stop_rx.await;
    }));
    let mut responder = Responder::new(Some(dispatcher), Duration::from_secs(2));

    eprintln!("{} incidents, each opened, evaluated, blocked by the dry-run agent, confirmed…", args.incidents);
    let mut samples = Vec::with_capacity(args.incidents);
    let mut sent = Vec::with_capacity(args.incidents);
    for i in 0..args.incidents {
        // Distinct public sources (198.18.0.0/15, the benchmarking range).
        let ip = format!("198.18.{}.{}", (i / 250) % 256, i % 250 + 1);
        let now = Utc::now();
        let incident = IncidentId(Uuid::new_v4());
        let open = IncidentCommand::Open(OpenIncident {
            incident_id: incident,
            org_id: org,
            src_ip: ip.clone(),
            category: IncidentCategory::BruteForce,
            severity: Severity::High,
            risk_score: 0.8,
            confidence: 0.9,
            rule_ids: vec!["ssh_brute_force".into()],
            techniques: vec!["T1110.001".into()],
            reason: "bench".into(),
            top_features: vec![],
            evidence: vec![],
            model: None,
            first_seen: now,
            last_seen: now,
            now,
        });
        let command_id = Uuid::new_v4();
        let detector = EventMetadata::system("detector");
        execute::<Incident>(&store, org, &incident.stream_id(), &open, &detector, Some(command_id))
            .await
            .context("open incident")?;
        // The incident is opened (committed): the clock starts.
        let started = Instant::now();
        let issued = IssuedCommand {
            org_id: org,
            incident_id: incident,
            command_id,
            causation_id: command_id,
            command: open,
            baseline_input: None,
        };
        responder.respond(&store, std::slice::from_ref(&issued)).await;
        // The detector's share: policy evaluated, action requested, order stored in JetStream.
        sent.push(started.elapsed());
        let action = policy_action_id(incident, policy_id);
        let deadline = started + Duration::from_secs(30);
        loop {
            let (state, _) = load::<Action>(&store, org, &action.stream_id()).await?;
            match state.status {
                ActionStatus::Succeeded => break,
                ActionStatus::Dispatched | ActionStatus::Approved => {}
                other => anyhow::bail!("incident {i}: action ended {}", other.as_str()),
            }
            anyhow::ensure!(Instant::now() < deadline, "incident {i}: no confirmation within 30 s");
            tokio::task::yield_now().await;
        }
        samples.push(started.elapsed());
    }
    let stats = responder.stats();
    anyhow::ensure!(stats.requested as usize == args.incidents && stats.failures == 0, "responder: {stats:?}");
    let (p50, p99) = percentiles(samples);
    let (s50, s99) = percentiles(sent);

    // Baseline: core NATS request/reply to an in-process responder.
    let echo_subject = format!("{}bench.echo", config.subject_prefix);
    let mut echo = client.subscribe(echo_subject.clone()).await?;
    let echo_client = client.clone();
    let echo_task = tokio::spawn(async move {
        while let Some(msg) = echo.next().await {
            if let Some(reply) = msg.reply {
                let _ = echo_client.publish(reply, msg.payload).await;
            }
        }
    });
    let mut base = Vec::with_capacity(args.incidents);
    for _ in 0..args.incidents {
        let started = Instant::now();
        client.request(echo_subject.clone(), "order".into()).await.context("NATS round trip")?;
        base.push(started.elapsed());
    }
    echo_task.abort();
    let (b50, b99) = percentiles(base);

    let _ = stop_tx.send(());
    let _ = results.await;
    agent.abort();
    println!("incident opened → block confirmed by the dry-run agent ({} incidents, sequential):", args.incidents);
    println!("  p50 {p50:>8.2} ms   p99 {p99:>8.2} ms");
    println!("  of which incident opened → order published (the detector's response step):");
    println!("  p50 {s50:>8.2} ms   p99 {s99:>8.2} ms");
    println!("baseline: NATS request/reply round trip:");
    println!("  p50 {b50:>8.2} ms   p99 {b99:>8.2} ms");
    println!("ratio p50 {:.1}x, p99 {:.1}x", p50 / b50.max(1e-9), p99 / b99.max(1e-9));
    Ok(())
}
