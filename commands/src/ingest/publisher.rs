//! Publishing a log file through NATS (`mini-xdr ingest`): newline-delimited batches of at
//! most `batch_records` records, each with `Nats-Msg-Id = <file sha256>/<batch index>`, so
//! publishing the same file again is de-duplicated by JetStream and, past its window, by the
//! deterministic event ids. Records are parsed locally too, only to report which ones the
//! ingestor will dead-letter; everything is published (the dead-letter queue keeps the rest).

use async_nats::jetstream::{self, context::Publish};
use async_nats::HeaderMap;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use xdr_domain::telemetry::parsers::{parse_record, split_records, ParseContext};
use xdr_domain::telemetry::SourceType;

use super::nats_ingestor::{ensure_ingest_streams, HEADER_INGEST_KEY};
use super::{IngestConfig, NatsError};

/// Publishes awaiting their JetStream ack at once (bounded memory, pipelined throughput).
const MAX_IN_FLIGHT: usize = 64;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PublishSummary {
    pub records: u64,
    pub messages: u64,
    /// Messages JetStream already had (same file published before, within its window).
    pub duplicate_messages: u64,
    /// Records the ingestor will dead-letter, by reason.
    pub will_dead_letter: BTreeMap<String, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Nats(#[from] NatsError),
}

/// SHA-256 and line count of a file, in one streaming pass.
pub fn file_digest(path: &Path) -> Result<(String, u64), std::io::Error> {
    let mut file = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut hasher = Sha256::new();
    let mut lines = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    Ok((hex::encode(hasher.finalize()), lines))
}

/// `<key fingerprint>/<file sha256>/<batch size>`: the same file sent by two producers (two
/// keys) must not be de-duplicated against each other, and record indices only line up
/// between runs with the same batch size. The fingerprint is 32 bits of the key's SHA-256.
pub fn message_id_base(key: &str, file_sha256: &str, batch_records: usize) -> String {
    let fingerprint = hex::encode(&Sha256::digest(key.as_bytes())[..4]);
    format!("{fingerprint}/{file_sha256}/{batch_records}")
}

/// Publish `path` as `source` records with `key`. `progress(records_done)` is called after
/// each batch is acked by JetStream.
pub async fn publish_file(
    client: async_nats::Client,
    config: &IngestConfig,
    key: &str,
    source: SourceType,
    path: &Path,
    batch_records: usize,
    mut progress: impl FnMut(u64),
) -> Result<PublishSummary, PublishError> {
    let batch_records = batch_records.max(1);
    let io_err = |source| PublishError::Io { path: path.display().to_string(), source };
    let (digest, _) = file_digest(path).map_err(io_err)?;
    let id_base = message_id_base(key, &digest, batch_records);
    let js = jetstream::new(client);
    ensure_ingest_streams(&js, config).await?;
    let subject = config.ingest_subject(source.as_str());
    let ctx = ParseContext::received_at(chrono::Utc::now());
    let mut summary = PublishSummary::default();
    let mut in_flight = VecDeque::new();
    let mut batch: Vec<String> = Vec::with_capacity(batch_records);
    let mut batch_index = 0u64;

    // A JSON array file is one document; everything else is read line by line, so a huge
    // file never sits in memory.
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(path).map_err(io_err)?);
    let starts_with_array = {
        let head = reader.fill_buf().map_err(io_err)?;
        head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
    };
    let mut records: Box<dyn Iterator<Item = Result<String, std::io::Error>>> = if starts_with_array {
        let mut all = String::new();
        reader.read_to_string(&mut all).map_err(io_err)?;
        Box::new(split_records(source, &all).into_iter().map(Ok))
    } else {
        Box::new(reader.lines())
    };

    loop {
        let next = records.next().transpose().map_err(io_err)?;
        let at_end = next.is_none();
        if let Some(record) = next {
            if record.trim().is_empty() {
                continue;
            }
            if let Err(e) = parse_record(source, &record, &ctx) {
                *summary.will_dead_letter.entry(e.0.chars().take(80).collect()).or_default() += 1;
            }
            batch.push(record);
            if batch.len() < batch_records {
                continue;
            }
        }
        if batch.is_empty() {
            break;
        }
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_INGEST_KEY, key);
        let body = batch.join("\n");
        let n = batch.len() as u64;
        batch.clear();
        let publish =
            Publish::build().headers(headers).payload(body.into()).message_id(format!("{id_base}/{batch_index}"));
        batch_index += 1;
        let ack = js.send_publish(subject.clone(), publish).await.map_err(NatsError::from_display)?;
        in_flight.push_back((ack, n));
        if in_flight.len() >= MAX_IN_FLIGHT {
            settle(in_flight.pop_front(), &mut summary, &mut progress).await?;
        }
        if at_end {
            break;
        }
    }
    while let Some(entry) = in_flight.pop_front() {
        settle(Some(entry), &mut summary, &mut progress).await?;
    }
    Ok(summary)
}

async fn settle(
    entry: Option<(jetstream::context::PublishAckFuture, u64)>,
    summary: &mut PublishSummary,
    progress: &mut impl FnMut(u64),
) -> Result<(), PublishError> {
    let Some((ack, n)) = entry else { return Ok(()) };
    let ack = ack.await.map_err(NatsError::from_display)?;
    summary.messages += 1;
    summary.records += n;
    if ack.duplicate {
        summary.duplicate_messages += 1;
    }
    progress(summary.records);
    Ok(())
}
