//! Response, write side: containment actions from request to result, the org's containment
//! policies and settings, and the NATS transport of orders to enforcement agents.
//!
//! One component per module: `config` (subjects, streams, timeouts), `actions` (the command
//! handlers of an action's lifecycle, including the incident status that follows it),
//! `containment` (policies and settings), `dispatch` (publishing orders), `results` (agents'
//! answers into the log), `agent_keys` (agent credentials), `scheduler` (the
//! sweep over due actions: late dispatches, unanswered orders, expired blocks). What is due,
//! and the recent automatic blocks the per-minute cap counts, are read-model queries the
//! projections crate answers (`xdr_projections::action_queue`).

pub mod actions;
pub mod agent_keys;
pub mod config;
pub mod containment;
pub mod dispatch;
pub mod results;
pub mod scheduler;

pub use config::ResponseConfig;
pub use dispatch::Dispatcher;
