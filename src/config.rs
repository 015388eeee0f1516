//! Settings: defaults, then an optional TOML file, then the contract's environment variables.

use secrecy::SecretString;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct Settings {
    /// The background roles' login (`DATABASE_URL`, a member of `xdr_worker`); also the
    /// owner tools' URL when `XDR_MIGRATE_DATABASE_URL` is unset.
    pub database_url: Option<String>,
    /// The schema owner (`XDR_MIGRATE_DATABASE_URL`): migrations and the operator's tools.
    pub migrate_database_url: Option<String>,
    /// The HTTP API's login (`XDR_API_DATABASE_URL`, a member of `xdr_api`).
    pub api_database_url: Option<String>,
    /// `XDR_DEV_SINGLE_DB_LOGIN=true`: development only — one owner URL (`DATABASE_URL`) for
    /// everything, each runtime pool dropping to its group with `SET ROLE` (no boundary).
    pub dev_single_db_login: bool,
    pub nats_url: String,
    pub bind: String,
    pub jwt_secret_key: Option<SecretString>,
    /// Seals second-factor secrets at rest (`ENCRYPTION_KEY`); without it nobody can enrol.
    pub encryption_key: Option<SecretString>,
    /// Keys of earlier rotations (`ENCRYPTION_KEY_PREVIOUS`, comma-separated): they still
    /// open the secrets they sealed.
    pub encryption_key_previous: Vec<SecretString>,
    /// Login attempts per minute per client address (`XDR_LOGIN_RATE_PER_MINUTE`).
    pub login_rate_per_minute: u32,
    /// HTTPS certificate chain and key (`XDR_TLS_CERT`, `XDR_TLS_KEY`, both or neither).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// GraphQL introspection (and so GraphiQL's schema view); `XDR_GRAPHQL_INTROSPECTION=false`
    /// switches it off in production.
    pub graphql_introspection: bool,
    /// Proxies of ours in front of the API (`XDR_TRUSTED_PROXY_HOPS`; 0: the socket peer is
    /// the client). The legacy `XDR_TRUST_FORWARDED_FOR=true` means one.
    pub trusted_proxy_hops: u8,
    /// Registrations and invitation acceptances per minute per client (`XDR_REGISTER_RATE_PER_MINUTE`).
    pub register_rate_per_minute: u32,
    /// Token refreshes per minute per client (`XDR_REFRESH_RATE_PER_MINUTE`).
    pub refresh_rate_per_minute: u32,
    /// Clients each rate limiter tracks at most (`XDR_RATE_LIMIT_MAX_CLIENTS`).
    pub rate_limit_max_clients: usize,
    /// Request body limits per route class (`XDR_BODY_LIMIT_BYTES`,
    /// `XDR_GRAPHQL_BODY_LIMIT_BYTES`, `XDR_INGEST_BODY_LIMIT_BYTES`).
    pub body_limits: xdr_graphql::BodyLimits,
    /// Origins allowed cross-origin calls, comma-separated (`XDR_CORS_ALLOWED_ORIGINS`; empty: off).
    pub cors_allowed_origins: Vec<String>,
    /// `/readyz` and `/metrics` of the API on their own listener (`XDR_PROBE_BIND`).
    pub probe_bind: Option<String>,
    /// The built dashboard served at `/` (`XDR_DASHBOARD_DIR`, default `dashboard/dist`).
    pub dashboard_dir: std::path::PathBuf,
    /// Bad passwords from unknown clients that lock the password path
    /// (`XDR_LOGIN_LOCKOUT_THRESHOLD`), for how long (`XDR_LOGIN_LOCKOUT_MINUTES`), and how
    /// long a device stays known after its last sign-in (`XDR_KNOWN_DEVICE_DAYS`).
    pub lockout: xdr_domain::identity::LockoutPolicy,
    /// GraphQL cost and subscription limits (`XDR_GRAPHQL_*`, `XDR_SUBSCRIPTION*`).
    pub graphql_limits: xdr_graphql::GraphqlLimits,
    /// Lifetime of an access token (`XDR_ACCESS_TOKEN_MINUTES`, default 480).
    pub access_token_ttl: chrono::Duration,
    /// Mail transport, sender and link base (`XDR_SMTP_URL`, `XDR_MAIL_*`, `XDR_PUBLIC_URL`).
    pub mail: crate::mail_settings::MailSettings,
    /// Password-reset requests per minute per client and per address
    /// (`XDR_PASSWORD_RESET_RATE_PER_MINUTE`, default 5).
    pub password_reset_rate_per_minute: u32,
    /// Observations the detector holds in its windows at most, all sources together
    /// (`XDR_DETECTOR_MAX_OBSERVATIONS`, default 1 000 000 ≈ 500 MiB).
    pub detector_max_observations: usize,
}

