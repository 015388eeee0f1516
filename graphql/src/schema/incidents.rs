//! Incidents: the list analysts work from, one incident with its timeline and evidence,
//! statistics, and status changes (analyst and up).

use super::scope::org_tx;
use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, InputObject, Json, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Duration, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;
use xdr_commands::auth::AuthError;
use xdr_commands::handler::{self, CommandError};
use xdr_domain::identity::Permission;
use xdr_domain::ids::IncidentId;
use xdr_domain::incident::{Incident as IncidentAggregate, IncidentCommand, IncidentError, UpdateIncidentStatus};

use super::context::{
    actor_metadata, after_write, bad_input, caller, db_error, decode_time_id_cursor, encode_time_id_cursor, page_of,
    page_size, state,
};
use super::cost;
use super::errors::gql_error;
use super::read::SecurityEvent;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum IncidentStatus {
    Open,
    Contained,
    Dismissed,
    Resolved,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum IncidentCategory {
    Normal,
    Ddos,
    Recon,
    BruteForce,
    WebAttack,
    MalwareBotnet,
    Apt,
    Compromise,
}

/// The stored (snake_case) name of a GraphQL enum value.
pub(super) fn stored<T: async_graphql::EnumType>(v: T) -> String {
    let name = T::items().iter().find(|i| i.value == v).map(|i| i.name).unwrap_or_default();
    name.to_lowercase()
}

pub(super) fn parse<T: async_graphql::EnumType + Copy>(s: &str) -> Option<T> {
    T::items().iter().find(|i| i.name.eq_ignore_ascii_case(s)).map(|i| i.value)
}

#[derive(SimpleObject, Clone, Debug)]
pub struct TimelineEntry {
    pub org_seq: i64,
    pub at: DateTime<Utc>,
    /// `detected`, `evidence`, `escalated`, `status_changed`, `policy_matched`, and the
    /// action steps `action_requested`, `action_approved`, `action_rejected`,
    /// `action_dispatched`, `action_succeeded`, `action_failed`, `action_expired`.
    pub kind: String,
    pub actor: Option<String>,
    pub detail: Json<serde_json::Value>,
}

#[derive(Clone, Debug)]
pub struct Incident {
    id: Uuid,
    src_ip: String,
    status: String,
    severity: String,
    category: String,
    risk_score: f64,
    confidence: f64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    event_count: i32,
    evidence: Vec<i64>,
    reason: String,
    rule_ids: Vec<String>,
    techniques: Vec<String>,
    top_features: serde_json::Value,
    model: Option<serde_json::Value>,
}

impl Incident {
    pub(super) fn from_row(r: &PgRow) -> Incident {
        Incident {
            id: r.get("incident_id"),
            src_ip: r.get("src_ip"),
            status: r.get("status"),
            severity: r.get("severity"),
            category: r.get("category"),
            risk_score: r.get("risk_score"),
            confidence: r.get("confidence"),
            first_seen: r.get("first_seen"),
            last_seen: r.get("last_seen"),
            event_count: r.get("event_count"),
            evidence: r.get("evidence"),
            reason: r.get("reason"),
            rule_ids: r.get("rule_ids"),
            techniques: r.get("techniques"),
            top_features: r.get("top_features"),
            model: r.get("model"),
        }
    }
}

pub(super) const INCIDENT_COLUMNS: &str =
    "incident_id, src_ip, status, severity, category, risk_score, confidence, first_seen, \
     last_seen, event_count, evidence, reason, rule_ids, techniques, top_features, model";

#[Object]
impl Incident {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }
    async fn src_ip(&self) -> &str {
        &self.src_ip
    }
    async fn status(&self) -> Option<IncidentStatus> {
        parse(&self.status)
    }
    async fn severity(&self) -> Option<Severity> {
        parse(&self.severity)
    }
    async fn category(&self) -> Option<IncidentCategory> {
        parse(&self.category)
    }
    async fn risk_score(&self) -> f64 {
        self.risk_score
    }
    async fn confidence(&self) -> f64 {
        self.confidence
    }
    async fn first_seen(&self) -> DateTime<Utc> {
        self.first_seen
    }
    async fn last_seen(&self) -> DateTime<Utc> {
        self.last_seen
    }
    async fn event_count(&self) -> i32 {
        self.event_count
    }
    /// Why: a human-readable summary of the rules and features that fired.
    async fn reason(&self) -> &str {
        &self.reason
    }
    /// The detectors (rules and models) behind the incident.
    async fn detectors(&self) -> &[String] {
        &self.rule_ids
    }
    /// MITRE ATT&CK technique ids.
    async fn attack_techniques(&self) -> &[String] {
        &self.techniques
    }
    async fn top_features(&self) -> Json<serde_json::Value> {
        Json(self.top_features.clone())
    }
    /// Classifier probabilities and baseline score, when a model contributed.
    async fn model(&self) -> Option<Json<serde_json::Value>> {
        self.model.clone().map(Json)
    }
    /// `org_seq`s of the events behind the incident.
    async fn evidence_seqs(&self) -> &[i64] {
        &self.evidence
    }
    /// What happened to this incident, in order, with who did it.
    #[graphql(complexity = "cost::nested_list(child_complexity)")]
    async fn timeline(&self, ctx: &Context<'_>) -> Result<Vec<TimelineEntry>> {
        let p = caller(ctx).await?;
        let mut tx = org_tx(ctx, p.org_id).await?;
        let rows = sqlx::query(
            "SELECT org_seq, at, kind, actor, detail FROM rm_incident_timeline \
             WHERE org_id = $1 AND incident_id = $2 ORDER BY org_seq",
        )
        .bind(p.org_id.0)
        .bind(self.id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|r| TimelineEntry {
                org_seq: r.get("org_seq"),
                at: r.get("at"),
                kind: r.get("kind"),
                actor: r.get("actor"),
                detail: Json(r.get("detail")),
            })
            .collect())
    }
    /// Containment actions on this incident, oldest first.
    #[graphql(complexity = "cost::nested_list(child_complexity)")]
    async fn actions(&self, ctx: &Context<'_>) -> Result<Vec<super::response::Action>> {
        let p = caller(ctx).await?;
        super::response::actions_of_incident(ctx, p.org_id, self.id).await
    }
    /// The evidence events themselves (first 100 by default).
    #[graphql(complexity = "cost::nested_page(first, 100, child_complexity)")]
    async fn events(&self, ctx: &Context<'_>, first: Option<i32>) -> Result<Vec<SecurityEvent>> {
        let p = caller(ctx).await?;
        let first = page_size(first.or(Some(100)))?;
        let mut tx = org_tx(ctx, p.org_id).await?;
        let rows = sqlx::query(&format!(
            "SELECT {} FROM rm_security_events WHERE org_id = $1 AND org_seq = ANY($2) ORDER BY org_seq LIMIT $3",
            super::read::EVENT_COLUMNS
        ))
        .bind(p.org_id.0)
        .bind(&self.evidence)
        .bind(first as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        Ok(rows.iter().map(super::read::event_from_row).collect())
    }
}

