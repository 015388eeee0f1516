//! `mini-xdr bench …` runs from the bench crate, each in a scratch database of its own.

use std::process::Command;

use crate::support::repo;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mini-xdr"))
        .arg("bench")
        .args(args)
        .current_dir(repo("."))
        .env("DATABASE_URL", xdr_commands::testing::server_url())
        .env_remove("XDR_MIGRATE_DATABASE_URL")
        .env_remove("XDR_CONFIG")
        .output()
        .expect("run mini-xdr bench")
}

#[test]
fn bench_append_reports_its_ratio_from_a_scratch_database() {
    let out = bench(&["append", "--events", "200", "--batch", "50"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("events: 200  batch: 50"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("ratio:")), "{stdout}");
}
