//! Row-level security, the second tenant-isolation layer: every read-model table (and, for
//! the API's login, every table) only shows the rows of the org named by the
//! transaction-local setting `app.org_id`.
//!
//! The setting is made with `set_config(…, true)`, local to the transaction, so a pooled
//! connection carries nothing over to the next request: after commit or rollback the
//! setting reads back as '' and the policies match no row. The functions live with the event
//! store (`xdr_commands::db`), which scopes its own transactions the same way.

pub use xdr_commands::db::{begin_org_tx, set_org};