#[derive(InputObject, Default)]
pub struct IncidentFilter {
    pub status: Option<IncidentStatus>,
    pub severity: Option<Severity>,
    pub category: Option<IncidentCategory>,
    pub src_ip: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Incidents one of whose detectors is this one.
    pub detector: Option<String>,
    /// Incidents tagged with this ATT&CK technique id.
    pub technique: Option<String>,
    /// Leave out incidents matching any of these values (the dashboard's "exclude" clicks).
    pub exclude: Option<IncidentExclusion>,
}

/// Values to leave out; empty lists exclude nothing.
#[derive(InputObject, Default)]
pub struct IncidentExclusion {
    #[graphql(default)]
    pub statuses: Vec<IncidentStatus>,
    #[graphql(default)]
    pub severities: Vec<Severity>,
    #[graphql(default)]
    pub categories: Vec<IncidentCategory>,
    #[graphql(default)]
    pub src_ips: Vec<String>,
    #[graphql(default)]
    pub detectors: Vec<String>,
    #[graphql(default)]
    pub techniques: Vec<String>,
}

#[derive(SimpleObject)]
pub struct Count {
    pub key: String,
    pub count: i64,
}

#[derive(SimpleObject)]
pub struct HourCount {
    pub hour: DateTime<Utc>,
    pub count: i64,
}

#[derive(SimpleObject)]
pub struct Stats {
    pub since: DateTime<Utc>,
    pub incidents_by_status: Vec<Count>,
    pub incidents_by_severity: Vec<Count>,
    pub incidents_by_category: Vec<Count>,
    pub events_per_hour: Vec<HourCount>,
    /// Source addresses with the most incidents active since `since` (ten at most).
    pub top_sources: Vec<Count>,
}

