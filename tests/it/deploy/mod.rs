//! Deployment artefacts under `deploy/`: the AWS start/stop/security-group scripts run
//! against fake `aws` and `kubectl` executables, and the Kubernetes manifests, Dockerfile
//! and Secret template are checked against each other and against the binary's contract.

mod aws_scripts;
mod manifests;

use std::path::{Path, PathBuf};

/// A path inside the repository (the root package's manifest directory).
fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}
