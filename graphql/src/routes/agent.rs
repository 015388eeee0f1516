//! The agent gateway, `/api/agent/v1/*`: how enforcement agents receive their org's
//! containment orders and report what they did, over HTTPS only. Agents never get NATS
//! credentials; this gateway holds them and speaks for the agent on JetStream.
//!
//! Every request presents `Authorization: Bearer <agent key>`, resolved on every call (no
//! cache: a revoked key stops at once). The key alone decides the org: orders come from a
//! durable consumer filtered to that org's subject, results are published on that org's
//! results subject with the org and agent filled in here, never taken from the agent.
//!
//! - `GET  /blocks`      the org's blocks in force (`rm_active_blocks`), to re-sync from.
//! - `POST /orders/pull` up to `max` orders (long poll up to `wait_ms`), each with an opaque
//!   `ack_token` (the JetStream reply subject of the delivery). An order is delivered only
//!   if the agent's org's log holds its `ActionDispatched` (same action, attempt, kind,
//!   target and duration), and as the log says; anything else on the subject is refused
//!   (logged, counted in `/metrics`, terminated).
//! - `POST /results`     one answer per order; the gateway checks the token is a delivery of
//!   this agent's consumer, names the order answered, and that the log records that order's
//!   attempt as delivered to this agent (`ActionDelivered`, appended when the pull handed it
//!   out), forwards the result to the results consumer (which commits it), then acks the order.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, stream::Stream as JsStream};
use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::time::Duration;
use xdr_commands::response::actions::{delivered_to, logged_order, record_delivery};
use xdr_commands::response::agent_keys::{resolve_agent_key, AgentKeyStatus};
use xdr_commands::response::Dispatcher;
use xdr_commands::trust::{Refusals, REFUSALS};
use xdr_commands::EventStore;
use xdr_domain::ids::{ActionId, AgentKeyId, OrgId};
use xdr_domain::response::order::{ActionOrder, ActionResult, ActiveBlock};

use crate::extract::bearer_token;
use crate::startup::AppState;

/// Most orders one pull returns.
pub const MAX_PULL: usize = 100;
/// Longest long poll.
pub const MAX_WAIT_MS: u64 = 30_000;
/// Most results one request may carry (one pull's worth).
pub const MAX_RESULTS: usize = MAX_PULL;
/// How long an agent has to answer a delivered order before JetStream delivers it again. The
/// server's own deadline (retry, then fail) runs separately, on the action.
const AGENT_ACK_WAIT: Duration = Duration::from_secs(60);

/// One delivered order and the token that acknowledges it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PulledOrder {
    pub order: ActionOrder,
    /// Opaque to the agent: handed back with the result.
    pub ack_token: String,
}

/// What an agent reports for one order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentResultItem {
    pub ack_token: String,
    pub action_id: ActionId,
    pub attempt: u32,
    pub ok: bool,
    #[serde(default)]
    pub detail: String,
    /// The order's deadline had passed when the agent got it, so the agent did nothing. Such an
    /// answer is only acknowledged, not recorded: the server has already moved on (sent the
    /// next attempt, or will give up), and recording "failed" for the stale attempt would fail
    /// an action whose next, fresh attempt the agent is about to carry out.
    #[serde(default)]
    pub stale: bool,
}

/// The gateway's answer for one result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultOutcome {
    pub action_id: ActionId,
    pub attempt: u32,
    /// `recorded` (forwarded to the log) or `skipped` (a stale order, only acknowledged).
    pub status: String,
    /// The order was acknowledged; if not, it is delivered again and answering it twice is
    /// harmless (results are idempotent).
    pub acked: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct PullParams {
    pub max: Option<usize>,
    pub wait_ms: Option<u64>,
}

/// An error as `{"detail": "…"}`, like every other route.
#[derive(Debug)]
pub struct AgentError {
    status: StatusCode,
    detail: String,
}