#[derive(Default)]
pub struct IncidentQuery;

#[Object]
impl IncidentQuery {
    /// Incidents of the caller's organization, most recent activity first.
    #[graphql(complexity = "cost::root_page(first, child_complexity)")]
    async fn incidents(
        &self,
        ctx: &Context<'_>,
        filter: Option<IncidentFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Incident>> {
        let p = caller(ctx).await?;
        p.require(Permission::ReadOrgData).map_err(gql_error)?;
        let first = page_size(first)?;
        let after = decode_time_id_cursor(after.as_deref())?;
        let f = filter.unwrap_or_default();
        let x = f.exclude.unwrap_or_default();
        let mut tx = org_tx(ctx, p.org_id).await?;
        let rows = sqlx::query(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM rm_incidents WHERE org_id = $1 \
             AND ($2::timestamptz IS NULL OR (last_seen, incident_id) < ($2, $3)) \
             AND ($4::text IS NULL OR status = $4) AND ($5::text IS NULL OR severity = $5) \
             AND ($6::text IS NULL OR category = $6) AND ($7::text IS NULL OR src_ip = $7) \
             AND ($8::timestamptz IS NULL OR last_seen >= $8) AND ($9::timestamptz IS NULL OR first_seen <= $9) \
             AND ($11::text IS NULL OR $11 = ANY(rule_ids)) AND ($12::text IS NULL OR $12 = ANY(techniques)) \
             AND NOT (status = ANY($13)) AND NOT (severity = ANY($14)) AND NOT (category = ANY($15)) \
             AND NOT (src_ip = ANY($16)) AND NOT (rule_ids && $17) AND NOT (techniques && $18) \
             ORDER BY last_seen DESC, incident_id DESC LIMIT $10"
        ))
        .bind(p.org_id.0)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(f.status.map(stored))
        .bind(f.severity.map(stored))
        .bind(f.category.map(stored))
        .bind(f.src_ip)
        .bind(f.since)
        .bind(f.until)
        .bind(first as i64 + 1)
        .bind(f.detector)
        .bind(f.technique)
        .bind(x.statuses.into_iter().map(stored).collect::<Vec<_>>())
        .bind(x.severities.into_iter().map(stored).collect::<Vec<_>>())
        .bind(x.categories.into_iter().map(stored).collect::<Vec<_>>())
        .bind(x.src_ips)
        .bind(x.detectors)
        .bind(x.techniques)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        Ok(page_of(&rows, first, after.is_some(), Incident::from_row, |x| encode_time_id_cursor(x.last_seen, x.id)))
    }

    /// One incident of the caller's organization; another org's id is simply not found.
    async fn incident(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Incident>> {
        let p = caller(ctx).await?;
        p.require(Permission::ReadOrgData).map_err(gql_error)?;
        let Ok(id) = Uuid::parse_str(&id) else { return Ok(None) };
        let mut tx = org_tx(ctx, p.org_id).await?;
        let row =
            sqlx::query(&format!("SELECT {INCIDENT_COLUMNS} FROM rm_incidents WHERE org_id = $1 AND incident_id = $2"))
                .bind(p.org_id.0)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        Ok(row.as_ref().map(Incident::from_row))
    }

    /// Counts by status, severity and category of incidents active since `since` (default 24 h),
    /// and telemetry events per hour.
    async fn stats(&self, ctx: &Context<'_>, since: Option<DateTime<Utc>>) -> Result<Stats> {
        let p = caller(ctx).await?;
        p.require(Permission::ReadOrgData).map_err(gql_error)?;
        let since = since.unwrap_or_else(|| Utc::now() - Duration::hours(24));
        let mut tx = org_tx(ctx, p.org_id).await?;
        let by = |column: &'static str| {
            format!(
                "SELECT {column} AS key, count(*) AS n FROM rm_incidents WHERE org_id = $1 AND last_seen >= $2 \
                 GROUP BY {column} ORDER BY {column}"
            )
        };
        let mut counts = Vec::new();
        for column in ["status", "severity", "category"] {
            let rows =
                sqlx::query(&by(column)).bind(p.org_id.0).bind(since).fetch_all(&mut *tx).await.map_err(db_error)?;
            counts.push(rows.iter().map(|r| Count { key: r.get("key"), count: r.get("n") }).collect::<Vec<_>>());
        }
        let hours = sqlx::query(
            "SELECT date_trunc('hour', \"timestamp\") AS hour, count(*) AS n FROM rm_security_events \
             WHERE org_id = $1 AND \"timestamp\" >= $2 GROUP BY 1 ORDER BY 1",
        )
        .bind(p.org_id.0)
        .bind(since)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let top_sources = sqlx::query(
            "SELECT src_ip AS key, count(*) AS n FROM rm_incidents WHERE org_id = $1 AND last_seen >= $2 \
             GROUP BY src_ip ORDER BY n DESC, src_ip LIMIT 10",
        )
        .bind(p.org_id.0)
        .bind(since)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let category = counts.pop().unwrap_or_default();
        let severity = counts.pop().unwrap_or_default();
        let status = counts.pop().unwrap_or_default();
        Ok(Stats {
            since,
            incidents_by_status: status,
            incidents_by_severity: severity,
            incidents_by_category: category,
            events_per_hour: hours.iter().map(|r| HourCount { hour: r.get("hour"), count: r.get("n") }).collect(),
            top_sources: top_sources.iter().map(|r| Count { key: r.get("key"), count: r.get("n") }).collect(),
        })
    }
}

