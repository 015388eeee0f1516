//! Prometheus metrics in text exposition format.

use std::sync::atomic::{AtomicU64, Ordering};
// Counted where the refusals happen (detector, agent gateway), process-wide.
use xdr_commands::trust::REFUSALS;
// Counted by the identity handlers (lockout) in whichever process serves logins.
use xdr_commands::auth::LOGIN_DEFENCE;

#[derive(Default)]
pub struct Metrics {
    pub http_requests: AtomicU64,
    pub logins_succeeded: AtomicU64,
    pub logins_refused: AtomicU64,
    pub logins_rate_limited: AtomicU64,
    pub registrations_rate_limited: AtomicU64,
    pub refreshes_rate_limited: AtomicU64,
    pub bodies_too_large: AtomicU64,
    /// Bearer tokens verified by GraphQL (one per request at most, plus subscription re-checks).
    pub graphql_authentications: AtomicU64,
    /// Org-scoped read transactions begun by GraphQL resolvers (one per query request at most).
    pub graphql_transactions: AtomicU64,
    /// Documents refused before execution for cost, top-level fields or aliases.
    pub graphql_refused_cost: AtomicU64,
    /// Subscriptions refused by the per-connection or per-user cap.
    pub subscriptions_refused: AtomicU64,
    /// Subscriptions ended because their session ended (logout, lock, expiry).
    pub subscriptions_ended_by_session: AtomicU64,
    /// Read-model queries of the shared subscription feeds (one per org per tick).
    pub subscription_polls: AtomicU64,
    /// Gauge: subscriptions open now.
    pub subscriptions_open: AtomicU64,
    /// Gauge: orgs with a feed polling now (one however many subscribers the org has).
    pub subscription_feeds: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec(gauge: &AtomicU64) {
        gauge.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, help, value) in [
            ("xdr_http_requests_total", "HTTP requests handled", &self.http_requests),
            ("xdr_logins_succeeded_total", "Successful logins", &self.logins_succeeded),
            ("xdr_logins_refused_total", "Refused logins (bad credentials or locked)", &self.logins_refused),
            ("xdr_logins_rate_limited_total", "Logins refused by the per-IP rate limit", &self.logins_rate_limited),
            (
                "xdr_registrations_rate_limited_total",
                "Registrations and invitation acceptances refused by the per-client rate limit",
                &self.registrations_rate_limited,
            ),
            (
                "xdr_refreshes_rate_limited_total",
                "Token refreshes refused by the per-client rate limit",
                &self.refreshes_rate_limited,
            ),
            (
                "xdr_http_bodies_too_large_total",
                "Requests refused with 413 (body over its route's limit)",
                &self.bodies_too_large,
            ),
            (
                "xdr_login_accounts_under_attack_total",
                "Accounts locked by repeated bad passwords from unknown clients (AccountUnderAttack in the audit log)",
                &LOGIN_DEFENCE.accounts_under_attack,
            ),
            (
                "xdr_logins_refused_locked_total",
                "Logins refused because the account was locked",
                &LOGIN_DEFENCE.refused_while_locked,
            ),
            (
                "xdr_logins_known_device_total",
                "Logins from a recognised device (not held back by another client's lockout)",
                &LOGIN_DEFENCE.known_device_sign_ins,
            ),
            (
                "xdr_graphql_authentications_total",
                "Bearer tokens verified by GraphQL (once per request, plus subscription re-checks)",
                &self.graphql_authentications,
            ),
            (
                "xdr_graphql_transactions_total",
                "Org-scoped read transactions begun by GraphQL resolvers",
                &self.graphql_transactions,
            ),
            (
                "xdr_graphql_refused_cost_total",
                "GraphQL documents refused before execution (cost, top-level fields, aliases)",
                &self.graphql_refused_cost,
            ),
            (
                "xdr_graphql_subscriptions_refused_total",
                "Subscriptions refused by the per-connection or per-user cap",
                &self.subscriptions_refused,
            ),
            (
                "xdr_graphql_subscriptions_ended_by_session_total",
                "Subscriptions ended because their session ended (logout, lock, expiry)",
                &self.subscriptions_ended_by_session,
            ),
            (
                "xdr_graphql_subscription_polls_total",
                "Read-model queries of the shared subscription feeds (one per org per tick)",
                &self.subscription_polls,
            ),
            (
                "xdr_nats_events_refused_total",
                "Event messages refused because the log does not hold them (forged or stale)",
                &REFUSALS.events_forged,
            ),
            (
                "xdr_nats_events_unknown_org_total",
                "Event messages refused because their org is unknown to this database",
                &REFUSALS.events_unknown_org,
            ),
            (
                "xdr_agent_orders_refused_total",
                "Orders refused because the agent's org's log holds no matching ActionDispatched",
                &REFUSALS.orders_forged,
            ),
            (
                "xdr_agent_results_refused_total",
                "Agent results refused because the order was not delivered to that agent",
                &REFUSALS.results_not_delivered,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        for (name, help, value) in [
            ("xdr_graphql_subscriptions_open", "Subscriptions open now", &self.subscriptions_open),
            (
                "xdr_graphql_subscription_feeds",
                "Orgs whose shared subscription feed is polling now",
                &self.subscription_feeds,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        let name = "xdr_projection_events_quarantined_total";
        out.push_str(&format!(
            "# HELP {name} Events this process's projector quarantined (could not apply, went on past)\n\
             # TYPE {name} counter\n{name} {}\n",
            xdr_projections::runner::EVENTS_QUARANTINED.load(Ordering::Relaxed)
        ));
        out
    }

    /// [`Self::render`] plus what the database knows: quarantined events per projection,
    /// across all orgs (from the checkpoints' counts, never tenant rows). Without an answer
    /// from the database the gauge is left out rather than shown as zero.
    pub async fn render_with(&self, pool: &sqlx::PgPool) -> String {
        let mut out = self.render();
        match xdr_projections::quarantine::counts(pool).await {
            Ok(counts) => {
                let name = "xdr_projection_quarantined_events";
                out.push_str(&format!(
                    "# HELP {name} Events currently quarantined, per projection (mini-xdr quarantine list)\n\
                     # TYPE {name} gauge\n"
                ));
                for (projection, n) in counts {
                    out.push_str(&format!("{name}{{projection=\"{projection}\"}} {n}\n"));
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read quarantine counts for /metrics"),
        }
        out
    }
}
