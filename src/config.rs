//! Settings: defaults, then an optional TOML file, then the contract's environment variables.

use secrecy::SecretString;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: Option<String>,
    pub nats_url: String,
    pub bind: String,
    pub jwt_secret_key: Option<SecretString>,
    // Reserved for secrets at rest (agent and ingest key material); validated early.
    #[allow(dead_code)]
    pub encryption_key: Option<SecretString>,
    /// Login attempts per minute per client address (`XDR_LOGIN_RATE_PER_MINUTE`).
    pub login_rate_per_minute: u32,
    /// HTTPS certificate chain and key (`XDR_TLS_CERT`, `XDR_TLS_KEY`, both or neither).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// GraphQL introspection (and so GraphiQL's schema view); `XDR_GRAPHQL_INTROSPECTION=false`
    /// switches it off in production.
    pub graphql_introspection: bool,
    /// Trust `X-Forwarded-For` for the client address (`XDR_TRUST_FORWARDED_FOR`, behind an ALB).
    pub trust_forwarded_for: bool,
    /// The built dashboard served at `/` (`XDR_DASHBOARD_DIR`, default `dashboard/dist`).
    pub dashboard_dir: std::path::PathBuf,
    /// GraphQL cost and subscription limits (`XDR_GRAPHQL_*`, `XDR_SUBSCRIPTION*`).
    pub graphql_limits: xdr_graphql::GraphqlLimits,
}

/// The TOML file's shape: every key optional, names as the environment variables in lower case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database_url: Option<String>,
    nats_url: Option<String>,
    xdr_bind: Option<String>,
    jwt_secret_key: Option<String>,
    encryption_key: Option<String>,
    xdr_login_rate_per_minute: Option<u32>,
    xdr_trust_forwarded_for: Option<bool>,
    xdr_dashboard_dir: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("configuration file {path} is not valid: {source}")]
    Parse { path: String, source: toml::de::Error },
    #[error("{0} is required for this command but is not set (environment or config file)")]
    Missing(&'static str),
    #[error("{var} is malformed: {reason}")]
    Malformed { var: &'static str, reason: String },
}

impl Settings {
    /// Load from an optional file and an environment lookup (injected for tests).
    pub fn load(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let from_file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
                toml::from_str(&text)
                    .map_err(|source| ConfigError::Parse { path: path.display().to_string(), source })?
            }
            None => FileSettings::default(),
        };
        let pick = |var: &str, file_value: Option<String>| env(var).filter(|v| !v.is_empty()).or(file_value);
        let settings = Settings {
            database_url: pick("DATABASE_URL", from_file.database_url),
            nats_url: pick("NATS_URL", from_file.nats_url).unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
            bind: pick("XDR_BIND", from_file.xdr_bind).unwrap_or_else(|| "127.0.0.1:8000".into()),
            jwt_secret_key: pick("JWT_SECRET_KEY", from_file.jwt_secret_key).map(SecretString::from),
            encryption_key: pick("ENCRYPTION_KEY", from_file.encryption_key).map(SecretString::from),
            login_rate_per_minute: match env("XDR_LOGIN_RATE_PER_MINUTE").filter(|v| !v.is_empty()) {
                Some(v) => v.parse().map_err(|_| ConfigError::Malformed {
                    var: "XDR_LOGIN_RATE_PER_MINUTE",
                    reason: format!("{v:?} is not a whole number"),
                })?,
                None => from_file.xdr_login_rate_per_minute.unwrap_or(30),
            },
            tls: match (env("XDR_TLS_CERT").filter(|v| !v.is_empty()), env("XDR_TLS_KEY").filter(|v| !v.is_empty())) {
                (Some(cert), Some(key)) => Some((cert.into(), key.into())),
                (None, None) => None,
                (Some(_), None) => return Err(ConfigError::Missing("XDR_TLS_KEY")),
                (None, Some(_)) => return Err(ConfigError::Missing("XDR_TLS_CERT")),
            },
            graphql_introspection: !matches!(
                env("XDR_GRAPHQL_INTROSPECTION").as_deref(),
                Some("0") | Some("false") | Some("no")
            ),
            trust_forwarded_for: match env("XDR_TRUST_FORWARDED_FOR").filter(|v| !v.is_empty()) {
                Some(v) => matches!(v.as_str(), "1" | "true" | "yes"),
                None => from_file.xdr_trust_forwarded_for.unwrap_or(false),
            },
            dashboard_dir: pick("XDR_DASHBOARD_DIR", from_file.xdr_dashboard_dir)
                .unwrap_or_else(|| "dashboard/dist".into())
                .into(),
            graphql_limits: graphql_limits(&env)?,
        };
        settings.validate()?;
        Ok(settings)
    }

    pub fn from_env(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::load(file, |k| std::env::var(k).ok())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError::Malformed {
                    var: "DATABASE_URL",
                    reason: "expected postgres://user@host:port/database".into(),
                });
            }
        }
        if !(self.nats_url.starts_with("nats://") || self.nats_url.starts_with("tls://")) {
            return Err(ConfigError::Malformed { var: "NATS_URL", reason: "expected nats://host:port".into() });
        }
        if self.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Malformed {
                var: "XDR_BIND",
                reason: format!("{:?} is not an address like 127.0.0.1:8000", self.bind),
            });
        }
        Ok(())
    }

    pub fn jwt_secret_key(&self) -> Result<&SecretString, ConfigError> {
        use secrecy::ExposeSecret;
        let key = self.jwt_secret_key.as_ref().ok_or(ConfigError::Missing("JWT_SECRET_KEY"))?;
        if key.expose_secret().len() < 32 {
            return Err(ConfigError::Malformed {
                var: "JWT_SECRET_KEY",
                reason: "must be at least 32 characters (use 32 random bytes, hex-encoded)".into(),
            });
        }
        Ok(key)
    }

    pub fn database_url(&self) -> Result<&str, ConfigError> {
        self.database_url.as_deref().ok_or(ConfigError::Missing("DATABASE_URL"))
    }
}

