//! Publishing orders to the org's enforcement agents on `xdr.actions.<org_id>`.
//!
//! The order is published only after its `ActionDispatched` is committed: a crash in between
//! leaves a dispatched action without an order, which the scheduler re-sends when the
//! attempt's deadline passes. The other order (publish, then commit) could let an agent act
//! on an action the log never says was sent.

use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use xdr_domain::response::order::ActionOrder;

use super::config::ResponseConfig;
use crate::ingest::NatsError;

/// Sends orders; holds the JetStream context and the names.
#[derive(Clone)]
pub struct Dispatcher {
    js: jetstream::Context,
    config: ResponseConfig,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Connect the dispatcher, creating the order and result streams if they are missing.
    pub async fn new(js: jetstream::Context, config: ResponseConfig) -> Result<Self, NatsError> {
        ensure_streams(&js, &config).await?;
        Ok(Dispatcher { js, config })
    }

    pub fn config(&self) -> &ResponseConfig {
        &self.config
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Publish one attempt of one action and wait for JetStream to store it. The message id
    /// (`<action>/<attempt>`) makes a re-publish of the same attempt a no-op on the server.
    pub async fn publish_order(&self, order: &ActionOrder) -> Result<(), NatsError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("{}/{}", order.action_id, order.attempt).as_str());
        let body = serde_json::to_vec(order).map_err(NatsError::from_display)?;
        self.js
            .publish_with_headers(self.config.actions_subject(order.org_id.0), headers, body.into())
            .await
            .map_err(NatsError::from_display)?
            .await
            .map_err(NatsError::from_display)?;
        Ok(())
    }
}

/// The order stream (kept for `retention`, so an agent that was offline still finds recent
/// orders; stale ones carry a passed deadline) and the result stream (a work queue: a result
/// is done once its events are committed).
pub async fn ensure_streams(js: &jetstream::Context, config: &ResponseConfig) -> Result<(), NatsError> {
    crate::cluster::ensure_stream(
        js,
        stream::Config {
            name: config.actions_stream.clone(),
            subjects: vec![config.actions_wildcard()],
            max_age: config.retention,
            duplicate_window: std::time::Duration::from_secs(120),
            ..Default::default()
        },
    )
    .await?;
    crate::cluster::ensure_stream(
        js,
        stream::Config {
            name: config.results_stream.clone(),
            subjects: vec![config.results_wildcard()],
            retention: stream::RetentionPolicy::WorkQueue,
            max_age: config.retention,
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}
