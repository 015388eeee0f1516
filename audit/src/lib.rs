//! Audit over the event log: what an auditor runs and what proves nobody rewrote history.
//! `verify` walks every org's hash chain (and checks it against anchors), `replay` prints an
//! org's events or an aggregate's state at an instant, `bundle` exports, verifies offline and
//! restores an org's log, `point_in_time` rebuilds one org's read models as of a cut,
//! `anchors` publishes heads outside the database, and `report` turns outcomes into the
//! text the CLI prints. The chain itself is the store's (`xdr_commands::store::chain`):
//! appends link it; everything here only reads it.
#![forbid(unsafe_code)]

pub mod anchors;
pub mod bundle;
pub mod point_in_time;
pub mod replay;
pub mod report;
pub mod verify;