#[derive(Default)]
pub struct IncidentSubscription;

#[async_graphql::Subscription]
impl IncidentSubscription {
    /// New and changed incidents of the caller's organization, as they are projected. The org
    /// comes from the token given at connection init, like every other operation. The
    /// subscription ends with an error once that session ends (logout, lock, expiry); a socket
    /// and a user may hold only so many (`TOO_MANY_SUBSCRIPTIONS`).
    async fn incident_updates(&self, ctx: &Context<'_>) -> Result<impl futures::Stream<Item = Result<Incident>>> {
        let p = caller(ctx).await?;
        p.require(Permission::ReadOrgData).map_err(gql_error)?;
        // Present: `caller` just verified it.
        let token =
            ctx.data_opt::<crate::graphql_route::RequestAuth>().and_then(|r| r.token.clone()).unwrap_or_default();
        let connection = ctx.data_opt::<std::sync::Arc<super::live::ConnectionSubscriptions>>().cloned();
        let state = ctx.data_unchecked::<actix_web::web::Data<crate::startup::AppState>>().clone();
        super::live::incident_updates(state, connection, p, token).await
    }
}

#[derive(SimpleObject)]
pub struct StatusChange {
    pub id: ID,
    pub status: IncidentStatus,
}

#[derive(Default)]
pub struct IncidentMutation;

#[Object]
impl IncidentMutation {
    /// Move an incident through its lifecycle (analyst and up): open → contained | dismissed |
    /// resolved, contained → open | resolved. Every change is an event with its actor.
    async fn update_incident_status(
        &self,
        ctx: &Context<'_>,
        id: ID,
        status: IncidentStatus,
        note: Option<String>,
    ) -> Result<StatusChange> {
        let p = caller(ctx).await?;
        p.require(Permission::UpdateIncidentStatus).map_err(gql_error)?;
        let incident = Uuid::parse_str(&id).map(IncidentId).map_err(|_| gql_error(AuthError::NotFound))?;
        let to = match status {
            IncidentStatus::Open => xdr_domain::incident::IncidentStatus::Open,
            IncidentStatus::Contained => xdr_domain::incident::IncidentStatus::Contained,
            IncidentStatus::Dismissed => xdr_domain::incident::IncidentStatus::Dismissed,
            IncidentStatus::Resolved => xdr_domain::incident::IncidentStatus::Resolved,
        };
        let metadata = actor_metadata(ctx, &p);
        let command = IncidentCommand::UpdateStatus(UpdateIncidentStatus {
            incident_id: incident,
            status: to,
            note,
            by_user: Some(p.user_id),
            now: Utc::now(),
        });
        // The incident stream is looked up in the caller's org only: another org's id is not found.
        handler::execute::<IncidentAggregate>(
            state(ctx).identity.store(),
            p.org_id,
            &incident.stream_id(),
            &command,
            &metadata,
            None,
        )
        .await
        .map_err(|e| match e {
            CommandError::Domain(IncidentError::NotFound) => gql_error(AuthError::NotFound),
            CommandError::Domain(other) => bad_input(other.to_string()),
            other => gql_error(AuthError::Internal(other.to_string())),
        })?;
        after_write(ctx, p.org_id).await?;
        Ok(StatusChange { id, status })
    }
}
