//! The agent's side of the gateway (`/api/agent/v1/*`): three calls over HTTP(S), the agent
//! key as a bearer token on each.

use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use xdr_domain::response::order::ActiveBlock;
use xdr_graphql::agent_api::{AgentResultItem, PulledOrder, ResultOutcome};

/// Why a call failed, by what the agent should do about it.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// 401: the key is unknown or revoked. The agent stops.
    #[error("the server refused the agent key: {0}")]
    Refused(String),
    /// The request itself is wrong (404: no gateway at this URL, 400, 403): retrying the same
    /// request will not help.
    #[error("{0}")]
    Rejected(String),
    /// Unreachable, timed out, 5xx (503: the server has no NATS dispatcher yet): try again.
    #[error("{0}")]
    Transient(String),
}

pub struct Gateway {
    http: reqwest::Client,
    base: String,
    key: SecretString,
}

impl Gateway {
    /// `ca_cert`: a PEM certificate to trust besides the public CAs (a private CA).
    pub fn new(server: &str, key: SecretString, ca_cert: Option<&std::path::Path>) -> anyhow::Result<Gateway> {
        use anyhow::Context;
        let base = server.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            anyhow::bail!("--server must be an http:// or https:// URL, got {base:?}");
        }
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).use_rustls_tls();
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path).with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("--ca-cert {} is not a PEM certificate", path.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build()?;
        Ok(Gateway { http, base, key })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/agent/v1/{path}", self.base)
    }

    /// The org's blocks in force.
    pub async fn blocks(&self) -> Result<Vec<ActiveBlock>, GatewayError> {
        let req = self.http.get(self.url("blocks")).timeout(Duration::from_secs(60));
        self.send(req).await
    }

    /// Up to `max` orders, waiting up to `wait_ms` for the first.
    pub async fn pull(&self, max: usize, wait_ms: u64) -> Result<Vec<PulledOrder>, GatewayError> {
        let req = self
            .http
            .post(self.url("orders/pull"))
            .json(&serde_json::json!({ "max": max, "wait_ms": wait_ms }))
            // The long poll plus room for a slow server.
            .timeout(Duration::from_millis(wait_ms) + Duration::from_secs(15));
        self.send(req).await
    }

    pub async fn results(&self, items: &[AgentResultItem]) -> Result<Vec<ResultOutcome>, GatewayError> {
        let req = self.http.post(self.url("results")).json(items).timeout(Duration::from_secs(30));
        self.send(req).await
    }

    async fn send<T: serde::de::DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, GatewayError> {
        let response = req
            .bearer_auth(self.key.expose_secret())
            .send()
            .await
            .map_err(|e| GatewayError::Transient(format!("cannot reach {}: {}", self.base, chain(&e))))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|e| GatewayError::Transient(format!("unreadable answer from {}: {e}", self.base)));
        }
        let detail = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or_else(|| status.to_string());
        Err(match status.as_u16() {
            401 => GatewayError::Refused(detail),
            404 => GatewayError::Rejected(format!("{} has no agent gateway (404); is --server right?", self.base)),
            400..=499 => GatewayError::Rejected(format!("{status}: {detail}")),
            _ => GatewayError::Transient(format!("{status}: {detail}")),
        })
    }
}

/// An error with its causes (reqwest's own message omits them: "error sending request").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
