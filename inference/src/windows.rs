//! Per-(org, source ip) event-time windows.
//!
//! Each source keeps its recent observations sorted by the record's own timestamp (event
//! time, never arrival time), so a log from last week replayed today is judged on what
//! happened then. An observation that arrives out of order is inserted at its place as long
//! as it is no more than the allowed lateness behind the newest one seen from that source;
//! older ones are refused (and counted). The longest window is one hour, so everything
//! older than `1 h + lateness` behind the source's newest observation is evicted.

use std::collections::{HashSet, VecDeque};
use uuid::Uuid;

/// Microseconds per second: event times are Unix microseconds.
pub const MICROS: i64 = 1_000_000;
/// The sliding windows features are computed over.
pub const WINDOW_1M: i64 = 60 * MICROS;
pub const WINDOW_5M: i64 = 5 * 60 * MICROS;
pub const WINDOW_30M: i64 = 30 * 60 * MICROS;
pub const WINDOW_1H: i64 = 60 * 60 * MICROS;

/// What an observation is, as far as detection cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A connection was opened (Cowrie `session.connect`, sshd banner probes).
    Connect,
    LoginFailed,
    LoginSuccess,
    /// sshd `Invalid user` (the failure line follows separately).
    InvalidUser,
    /// A shell command typed in a session.
    Command,
    /// A file was fetched or written by the attacker (Cowrie `session.file_download`).
    FileDownload,
    /// A session ended (carries its duration).
    Closed,
    /// Anything else (client version, key exchange, telnet options, …): counted, not evidence.
    Other,
}

impl Kind {
    /// Observations worth attaching to an incident as evidence.
    pub fn is_signal(self) -> bool {
        !matches!(self, Kind::Closed | Kind::Other)
    }
}

/// Bits describing what a command or download did (see `features::extract`).
pub mod flags {
    pub const DOWNLOAD: u32 = 1 << 0;
    pub const CHMOD_X: u32 = 1 << 1;
    pub const EXEC_LOCAL: u32 = 1 << 2;
    pub const PERSIST_KEYS: u32 = 1 << 3;
    pub const PERSIST_CRON: u32 = 1 << 4;
    pub const DISCOVERY: u32 = 1 << 5;
    pub const BUSYBOX_PROBE: u32 = 1 << 6;
    pub const ESC_ENABLE: u32 = 1 << 7;
    pub const ESC_SYSTEM: u32 = 1 << 8;
    pub const ESC_SHELL: u32 = 1 << 9;
    pub const ESC_SH: u32 = 1 << 10;
    pub const ESC_LINUXSHELL: u32 = 1 << 11;
    pub const ESCAPES: u32 = ESC_ENABLE | ESC_SYSTEM | ESC_SHELL | ESC_SH | ESC_LINUXSHELL;
    pub const PERSISTENCE: u32 = PERSIST_KEYS | PERSIST_CRON;
    /// A login whose credential is on the Mirai default-credential list.
    pub const DEFAULT_CREDENTIAL: u32 = 1 << 12;
}

/// One observation, reduced to what features and rules read (about 64 bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Obs {
    /// Event time, Unix microseconds.
    pub t: i64,
    /// Position in the org's log: the evidence reference.
    pub seq: i64,
    pub event_id: Uuid,
    pub kind: Kind,
    pub flags: u32,
    /// Hash of the username (0 = none).
    pub user: u64,
    /// Hash of the password (0 = none).
    pub pass: u64,
    /// Hash of the session id (0 = none).
    pub session: u64,
    /// Destination port (0 = unknown).
    pub dst_port: u16,
    /// Session duration in seconds (negative = unknown).
    pub duration: f32,
}

/// Why an observation was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The same log position was seen before (redelivery, or rebuilt from the log).
    Duplicate,
    /// Older than the allowed lateness behind the source's newest observation.
    TooLate,
}

/// The time-ordered observations of one source.
#[derive(Debug, Clone, Default)]
pub struct SourceWindow {
    events: VecDeque<Obs>,
    seqs: HashSet<i64>,
    /// Newest event time seen from this source.
    watermark: i64,
}

