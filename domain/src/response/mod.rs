//! Response: what is done about an incident. Containment actions and their lifecycle, the
//! org's containment policies and safety rails, enforcement-agent credentials, and the order
//! format agents speak.

pub mod action;
pub mod agent_key;
pub mod order;
pub mod policy;
pub mod rails;
