//! `mini-xdr bench …` runs from the bench crate: each in a scratch database of its own, and
//! the soak writes its CSV and PNG from a real (short) run of every role.

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

#[test]
fn a_short_soak_writes_a_csv_with_every_role_and_a_png() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    let out = bench(&["soak", "--seconds", "8", "--rate", "40", "--sample-secs", "2", "--out", out_dir]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("soak passed"), "{stdout}");

    let csv = std::fs::read_to_string(dir.path().join("soak.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for role in ["api", "ingestor", "relay", "projector", "detector", "scheduler"] {
        assert!(header.contains(&format!("rss_{role}_mib").as_str()), "{header:?}");
    }
    let rows: Vec<Vec<f64>> = lines.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    // The first sample, one every 2 s, and the last.
    assert!(rows.len() >= 4, "{csv}");
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let last = rows.last().unwrap();
    for row in &rows {
        assert_eq!(row.len(), header.len(), "{csv}");
        for role in ["api", "ingestor", "relay", "projector", "detector", "scheduler"] {
            let rss = row[column(&format!("rss_{role}_mib"))];
            assert!(rss > 1.0 && rss < 2_000.0, "{role} RSS {rss} MiB: {csv}");
        }
    }
    // ≈ 40 records/s for 8 s were offered and reached the log.
    let published = last[column("published")];
    assert!((250.0..=400.0).contains(&published), "{csv}");
    assert!(last[column("committed")] > 0.0, "nothing committed: {csv}");
    assert!(rows.windows(2).all(|w| w[1][column("seconds")] > w[0][column("seconds")]), "{csv}");

    let png = std::fs::read(dir.path().join("soak.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "{} bytes", png.len());
}
