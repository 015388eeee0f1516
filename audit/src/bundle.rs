//! Portable audit bundles: an org's events with their hashes and a manifest, gzip-compressed,
//! that anyone can verify offline (no database) and restore into an empty database.
//!
//! Format (version 1): gzip of JSON lines. Line 1 is the [`Manifest`]; every further line is
//! one event exactly as stored (`StoredEvent`, hash included), in `org_seq` order from 1.
//! Bundles always start at the org's first event, so the chain is checked from genesis.

use chrono::{DateTime, Utc};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::{Executor, PgPool};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use uuid::Uuid;
use xdr_commands::store::chain::GENESIS_HASH;
use xdr_commands::store::{self, LogFilter};
use xdr_commands::{StoreError, StoredEvent};
use xdr_domain::ids::OrgId;

use crate::replay::Position;

pub const FORMAT: &str = "mini-xdr-audit-bundle";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub org_id: Uuid,
    pub first_seq: i64,
    pub last_seq: i64,
    pub event_count: u64,
    /// Hash of the last event: the chain's head for this range.
    #[serde(with = "hex_string")]
    pub head_hash: Vec<u8>,
    pub counts_by_type: BTreeMap<String, u64>,
    pub until: Option<String>,
    pub exported_at: DateTime<Utc>,
    pub tool_version: String,
}

mod hex_string {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot read or restore the log: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read or write the bundle: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a Mini-XDR audit bundle: {0}")]
    Format(String),
    /// The bundle was altered: which event (1-based line after the manifest) and why.
    #[error("bundle is not intact at event #{position} (org_seq {org_seq}): {reason}")]
    Broken { position: u64, org_seq: i64, reason: String },
    #[error("the target database already holds events of org {0}; import needs an empty log for that org")]
    NotEmpty(Uuid),
}

/// Write the org's events (up to `until`) and a manifest. Two passes over the log: the
/// manifest comes first but describes the whole range.
pub async fn export(
    pool: &PgPool,
    org: OrgId,
    until: Option<Position>,
    out: impl Write,
) -> Result<Manifest, BundleError> {
    let mut range = LogFilter::org(org);
    match until {
        Some(Position::Seq(s)) => range.until_seq = Some(s),
        Some(Position::Time(t)) => range.until = Some(t),
        None => {}
    }
    // One snapshot for both passes, so events committed meanwhile cannot slip in between.
    let mut tx = pool.begin().await?;
    tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?;
    let rows = store::count_by_type(&mut *tx, &range).await?;
    let last = store::last_link(&mut *tx, &range).await?;
    let (last_seq, head_hash) = last.unwrap_or((0, GENESIS_HASH.to_vec()));
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        org_id: org.0,
        first_seq: 1,
        last_seq,
        event_count: rows.iter().map(|(_, n)| *n).sum(),
        head_hash,
        counts_by_type: rows.into_iter().collect(),
        until: until.map(|u| match u {
            Position::Seq(s) => s.to_string(),
            Position::Time(t) => t.to_rfc3339(),
        }),
        exported_at: Utc::now(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
    };
    let mut gz = GzEncoder::new(out, flate2::Compression::fast());
    serde_json::to_writer(&mut gz, &manifest).map_err(std::io::Error::from)?;
    gz.write_all(b"\n")?;
    {
        let mut stream = store::scan(&mut *tx, &range);
        // Lines rendered straight from the rows (as `replay` does), compressed in large pieces.
        let mut buf = Vec::with_capacity(512 * 1024);
        while let Some(row) = stream.try_next().await? {
            row.write_jsonl(&mut buf)?;
            if buf.len() >= 256 * 1024 {
                gz.write_all(&buf)?;
                buf.clear();
            }
        }
        gz.write_all(&buf)?;
    }
    gz.finish()?.flush()?;
    tx.commit().await?;
    Ok(manifest)
}

/// Read a bundle: its manifest and an iterator over its events.
fn open(input: impl Read) -> Result<(Manifest, impl Iterator<Item = std::io::Result<String>>), BundleError> {
    let mut lines = BufReader::new(GzDecoder::new(input)).lines();
    let first = lines.next().ok_or_else(|| BundleError::Format("empty file".into()))??;
    let manifest: Manifest =
        serde_json::from_str(&first).map_err(|e| BundleError::Format(format!("bad manifest: {e}")))?;
    if manifest.format != FORMAT || manifest.format_version != FORMAT_VERSION {
        return Err(BundleError::Format(format!(
            "format {} version {} is not {FORMAT} version {FORMAT_VERSION}",
            manifest.format, manifest.format_version
        )));
    }
    Ok((manifest, lines))
}