impl SourceWindow {
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Insert at its event-time place; evict what no window can need any more.
    pub fn insert(&mut self, obs: Obs, lateness: i64, max_events: usize) -> Result<(), Refused> {
        if self.seqs.contains(&obs.seq) {
            return Err(Refused::Duplicate);
        }
        if !self.events.is_empty() && obs.t < self.watermark - lateness {
            return Err(Refused::TooLate);
        }
        // Sorted by (t, seq); in-order arrival is the common case and costs O(1).
        let key = (obs.t, obs.seq);
        let at = match self.events.back() {
            Some(last) if (last.t, last.seq) > key => self.events.partition_point(|o| (o.t, o.seq) < key),
            _ => self.events.len(),
        };
        self.events.insert(at, obs);
        self.seqs.insert(obs.seq);
        self.watermark = self.watermark.max(obs.t);
        let horizon = self.watermark - WINDOW_1H - lateness;
        while let Some(first) = self.events.front() {
            if first.t >= horizon && self.events.len() <= max_events {
                break;
            }
            self.seqs.remove(&first.seq);
            self.events.pop_front();
        }
        Ok(())
    }

    /// Observations with `anchor - width < t <= anchor`, oldest first.
    pub fn range(&self, anchor: i64, width: i64) -> impl DoubleEndedIterator<Item = &Obs> + '_ {
        let end = self.events.partition_point(|o| o.t <= anchor);
        let start = self.events.partition_point(|o| o.t <= anchor - width);
        self.events.range(start..end.max(start))
    }

    /// All retained observations, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Obs> + '_ {
        self.events.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(t_secs: i64, seq: i64) -> Obs {
        Obs {
            t: t_secs * MICROS,
            seq,
            event_id: Uuid::nil(),
            kind: Kind::LoginFailed,
            flags: 0,
            user: 0,
            pass: 0,
            session: 0,
            dst_port: 0,
            duration: -1.0,
        }
    }

    const LATE: i64 = 300 * MICROS;

    #[test]
    fn out_of_order_arrivals_within_lateness_are_placed_by_event_time() {
        let mut w = SourceWindow::default();
        for (t, seq) in [(100, 1), (130, 2), (110, 3), (90, 4)] {
            w.insert(obs(t, seq), LATE, 1000).unwrap();
        }
        let order: Vec<i64> = w.iter().map(|o| o.seq).collect();
        assert_eq!(order, vec![4, 1, 3, 2]);
        // The 60 s window ending at 130 is (70, 130]: all four.
        assert_eq!(w.range(130 * MICROS, WINDOW_1M).count(), 4);
        assert_eq!(w.range(120 * MICROS, 21 * MICROS).map(|o| o.seq).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn duplicates_and_too_late_records_are_refused() {
        let mut w = SourceWindow::default();
        w.insert(obs(1000, 1), LATE, 1000).unwrap();
        assert_eq!(w.insert(obs(1000, 1), LATE, 1000), Err(Refused::Duplicate));
        assert_eq!(w.insert(obs(1000 - 301, 2), LATE, 1000), Err(Refused::TooLate));
        assert!(w.insert(obs(1000 - 299, 3), LATE, 1000).is_ok());
    }

    #[test]
    fn old_observations_are_evicted_past_one_hour_plus_lateness() {
        let mut w = SourceWindow::default();
        w.insert(obs(0, 1), LATE, 1000).unwrap();
        w.insert(obs(3600, 2), LATE, 1000).unwrap();
        assert_eq!(w.len(), 2);
        w.insert(obs(3600 + 301, 3), LATE, 1000).unwrap();
        assert_eq!(w.iter().map(|o| o.seq).collect::<Vec<_>>(), vec![2, 3]);
        // The cap bounds memory for a flooding source.
        for i in 0..10 {
            w.insert(obs(4000 + i, 10 + i), LATE, 5).unwrap();
        }
        assert_eq!(w.len(), 5);
    }
}