/// The TOML file's shape: every key optional, names as the environment variables in lower case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database_url: Option<String>,
    xdr_migrate_database_url: Option<String>,
    xdr_api_database_url: Option<String>,
    xdr_dev_single_db_login: Option<bool>,
    nats_url: Option<String>,
    xdr_bind: Option<String>,
    jwt_secret_key: Option<String>,
    encryption_key: Option<String>,
    encryption_key_previous: Option<String>,
    xdr_login_rate_per_minute: Option<u32>,
    xdr_trust_forwarded_for: Option<bool>,
    xdr_trusted_proxy_hops: Option<u8>,
    xdr_dashboard_dir: Option<String>,
    xdr_login_lockout_threshold: Option<u32>,
    xdr_login_lockout_minutes: Option<u32>,
    xdr_known_device_days: Option<u32>,
    xdr_access_token_minutes: Option<u32>,
    xdr_smtp_url: Option<String>,
    xdr_mail_dir: Option<String>,
    xdr_mail_from: Option<String>,
    xdr_public_url: Option<String>,
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
        // A positive whole number from the environment, else the file, else `default`.
        let count = |var: &'static str, file_value: Option<u32>, default: u32| -> Result<u32, ConfigError> {
            let n = match env(var).filter(|v| !v.is_empty()) {
                Some(v) => v
                    .parse()
                    .map_err(|_| ConfigError::Malformed { var, reason: format!("{v:?} is not a whole number") })?,
                None => file_value.unwrap_or(default),
            };
            if n == 0 {
                return Err(ConfigError::Malformed { var, reason: "must be at least 1".into() });
            }
            Ok(n)
        };
        let defaults = xdr_domain::identity::LockoutPolicy::default();
        let lockout = xdr_domain::identity::LockoutPolicy {
            max_failures: count(
                "XDR_LOGIN_LOCKOUT_THRESHOLD",
                from_file.xdr_login_lockout_threshold,
                defaults.max_failures,
            )?,
            lockout: chrono::Duration::minutes(i64::from(count(
                "XDR_LOGIN_LOCKOUT_MINUTES",
                from_file.xdr_login_lockout_minutes,
                defaults.lockout.num_minutes() as u32,
            )?)),
            known_device_lifetime: chrono::Duration::days(i64::from(count(
                "XDR_KNOWN_DEVICE_DAYS",
                from_file.xdr_known_device_days,
                defaults.known_device_lifetime.num_days() as u32,
            )?)),
        };
        let bind = pick("XDR_BIND", from_file.xdr_bind.clone()).unwrap_or_else(|| "127.0.0.1:8000".into());
        let mail_file = crate::mail_settings::MailFileSettings {
            xdr_smtp_url: from_file.xdr_smtp_url.clone(),
            xdr_mail_dir: from_file.xdr_mail_dir.clone(),
            xdr_mail_from: from_file.xdr_mail_from.clone(),
            xdr_public_url: from_file.xdr_public_url.clone(),
        };
        let settings = Settings {
            database_url: pick("DATABASE_URL", from_file.database_url),
            migrate_database_url: pick("XDR_MIGRATE_DATABASE_URL", from_file.xdr_migrate_database_url),
            api_database_url: pick("XDR_API_DATABASE_URL", from_file.xdr_api_database_url),
            dev_single_db_login: match env("XDR_DEV_SINGLE_DB_LOGIN").filter(|v| !v.is_empty()) {
                Some(v) => matches!(v.as_str(), "1" | "true" | "yes"),
                None => from_file.xdr_dev_single_db_login.unwrap_or(false),
            },
            nats_url: pick("NATS_URL", from_file.nats_url).unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
            bind: bind.clone(),
            jwt_secret_key: pick("JWT_SECRET_KEY", from_file.jwt_secret_key).map(SecretString::from),
            encryption_key: pick("ENCRYPTION_KEY", from_file.encryption_key).map(SecretString::from),
            encryption_key_previous: pick("ENCRYPTION_KEY_PREVIOUS", from_file.encryption_key_previous)
                .map(|keys| keys.split(',').map(str::trim).filter(|k| !k.is_empty()).map(SecretString::from).collect())
                .unwrap_or_default(),
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
            trusted_proxy_hops: match number::<u8>(&env, "XDR_TRUSTED_PROXY_HOPS")? {
                Some(hops) => hops,
                None => from_file.xdr_trusted_proxy_hops.unwrap_or_else(|| {
                    let legacy = match env("XDR_TRUST_FORWARDED_FOR").filter(|v| !v.is_empty()) {
                        Some(v) => matches!(v.as_str(), "1" | "true" | "yes"),
                        None => from_file.xdr_trust_forwarded_for.unwrap_or(false),
                    };
                    u8::from(legacy)
                }),
            },
            register_rate_per_minute: number(&env, "XDR_REGISTER_RATE_PER_MINUTE")?.unwrap_or(10),
            refresh_rate_per_minute: number(&env, "XDR_REFRESH_RATE_PER_MINUTE")?.unwrap_or(60),
            rate_limit_max_clients: number(&env, "XDR_RATE_LIMIT_MAX_CLIENTS")?
                .unwrap_or(xdr_graphql::DEFAULT_MAX_CLIENTS),
            body_limits: {
                let defaults = xdr_graphql::BodyLimits::default();
                xdr_graphql::BodyLimits {
                    api: number(&env, "XDR_BODY_LIMIT_BYTES")?.unwrap_or(defaults.api),
                    graphql: number(&env, "XDR_GRAPHQL_BODY_LIMIT_BYTES")?.unwrap_or(defaults.graphql),
                    ingest: number(&env, "XDR_INGEST_BODY_LIMIT_BYTES")?.unwrap_or(defaults.ingest),
                }
            },
            cors_allowed_origins: env("XDR_CORS_ALLOWED_ORIGINS")
                .unwrap_or_default()
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            probe_bind: env("XDR_PROBE_BIND").filter(|v| !v.is_empty()),
            dashboard_dir: pick("XDR_DASHBOARD_DIR", from_file.xdr_dashboard_dir)
                .unwrap_or_else(|| "dashboard/dist".into())
                .into(),
            lockout,
            graphql_limits: graphql_limits(&env)?,
            access_token_ttl: chrono::Duration::minutes(i64::from(count(
                "XDR_ACCESS_TOKEN_MINUTES",
                from_file.xdr_access_token_minutes,
                xdr_commands::auth::tokens::ACCESS_TTL.num_minutes() as u32,
            )?)),
            mail: crate::mail_settings::MailSettings::load(&env, mail_file, &bind)?,
            password_reset_rate_per_minute: number(&env, "XDR_PASSWORD_RESET_RATE_PER_MINUTE")?.unwrap_or(5),
            detector_max_observations: number(&env, "XDR_DETECTOR_MAX_OBSERVATIONS")?
                .unwrap_or(xdr_inference::detector::DEFAULT_MAX_OBSERVATIONS),
        };
        settings.validate()?;
        Ok(settings)
    }

    pub fn from_env(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::load(file, |k| std::env::var(k).ok())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (var, url) in [
            ("DATABASE_URL", &self.database_url),
            ("XDR_MIGRATE_DATABASE_URL", &self.migrate_database_url),
            ("XDR_API_DATABASE_URL", &self.api_database_url),
        ] {
            if let Some(url) = url {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(ConfigError::Malformed {
                        var,
                        reason: "expected postgres://user@host:port/database".into(),
                    });
                }
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
        if let Some(probes) = &self.probe_bind {
            if probes.parse::<std::net::SocketAddr>().is_err() {
                return Err(ConfigError::Malformed {
                    var: "XDR_PROBE_BIND",
                    reason: format!("{probes:?} is not an address like 0.0.0.0:9090"),
                });
            }
        }
        for origin in &self.cors_allowed_origins {
            if !(origin.starts_with("https://") || origin.starts_with("http://")) || origin.matches('/').count() != 2 {
                return Err(ConfigError::Malformed {
                    var: "XDR_CORS_ALLOWED_ORIGINS",
                    reason: format!("{origin:?} is not an origin like https://console.example.com"),
                });
            }
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

    /// The background roles' login.
    pub fn database_url(&self) -> Result<&str, ConfigError> {
        self.database_url.as_deref().ok_or(ConfigError::Missing("DATABASE_URL"))
    }

    /// The owner's URL: `XDR_MIGRATE_DATABASE_URL`, else `DATABASE_URL` (a single-URL setup,
    /// or a tool run where only the worker login is at hand: then owner-only steps fail with
    /// PostgreSQL's "permission denied").
    pub fn migrate_database_url(&self) -> Result<&str, ConfigError> {
        self.migrate_database_url
            .as_deref()
            .or(self.database_url.as_deref())
            .ok_or(ConfigError::Missing("DATABASE_URL"))
    }

    /// The API's login: `XDR_API_DATABASE_URL`, or `DATABASE_URL` in single-login development.
    pub fn api_database_url(&self) -> Result<&str, ConfigError> {
        match (&self.api_database_url, self.dev_single_db_login) {
            (Some(url), _) => Ok(url),
            (None, true) => self.database_url(),
            (None, false) => Err(ConfigError::Missing("XDR_API_DATABASE_URL")),
        }
    }
}

/// A whole number from the environment; `None` when unset or empty.
fn number<T: std::str::FromStr>(
    env: &impl Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<Option<T>, ConfigError> {
    match env(var).filter(|v| !v.trim().is_empty()) {
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ConfigError::Malformed { var, reason: format!("{v:?} is not a whole number in range") }),
        None => Ok(None),
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
    fn access_tokens_live_eight_hours_unless_set_and_never_zero() {
        assert_eq!(Settings::load(None, env(&[])).unwrap().access_token_ttl, chrono::Duration::hours(8));
        let short = Settings::load(None, env(&[("XDR_ACCESS_TOKEN_MINUTES", "2")])).unwrap();
        assert_eq!(short.access_token_ttl, chrono::Duration::minutes(2));
        for bad in ["0", "eight hours"] {
            let err = Settings::load(None, env(&[("XDR_ACCESS_TOKEN_MINUTES", bad)])).unwrap_err();
            assert!(err.to_string().contains("XDR_ACCESS_TOKEN_MINUTES"), "{err}");
        }
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
    fn each_role_has_its_database_url_and_only_dev_mode_shares_one() {
        let s = Settings::load(None, env(&[("DATABASE_URL", "postgres://worker@h/db")])).unwrap();
        assert_eq!(s.migrate_database_url().unwrap(), "postgres://worker@h/db");
        assert!(matches!(s.api_database_url(), Err(ConfigError::Missing("XDR_API_DATABASE_URL"))));
        let s = Settings::load(
            None,
            env(&[
                ("DATABASE_URL", "postgres://worker@h/db"),
                ("XDR_API_DATABASE_URL", "postgres://api@h/db"),
                ("XDR_MIGRATE_DATABASE_URL", "postgres://owner@h/db"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (s.database_url().unwrap(), s.api_database_url().unwrap(), s.migrate_database_url().unwrap()),
            ("postgres://worker@h/db", "postgres://api@h/db", "postgres://owner@h/db")
        );
        let s = Settings::load(
            None,
            env(&[("DATABASE_URL", "postgres://owner@h/db"), ("XDR_DEV_SINGLE_DB_LOGIN", "true")]),
        )
        .unwrap();
        assert_eq!(s.api_database_url().unwrap(), "postgres://owner@h/db");
        let err = Settings::load(None, env(&[("XDR_API_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().starts_with("XDR_API_DATABASE_URL is malformed"), "{err}");
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
    fn the_lockout_policy_comes_from_the_environment_and_refuses_zero() {
        let s = Settings::load(None, env(&[])).unwrap();
        assert_eq!(s.lockout, xdr_domain::identity::LockoutPolicy::default());
        let s = Settings::load(
            None,
            env(&[
                ("XDR_LOGIN_LOCKOUT_THRESHOLD", "8"),
                ("XDR_LOGIN_LOCKOUT_MINUTES", "30"),
                ("XDR_KNOWN_DEVICE_DAYS", "7"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (s.lockout.max_failures, s.lockout.lockout.num_minutes(), s.lockout.known_device_lifetime.num_days()),
            (8, 30, 7)
        );
        let err = Settings::load(None, env(&[("XDR_LOGIN_LOCKOUT_THRESHOLD", "0")])).unwrap_err();
        assert!(err.to_string().starts_with("XDR_LOGIN_LOCKOUT_THRESHOLD is malformed"), "{err}");
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
    fn trusted_proxy_hops_default_to_none_and_the_legacy_switch_means_one() {
        assert_eq!(Settings::load(None, env(&[])).unwrap().trusted_proxy_hops, 0);
        let legacy = Settings::load(None, env(&[("XDR_TRUST_FORWARDED_FOR", "true")])).unwrap();
        assert_eq!(legacy.trusted_proxy_hops, 1);
        let both = [("XDR_TRUST_FORWARDED_FOR", "true"), ("XDR_TRUSTED_PROXY_HOPS", "2")];
        assert_eq!(Settings::load(None, env(&both)).unwrap().trusted_proxy_hops, 2);
        let err = Settings::load(None, env(&[("XDR_TRUSTED_PROXY_HOPS", "-1")])).unwrap_err();
        assert!(err.to_string().starts_with("XDR_TRUSTED_PROXY_HOPS is malformed"), "{err}");
    }

    #[test]
    fn body_limits_cors_and_the_probe_listener_come_from_the_environment() {
        let s = Settings::load(
            None,
            env(&[
                ("XDR_GRAPHQL_BODY_LIMIT_BYTES", "2048"),
                ("XDR_CORS_ALLOWED_ORIGINS", "https://a.example.com, https://b.example.com/"),
                ("XDR_PROBE_BIND", "0.0.0.0:9090"),
            ]),
        )
        .unwrap();
        assert_eq!(s.body_limits.graphql, 2048);
        assert_eq!(s.body_limits.api, xdr_graphql::BodyLimits::default().api);
        assert_eq!(s.cors_allowed_origins, ["https://a.example.com", "https://b.example.com"]);
        assert_eq!(s.probe_bind.as_deref(), Some("0.0.0.0:9090"));
        let err = Settings::load(None, env(&[("XDR_CORS_ALLOWED_ORIGINS", "*")])).unwrap_err();
        assert!(err.to_string().starts_with("XDR_CORS_ALLOWED_ORIGINS is malformed"), "{err}");
    }

    #[test]
    fn unknown_keys_in_the_file_are_rejected() {
        let file = std::env::temp_dir().join(format!("xdr-config-bad-{}.toml", std::process::id()));
        std::fs::write(&file, "databse_url = \"x\"\n").unwrap();
        assert!(matches!(Settings::load(Some(&file), env(&[])), Err(ConfigError::Parse { .. })));
    }
}
