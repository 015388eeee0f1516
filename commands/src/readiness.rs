//! What a role's `/readyz` reports about its NATS connections.
//!
//! A role's connections are made where the role starts; its probe server is made elsewhere
//! (one per process). So every connection a process opens is registered here, and the probe
//! asks whether all of them are connected. `async_nats` reconnects by itself (with backoff)
//! after the server goes away; while it is away the role is not ready, and it is ready again
//! once the client has reconnected, without a restart.

use async_nats::connection::State;
use std::sync::Mutex;

static NATS_CLIENTS: Mutex<Vec<async_nats::Client>> = Mutex::new(Vec::new());

/// Count `client` in this process's readiness.
pub fn watch_nats(client: &async_nats::Client) {
    NATS_CLIENTS.lock().unwrap_or_else(|e| e.into_inner()).push(client.clone());
}

/// The NATS side of readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsReadiness {
    /// This process opened no NATS connection (the projector).
    NotUsed,
    Connected,
    /// At least one connection is down (reconnecting) or not yet up.
    Disconnected,
}

impl NatsReadiness {
    pub fn as_str(self) -> &'static str {
        match self {
            NatsReadiness::NotUsed => "not used",
            NatsReadiness::Connected => "connected",
            NatsReadiness::Disconnected => "disconnected",
        }
    }
}

/// Whether every registered connection is up.
pub fn nats_readiness() -> NatsReadiness {
    let clients = NATS_CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
    if clients.is_empty() {
        NatsReadiness::NotUsed
    } else if clients.iter().all(|c| c.connection_state() == State::Connected) {
        NatsReadiness::Connected
    } else {
        NatsReadiness::Disconnected
    }
}

/// Deliveries and duplicates this process has seen, per stage (`ingestor`, `detector`, …), for
/// the probe server's `/metrics`: how much a fault cost in redelivery, and how much of it
/// the idempotent consumers dropped.
static REDELIVERED: Mutex<std::collections::BTreeMap<&'static str, u64>> =
    Mutex::new(std::collections::BTreeMap::new());
static DUPLICATES: Mutex<std::collections::BTreeMap<&'static str, u64>> = Mutex::new(std::collections::BTreeMap::new());

/// `n` messages of `stage` arrived for at least the second time (JetStream's delivery count).
pub fn count_redelivered(stage: &'static str, n: u64) {
    *REDELIVERED.lock().unwrap_or_else(|e| e.into_inner()).entry(stage).or_default() += n;
}

/// `n` records or events of `stage` were already done and were dropped (idempotency hits).
pub fn count_duplicates(stage: &'static str, n: u64) {
    *DUPLICATES.lock().unwrap_or_else(|e| e.into_inner()).entry(stage).or_default() += n;
}

/// Dead letters stored, per dead-letter queue (the subject's last segment: `ingest`, `events`,
/// `results`, …; a fixed set, never an org).
static DEAD_LETTERED: Mutex<std::collections::BTreeMap<String, u64>> = Mutex::new(std::collections::BTreeMap::new());

/// `n` dead letters were stored on `subject` (`…xdr.dlq.<queue>`).
pub fn count_dead_lettered(subject: &str, n: u64) {
    let queue = subject.rsplit('.').next().unwrap_or(subject).to_owned();
    *DEAD_LETTERED.lock().unwrap_or_else(|e| e.into_inner()).entry(queue).or_default() += n;
}

/// Whether a JetStream delivery is a redelivery.
pub fn is_redelivery(message: &async_nats::jetstream::Message) -> bool {
    message.info().is_ok_and(|info| info.delivered > 1)
}

/// The counters in Prometheus text format.
pub fn render_counters() -> String {
    let mut out = String::new();
    for (name, help, counters) in [
        ("xdr_redelivered_messages_total", "JetStream messages delivered more than once", &REDELIVERED),
        ("xdr_duplicates_dropped_total", "Records or events dropped as already done (idempotency)", &DUPLICATES),
    ] {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
        for (stage, n) in counters.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            out.push_str(&format!("{name}{{stage=\"{stage}\"}} {n}\n"));
        }
    }
    let name = "xdr_dead_letters_total";
    out.push_str(&format!("# HELP {name} Dead letters stored, per dead-letter queue\n# TYPE {name} counter\n"));
    for (queue, n) in DEAD_LETTERED.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        out.push_str(&format!("{name}{{queue=\"{queue}\"}} {n}\n"));
    }
    out
}
