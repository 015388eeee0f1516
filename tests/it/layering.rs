//! The crates form layers (docs/ARCHITECTURE.md, "Crates"): each may depend only on the
//! layers below it, and the domain on no IO at all. These tests read the manifests, so a
//! dependency added in the wrong direction fails here, not in review.

use std::collections::BTreeSet;
use std::path::Path;

/// Each workspace crate and the workspace crates it may depend on (normal dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("commands", &["xdr-domain"]),
    ("projections", &["xdr-domain", "xdr-commands"]),
    // Audit reads the log through the store and rebuilds read models with the projections.
    ("audit", &["xdr-domain", "xdr-commands", "xdr-projections"]),
    ("inference", &["xdr-domain", "xdr-commands", "xdr-projections"]),
    ("graphql", &["xdr-domain", "xdr-commands", "xdr-projections", "xdr-inference"]),
    // Until the gateway's wire types move down to the domain (issue #16).
    ("agent", &["xdr-domain", "xdr-commands", "xdr-graphql"]),
    // Benchmarks drive every layer, the agent included; nothing depends on them but the binary.
    ("bench", &["xdr-domain", "xdr-commands", "xdr-projections", "xdr-inference", "xdr-graphql", "xdr-agent"]),
];

/// Crates that would bring IO, async or a clock into the pure domain.
const IMPURE_FOR_DOMAIN: &[&str] =
    &["tokio", "sqlx", "async-nats", "reqwest", "actix-web", "futures", "rand", "tracing", "async-graphql"];

fn manifest(dir: &str) -> toml::Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn normal_dependencies(manifest: &toml::Table) -> BTreeSet<String> {
    manifest.get("dependencies").and_then(|d| d.as_table()).map(|d| d.keys().cloned().collect()).unwrap_or_default()
}

#[test]
fn workspace_crates_depend_only_downwards() {
    let root = manifest(".");
    let members: BTreeSet<String> = root["workspace"]["members"]
        .as_array()
        .expect("workspace members")
        .iter()
        .map(|m| m.as_str().expect("member name").to_owned())
        .collect();
    let listed: BTreeSet<String> = ALLOWED.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(members, listed, "every workspace crate has a place in the layer table");

    for (dir, allowed) in ALLOWED {
        let ours: BTreeSet<String> =
            normal_dependencies(&manifest(dir)).into_iter().filter(|d| d.starts_with("xdr-")).collect();
        let allowed: BTreeSet<String> = allowed.iter().map(|d| d.to_string()).collect();
        let upward: Vec<&String> = ours.difference(&allowed).collect();
        assert!(upward.is_empty(), "crate `{dir}` depends on {upward:?}, which are not below it");
    }
}

#[test]
fn the_domain_has_no_io_and_no_clock() {
    let domain = manifest("domain");
    let deps = normal_dependencies(&domain);
    let impure: Vec<&str> = IMPURE_FOR_DOMAIN.iter().copied().filter(|d| deps.contains(*d)).collect();
    assert!(impure.is_empty(), "the domain crate depends on {impure:?}");

    // Feature unification can still hand the domain a clock through another crate, so the
    // calls themselves are forbidden by the domain's clippy.toml, which must stay in force.
    let clippy = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("domain/clippy.toml"))
        .expect("domain/clippy.toml");
    let clippy: toml::Table = clippy.parse().expect("domain/clippy.toml parses");
    let forbidden: BTreeSet<&str> = clippy["disallowed-methods"]
        .as_array()
        .expect("disallowed-methods")
        .iter()
        .filter_map(|m| m.get("path").and_then(|p| p.as_str()))
        .collect();
    for method in ["chrono::Utc::now", "std::time::SystemTime::now", "std::time::Instant::now", "uuid::Uuid::new_v4"] {
        assert!(forbidden.contains(method), "domain/clippy.toml must forbid {method}");
    }
}

/// Where SQL may name the event log: the store module. (Projection statements that read the
/// log in SQL take their `FROM` clause from `xdr_commands::org_log_range!`, defined there.)
const STORE_MODULE: &str = "commands/src/store";

/// Whether a line of Rust names the `event_log` table outside a comment.
fn names_event_log(line: &str) -> bool {
    let code = line.trim_start();
    if code.starts_with("//") {
        return false;
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    code.match_indices("event_log").any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + "event_log".len()..].chars().next();
        !word(before) && !word(after)
    })
}

fn rust_sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_the_store_module_writes_event_log_sql() {
    assert!(names_event_log(r#"sqlx::query("SELECT hash FROM event_log WHERE org_id = $1")"#));
    assert!(names_event_log("         FROM event_log \\"));
    assert!(!names_event_log("/// Projected over the org's `event_log` range."));
    assert!(!names_event_log(r#"pub const NOTIFY_CHANNEL: &str = "xdr_event_log";"#));

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest(".");
    let mut dirs = vec!["src".to_owned()];
    for member in workspace["workspace"]["members"].as_array().expect("workspace members") {
        dirs.push(format!("{}/src", member.as_str().expect("member name")));
    }
    let mut files = Vec::new();
    for dir in &dirs {
        rust_sources(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "found only {} source files: is the walk right?", files.len());
    let mut leaks = Vec::new();
    for file in files {
        let relative = file.strip_prefix(root).expect("under the workspace").to_string_lossy().replace('\\', "/");
        if relative.starts_with(STORE_MODULE) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{relative}: {e}"));
        for (n, line) in text.lines().enumerate() {
            if names_event_log(line) {
                leaks.push(format!("{relative}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(leaks.is_empty(), "event_log SQL outside {STORE_MODULE} (add a named query there):\n{}", leaks.join("\n"));
}

/// Whether a line of Rust names a read-model table (`rm_…`, `action_schedule`) outside a comment.
fn names_read_model(line: &str) -> bool {
    let code = line.trim_start();
    if code.starts_with("//") {
        return false;
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let starts_word = |at: usize| !word(code[..at].chars().next_back());
    code.match_indices("rm_").any(|(at, _)| starts_word(at) && word(code[at + 3..].chars().next()))
        || code.match_indices("action_schedule").any(|(at, _)| starts_word(at))
}

#[test]
fn the_write_side_reads_no_read_model_table() {
    assert!(names_read_model(r#"sqlx::query("SELECT action_id FROM rm_actions WHERE org_id = $1")"#));
    assert!(names_read_model(r#""SELECT org_id FROM action_schedule WHERE due_at <= $1""#));
    assert!(!names_read_model("//! `rm_actions` is the projection's."));

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_sources(&root.join("commands/src"), &mut files);
    let mut leaks = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (n, line) in text.lines().enumerate() {
            if names_read_model(line) {
                leaks.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "the write side (commands/src) reads read-model tables; ask a projections query instead:\n{}",
        leaks.join("\n")
    );
}
