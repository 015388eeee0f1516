//! Where the process's logs go and in what shape: `XDR_LOG_FORMAT=json|text` on stderr.
//! JSON (one object a line, never colour) unless stderr is a terminal; colour only on a
//! terminal. Every JSON line names the role (the subcommand) the process runs.

use std::io::IsTerminal;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    /// `XDR_LOG_FORMAT` when set, else by whether stderr is a terminal (a person reading).
    pub fn from_env() -> anyhow::Result<LogFormat> {
        match std::env::var("XDR_LOG_FORMAT").ok().as_deref().map(str::trim) {
            None | Some("") if std::io::stderr().is_terminal() => Ok(LogFormat::Text),
            None | Some("") => Ok(LogFormat::Json),
            Some(v) if v.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            Some(v) if v.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
            Some(other) => anyhow::bail!("XDR_LOG_FORMAT must be json or text, not {other:?}"),
        }
    }
}

/// Installs the global subscriber; `role` is the subcommand (`serve`, `projector`, ...).
pub fn init(format: LogFormat, role: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,tract_linalg=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => {
            let json = tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(true);
            builder
                .with_ansi(false)
                .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .event_format(WithRole { role: role.to_owned(), inner: json })
                .init()
        }
    }
}

/// The JSON line of `inner` with `"role"` first: the role is process-wide, and a span would not
/// reach the tasks the role spawns.
struct WithRole<F> {
    role: String,
    inner: F,
}

impl<S, N, F> FormatEvent<S, N> for WithRole<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => {
                let role = serde_json::to_string(&self.role).map_err(|_| std::fmt::Error)?;
                write!(writer, "{{\"role\":{role},{rest}")
            }
            None => writer.write_str(&line),
        }
    }
}
