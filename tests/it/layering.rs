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