impl AgentError {
    fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        AgentError { status, detail: detail.into() }
    }

    fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error.cause_chain = %cause, "agent gateway request failed");
        AgentError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }

    /// NATS trouble: the agent should retry later.
    fn nats(what: &str, cause: impl std::fmt::Display) -> Self {
        tracing::error!(error.cause_chain = %cause, "agent gateway: {what}");
        AgentError::new(StatusCode::SERVICE_UNAVAILABLE, format!("{what}; retry later"))
    }
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl ResponseError for AgentError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(serde_json::json!({ "detail": self.detail }))
    }
}

/// The verified agent behind a request.
#[derive(Debug, Clone, Copy)]
struct Agent {
    org: OrgId,
    key_id: AgentKeyId,
}

impl Agent {
    fn consumer_name(&self) -> String {
        format!("agent-{}", self.key_id)
    }

    fn actor(&self) -> String {
        format!("agentkey:{}", self.key_id)
    }
}

/// The dispatcher (NATS side) and the agent the key names.
async fn authenticate<'a>(req: &HttpRequest, state: &'a AppState) -> Result<(Agent, &'a Dispatcher), AgentError> {
    let dispatcher = state.config.dispatcher.as_ref().ok_or_else(|| {
        AgentError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The agent gateway is not enabled on this server (it runs without a NATS order dispatcher)",
        )
    })?;
    let key = bearer_token(req).ok_or_else(|| AgentError::new(StatusCode::UNAUTHORIZED, "missing agent key"))?;
    match resolve_agent_key(&state.pool, key).await.map_err(AgentError::internal)? {
        AgentKeyStatus::Valid { org_id, key_id } => {
            tracing::Span::current().record("org_id", tracing::field::display(org_id));
            Ok((Agent { org: org_id, key_id }, dispatcher))
        }
        AgentKeyStatus::Revoked => Err(AgentError::new(StatusCode::UNAUTHORIZED, "revoked agent key")),
        AgentKeyStatus::Unknown => Err(AgentError::new(StatusCode::UNAUTHORIZED, "unknown agent key")),
    }
}

/// `GET /api/agent/v1/blocks`: the org's blocks in force, read under the org's RLS scope.
pub async fn blocks(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, AgentError> {
    let (agent, _) = authenticate(&req, &state).await?;
    let blocks = active_blocks(&state.pool, agent.org).await.map_err(AgentError::internal)?;
    Ok(HttpResponse::Ok().json(blocks))
}

/// The org's rows of `rm_active_blocks`, oldest first.
pub async fn active_blocks(pool: &sqlx::PgPool, org: OrgId) -> Result<Vec<ActiveBlock>, sqlx::Error> {
    let mut tx = xdr_projections::begin_org_tx(pool, org).await?;
    let rows = sqlx::query(
        "SELECT action_id, ip, expires_at FROM rm_active_blocks WHERE org_id = $1 ORDER BY since, action_id",
    )
    .bind(org.0)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.iter()
        .map(|r| {
            Ok(ActiveBlock {
                action_id: ActionId(r.try_get("action_id")?),
                ip: r.try_get("ip")?,
                expires_at: r.try_get::<Option<DateTime<Utc>>, _>("expires_at")?,
            })
        })
        .collect()
}

/// `POST /api/agent/v1/orders/pull`: `max` and `wait_ms` from the JSON body or the query.
pub async fn pull_orders(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<PullParams>,
    body: web::Bytes,
) -> Result<HttpResponse, AgentError> {
    let (agent, dispatcher) = authenticate(&req, &state).await?;
    let from_body: PullParams = if body.iter().all(u8::is_ascii_whitespace) {
        PullParams::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AgentError::new(StatusCode::BAD_REQUEST, format!("Malformed request body: {e}")))?
    };
    let max = from_body.max.or(query.max).unwrap_or(10);
    let wait_ms = from_body.wait_ms.or(query.wait_ms).unwrap_or(0);
    if !(1..=MAX_PULL).contains(&max) {
        return Err(AgentError::new(StatusCode::BAD_REQUEST, format!("max must be between 1 and {MAX_PULL}")));
    }
    if wait_ms > MAX_WAIT_MS {
        return Err(AgentError::new(StatusCode::BAD_REQUEST, format!("wait_ms must be at most {MAX_WAIT_MS}")));
    }
    let consumer = agent_consumer(dispatcher, agent).await?;
    let store = EventStore::new(state.pool.clone());
    let orders = pull(&consumer, &store, agent, max, Duration::from_millis(wait_ms)).await?;
    Ok(HttpResponse::Ok().json(orders))
}