/// Verify a bundle offline: every event parses, belongs to the org, follows its predecessor
/// (`org_seq` + 1), and hashes to its stored hash from genesis; the end matches the manifest.
/// Calls `each` with every verified event (import uses it to load them).
pub fn verify(
    input: impl Read,
    mut each: impl FnMut(StoredEvent) -> Result<(), BundleError>,
) -> Result<Manifest, BundleError> {
    let (manifest, lines) = open(input)?;
    let mut prev_hash = GENESIS_HASH.to_vec();
    let mut position = 0u64;
    let mut expected_seq = manifest.first_seq;
    for line in lines {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        position += 1;
        let broken = |org_seq: i64, reason: String| BundleError::Broken { position, org_seq, reason };
        let event: StoredEvent =
            serde_json::from_str(&line).map_err(|e| broken(expected_seq, format!("unreadable event: {e}")))?;
        if event.org_id != manifest.org_id {
            return Err(broken(event.org_seq, format!("belongs to org {}, not {}", event.org_id, manifest.org_id)));
        }
        if event.org_seq != expected_seq {
            return Err(broken(
                event.org_seq,
                format!("expected org_seq {expected_seq}: an event is missing or out of order"),
            ));
        }
        if event.expected_hash(&prev_hash)[..] != event.hash[..] {
            return Err(broken(event.org_seq, "hash mismatch: the event or its order was changed".into()));
        }
        prev_hash = event.hash.clone();
        expected_seq += 1;
        each(event)?;
    }
    let last_seq = expected_seq - 1;
    if position != manifest.event_count || last_seq != manifest.last_seq {
        return Err(BundleError::Broken {
            position,
            org_seq: last_seq,
            reason: format!(
                "manifest promises {} events up to org_seq {}, bundle has {position} up to {last_seq}",
                manifest.event_count, manifest.last_seq
            ),
        });
    }
    if prev_hash != manifest.head_hash {
        return Err(BundleError::Broken {
            position,
            org_seq: last_seq,
            reason: "last hash differs from the manifest's head hash".into(),
        });
    }
    Ok(manifest)
}

/// Restore a verified bundle into a migrated database whose log has no events of that org:
/// the rows as they were (same seqs, times, hashes), the head, and the cross-tenant
/// reservations (slugs, e-mails) derived from the events. Runs as the schema owner.
pub async fn import(pool: &PgPool, input: impl Read) -> Result<Manifest, BundleError> {
    let mut events = Vec::new();
    let manifest = verify(input, |e| {
        events.push(e);
        Ok(())
    })?;
    let mut tx = pool.begin().await?;
    if store::org_has_events(&mut tx, manifest.org_id).await? {
        return Err(BundleError::NotEmpty(manifest.org_id));
    }
    store::restore_rows(&mut tx, manifest.org_id, &events, manifest.last_seq, &manifest.head_hash).await?;
    for e in &events {
        match e.event_type.as_str() {
            "OrganizationRegistered" => {
                sqlx::query("INSERT INTO org_slugs (slug, org_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(e.payload["slug"].as_str().unwrap_or_default())
                    .bind(e.org_id)
                    .execute(&mut *tx)
                    .await?;
            }
            "UserCreated" => {
                sqlx::query(
                    "INSERT INTO user_emails (email, org_id, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(e.payload["email"].as_str().unwrap_or_default())
                .bind(e.org_id)
                .bind(e.payload["user_id"].as_str().and_then(|u| Uuid::parse_str(u).ok()).unwrap_or_default())
                .execute(&mut *tx)
                .await?;
            }
            // Producer keys keep working on the restored database: only their digests are logged.
            "IngestKeyCreated" => {
                let digest = e.payload["key_hash"].as_str().and_then(|h| hex::decode(h).ok()).unwrap_or_default();
                let key_id = e.payload["key_id"].as_str().and_then(|u| Uuid::parse_str(u).ok()).unwrap_or_default();
                sqlx::query(
                    "INSERT INTO ingest_key_lookup (key_hash, org_id, key_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(digest)
                .bind(e.org_id)
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
            }
            "IngestKeyRevoked" => {
                let key_id =
                    e.stream_id.strip_prefix("ingestkey-").and_then(|u| Uuid::parse_str(u).ok()).unwrap_or_default();
                sqlx::query("UPDATE ingest_key_lookup SET revoked_at = $3 WHERE org_id = $1 AND key_id = $2")
                    .bind(e.org_id)
                    .bind(key_id)
                    .bind(e.payload["revoked_at"].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok()))
                    .execute(&mut *tx)
                    .await?;
            }
            _ => {}
        }
    }
    tx.commit().await?;
    Ok(manifest)
}