/// A positive whole number from the environment, or `default` when unset.
fn positive(env: &impl Fn(&str) -> Option<String>, var: &'static str, default: u64) -> Result<u64, ConfigError> {
    match env(var).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConfigError::Malformed { var, reason: format!("{v:?} is not a whole number above 0") }),
        },
    }
}

fn graphql_limits(env: &impl Fn(&str) -> Option<String>) -> Result<xdr_graphql::GraphqlLimits, ConfigError> {
    let d = xdr_graphql::GraphqlLimits::default();
    let count = |var, default: usize| positive(env, var, default as u64).map(|n| n as usize);
    Ok(xdr_graphql::GraphqlLimits {
        max_cost: count("XDR_GRAPHQL_MAX_COST", d.max_cost)?,
        max_depth: count("XDR_GRAPHQL_MAX_DEPTH", d.max_depth)?,
        max_root_fields: count("XDR_GRAPHQL_MAX_ROOT_FIELDS", d.max_root_fields)?,
        max_aliases: count("XDR_GRAPHQL_MAX_ALIASES", d.max_aliases)?,
        subscriptions_per_connection: count("XDR_SUBSCRIPTIONS_PER_CONNECTION", d.subscriptions_per_connection)?,
        subscriptions_per_user: count("XDR_SUBSCRIPTIONS_PER_USER", d.subscriptions_per_user)?,
        subscription_recheck: std::time::Duration::from_secs(positive(
            env,
            "XDR_SUBSCRIPTION_RECHECK_SECONDS",
            d.subscription_recheck.as_secs(),
        )?),
        subscription_poll: std::time::Duration::from_millis(positive(
            env,
            "XDR_SUBSCRIPTION_POLL_MS",
            d.subscription_poll.as_millis() as u64,
        )?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = Settings::load(None, env(&[])).unwrap();
        assert_eq!(s.nats_url, "nats://127.0.0.1:4222");
        assert_eq!(s.bind, "127.0.0.1:8000");
        assert!(matches!(s.database_url(), Err(ConfigError::Missing("DATABASE_URL"))));
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = std::env::temp_dir().join(format!("xdr-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("xdr.toml");
        std::fs::write(&file, "database_url = \"postgres://a@h/file\"\nxdr_bind = \"0.0.0.0:9000\"\n").unwrap();
        let s = Settings::load(Some(&file), env(&[("DATABASE_URL", "postgres://a@h/env")])).unwrap();
        assert_eq!(s.database_url().unwrap(), "postgres://a@h/env");
        assert_eq!(s.bind, "0.0.0.0:9000");
    }

    #[test]
    fn malformed_values_name_the_variable() {
        let err = Settings::load(None, env(&[("XDR_BIND", "localhost")])).unwrap_err();
        assert!(err.to_string().starts_with("XDR_BIND is malformed"), "{err}");
        let err = Settings::load(None, env(&[("DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().starts_with("DATABASE_URL is malformed"), "{err}");
        let err = Settings::load(Some(Path::new("/nonexistent/xdr.toml")), env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
    }

    #[test]
    fn graphql_limits_come_from_the_environment() {
        let s = Settings::load(None, env(&[])).unwrap();
        assert_eq!(s.graphql_limits.max_cost, xdr_graphql::GraphqlLimits::default().max_cost);
        let s = Settings::load(
            None,
            env(&[
                ("XDR_GRAPHQL_MAX_COST", "500"),
                ("XDR_SUBSCRIPTIONS_PER_USER", "3"),
                ("XDR_SUBSCRIPTION_POLL_MS", "50"),
            ]),
        )
        .unwrap();
        assert_eq!(s.graphql_limits.max_cost, 500);
        assert_eq!(s.graphql_limits.subscriptions_per_user, 3);
        assert_eq!(s.graphql_limits.subscription_poll, std::time::Duration::from_millis(50));
        let err = Settings::load(None, env(&[("XDR_GRAPHQL_MAX_ALIASES", "0")])).unwrap_err();
        assert!(err.to_string().starts_with("XDR_GRAPHQL_MAX_ALIASES is malformed"), "{err}");
    }

    #[test]
    fn tls_needs_both_certificate_and_key() {
        assert!(matches!(
            Settings::load(None, env(&[("XDR_TLS_CERT", "c.pem")])),
            Err(ConfigError::Missing("XDR_TLS_KEY"))
        ));
        let s = Settings::load(None, env(&[("XDR_TLS_CERT", "c.pem"), ("XDR_TLS_KEY", "k.pem")])).unwrap();
        assert_eq!(s.tls, Some(("c.pem".into(), "k.pem".into())));
    }

    #[test]
    fn unknown_keys_in_the_file_are_rejected() {
        let file = std::env::temp_dir().join(format!("xdr-config-bad-{}.toml", std::process::id()));
        std::fs::write(&file, "databse_url = \"x\"\n").unwrap();
        assert!(matches!(Settings::load(Some(&file), env(&[])), Err(ConfigError::Parse { .. })));
    }
}