/// The agent's durable consumer, created on first use. A new agent starts at orders that can
/// still be fresh (issued within one ack timeout): older ones have passed their deadline, and
/// the blocks they caused reach the agent through its re-sync from `rm_active_blocks`. An
/// existing agent that was offline resumes where it stopped, so it sees what was issued
/// meanwhile (and skips what went stale). A consumer idle for the retention period is removed
/// by the server (a revoked or retired agent's), and starts afresh if its agent returns.
async fn agent_consumer(dispatcher: &Dispatcher, agent: Agent) -> Result<PullConsumer, AgentError> {
    let config = dispatcher.config();
    let stream = actions_stream(dispatcher).await?;
    let name = agent.consumer_name();
    let fresh_since = Utc::now() - chrono::Duration::from_std(config.ack_timeout).unwrap_or(chrono::Duration::zero());
    let start_time = time::OffsetDateTime::from_unix_timestamp(fresh_since.timestamp())
        .map_err(|e| AgentError::internal(format!("start time: {e}")))?;
    stream
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: config.actions_subject(agent.org.0),
                deliver_policy: DeliverPolicy::ByStartTime { start_time },
                ack_policy: AckPolicy::Explicit,
                ack_wait: AGENT_ACK_WAIT,
                inactive_threshold: config.retention,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| AgentError::nats("cannot open the agent's order consumer", e))
}

async fn actions_stream(dispatcher: &Dispatcher) -> Result<JsStream, AgentError> {
    dispatcher
        .jetstream()
        .get_stream(&dispatcher.config().actions_stream)
        .await
        .map_err(|e| AgentError::nats("the order stream is unavailable", e))
}

/// What is waiting now; if nothing is, wait up to `wait` for the first order, then take what
/// else arrived with it. Every delivered message is returned, so none waits out an ack timeout.
async fn pull(
    consumer: &PullConsumer,
    store: &EventStore,
    agent: Agent,
    max: usize,
    wait: Duration,
) -> Result<Vec<PulledOrder>, AgentError> {
    let mut out = Vec::new();
    let fetch_err = |e| AgentError::nats("cannot fetch orders", e);
    let mut batch = consumer.fetch().max_messages(max).messages().await.map_err(fetch_err)?;
    collect(&mut batch, store, agent, &mut out).await;
    if out.is_empty() && !wait.is_zero() {
        // In slices of at most PULL_EXPIRES, each a fresh pull request: a request the server
        // forgot (a restarted NATS does) then costs one slice, not the agent's whole wait.
        let deadline = tokio::time::Instant::now() + wait;
        while out.is_empty() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left < Duration::from_millis(10) {
                break;
            }
            let mut batch = consumer
                .batch()
                .max_messages(1)
                .expires(left.min(xdr_commands::cluster::PULL_EXPIRES))
                .messages()
                .await
                .map_err(|e| AgentError::nats("cannot wait for orders", e))?;
            collect(&mut batch, store, agent, &mut out).await;
        }
        if !out.is_empty() && max > 1 {
            let mut batch = consumer.fetch().max_messages(max - 1).messages().await.map_err(fetch_err)?;
            collect(&mut batch, store, agent, &mut out).await;
        }
    }
    Ok(out)
}

async fn collect<S, E>(batch: &mut S, store: &EventStore, agent: Agent, out: &mut Vec<PulledOrder>)
where
    S: futures::Stream<Item = Result<jetstream::Message, E>> + Unpin,
    E: std::fmt::Display,
{
    while let Some(message) = batch.next().await {
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                // A timed-out or interrupted pull: what arrived so far is returned.
                tracing::debug!(error = %e, "agent pull ended early");
                break;
            }
        };
        let Some(reply) = message.reply.as_ref().map(|r| r.to_string()) else { continue };
        let order = match serde_json::from_slice::<ActionOrder>(&message.payload) {
            Ok(order) => order,
            Err(e) => {
                tracing::error!(subject = %message.subject, error = %e, "unreadable order; dropped");
                terminate(&message).await;
                continue;
            }
        };
        // The subject filter scopes the consumer to the org, but anyone who can publish there
        // could have: deliver only what the agent's org's log says was dispatched.
        match logged_order(store, agent.org, &order).await {
            Ok(Some(logged)) => {
                // Recorded before the agent sees it: only an agent an order was delivered to
                // may answer (and acknowledge) it.
                match record_delivery(store, agent.org, logged.action_id, logged.attempt, &agent.actor(), Utc::now())
                    .await
                {
                    Ok(_) => out.push(PulledOrder { order: logged, ack_token: reply }),
                    Err(e) => {
                        tracing::error!(error = %e, action_id = %order.action_id, "cannot record a delivery; redelivering");
                        let _ = message.ack_with(jetstream::AckKind::Nak(Some(Duration::from_secs(1)))).await;
                    }
                }
            }
            Ok(None) => {
                Refusals::count(&REFUSALS.orders_forged);
                tracing::error!(subject = %message.subject, org_id = %agent.org, order_org = %order.org_id,
                    action_id = %order.action_id, attempt = order.attempt,
                    "order without a matching ActionDispatched in the agent's org; refused");
                terminate(&message).await;
            }
            Err(e) => {
                tracing::error!(error = %e, action_id = %order.action_id, "cannot check an order against the log; redelivering");
                let _ = message.ack_with(jetstream::AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    }
}

async fn terminate(message: &jetstream::Message) {
    if let Err(e) = message.ack_with(jetstream::AckKind::Term).await {
        tracing::warn!(error = %e, "could not terminate an unreadable order");
    }
}

/// The stream sequence of a delivery, if `token` is an ack subject of `consumer` on `stream`:
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`.
pub fn delivery_of(token: &str, stream: &str, consumer: &str) -> Option<u64> {
    let rest = token.strip_prefix("$JS.ACK.")?.strip_prefix(stream)?.strip_prefix('.')?;
    let rest = rest.strip_prefix(consumer)?.strip_prefix('.')?;
    let fields: Vec<&str> = rest.split('.').collect();
    let numeric = |f: &&str| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit());
    if fields.len() != 5 || !fields.iter().all(numeric) {
        return None;
    }
    fields[1].parse().ok()
}

/// `POST /api/agent/v1/results`.
pub async fn results(
    req: HttpRequest,
    state: web::Data<AppState>,
    items: web::Json<Vec<AgentResultItem>>,
) -> Result<HttpResponse, AgentError> {
    let (agent, dispatcher) = authenticate(&req, &state).await?;
    let items = items.into_inner();
    if items.len() > MAX_RESULTS {
        return Err(AgentError::new(StatusCode::BAD_REQUEST, format!("at most {MAX_RESULTS} results per request")));
    }
    let config = dispatcher.config();
    let stream = actions_stream(dispatcher).await?;
    // Check every token before forwarding anything, so a refused request changed nothing.
    let consumer = agent.consumer_name();
    for item in &items {
        let Some(seq) = delivery_of(&item.ack_token, &config.actions_stream, &consumer) else {
            return Err(AgentError::new(StatusCode::FORBIDDEN, "ack token does not belong to this agent"));
        };
        let stored = stream
            .get_raw_message(seq)
            .await
            .map_err(|_| AgentError::new(StatusCode::FORBIDDEN, "ack token names no order of this agent"))?;
        let order: ActionOrder =
            serde_json::from_slice(&stored.payload).map_err(|e| AgentError::internal(format!("stored order: {e}")))?;
        if order.org_id != agent.org || order.action_id != item.action_id || order.attempt != item.attempt {
            return Err(AgentError::new(StatusCode::FORBIDDEN, "ack token belongs to another order"));
        }
        // A token can be written by hand for any message of the stream; the log says which
        // orders this agent really received.
        let store = EventStore::new(state.pool.clone());
        let delivered = delivered_to(&store, agent.org, item.action_id, item.attempt, &agent.actor())
            .await
            .map_err(AgentError::internal)?;
        if !delivered {
            Refusals::count(&REFUSALS.results_not_delivered);
            tracing::warn!(org_id = %agent.org, agent = %agent.actor(), action_id = %item.action_id,
                attempt = item.attempt, "result for an order never delivered to this agent; refused");
            return Err(AgentError::new(StatusCode::FORBIDDEN, "order was not delivered to this agent"));
        }
    }
    let js = dispatcher.jetstream();
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        let status = if item.stale {
            tracing::info!(action_id = %item.action_id, attempt = item.attempt, "agent skipped a stale order");
            "skipped"
        } else {
            let result = ActionResult {
                action_id: item.action_id,
                org_id: agent.org,
                attempt: item.attempt,
                agent: agent.actor(),
                ok: item.ok,
                detail: item.detail.chars().take(xdr_domain::response::action::MAX_TEXT_CHARS).collect(),
                at: Utc::now(),
            };
            publish_result(js, &config.results_subject(agent.org.0), &result).await?;
            "recorded"
        };
        let acked = ack(js, &item.ack_token).await;
        outcomes.push(ResultOutcome { action_id: item.action_id, attempt: item.attempt, status: status.into(), acked });
    }
    Ok(HttpResponse::Ok().json(outcomes))
}

/// Publish and wait for JetStream to store it: only then is the order acknowledged. The
/// message id drops a re-sent answer (the agent retrying after a lost response).
async fn publish_result(js: &jetstream::Context, subject: &str, result: &ActionResult) -> Result<(), AgentError> {
    let mut headers = HeaderMap::new();
    let id = format!("{}/{}/{}", result.action_id, result.attempt, result.agent);
    headers.insert("Nats-Msg-Id", id.as_str());
    let body = serde_json::to_vec(result).map_err(AgentError::internal)?;
    js.publish_with_headers(subject.to_owned(), headers, body.into())
        .await
        .map_err(|e| AgentError::nats("cannot forward the result", e))?
        .await
        .map_err(|e| AgentError::nats("the result was not stored", e))?;
    Ok(())
}

/// Acknowledge a delivery by its (verified) reply subject, waiting for the server's
/// confirmation. Failure is logged, not returned: the order comes again and the repeated
/// answer is deduplicated.
async fn ack(js: &jetstream::Context, token: &str) -> bool {
    let message = jetstream::Message {
        message: async_nats::Message {
            subject: "agent-gateway".into(),
            reply: Some(token.into()),
            payload: Default::default(),
            headers: None,
            status: None,
            description: None,
            length: 0,
        },
        context: js.clone(),
    };
    match message.double_ack().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "could not ack an agent's order; it will be delivered again");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::delivery_of;

    #[test]
    fn an_ack_token_is_accepted_only_for_the_agents_own_consumer() {
        let c = "agent-0191";
        assert_eq!(
            delivery_of("$JS.ACK.XDR_ACTIONS.agent-0191.1.42.7.1700000000000000000.0", "XDR_ACTIONS", c),
            Some(42)
        );
        for bad in [
            "$JS.ACK.XDR_ACTIONS.agent-0192.1.42.7.1700000000000000000.0",
            "$JS.ACK.XDR_ACTIONS.agent-01911.1.42.7.1.0",
            "$JS.ACK.OTHER.agent-0191.1.42.7.1.0",
            "$JS.ACK.XDR_ACTIONS.agent-0191.1.42.7.1",
            "$JS.ACK.XDR_ACTIONS.agent-0191.1.*.7.1.0",
            "$JS.ACK.XDR_ACTIONS.agent-0191.1.>",
            "$JS.ACK.XDR_ACTIONS.agent-0191.1.42.7.1.0 x",
            "xdr.actions.x",
        ] {
            assert_eq!(delivery_of(bad, "XDR_ACTIONS", c), None, "{bad}");
        }
    }
}
