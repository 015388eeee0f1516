//! `mini-xdr models verify` through the real binary: a healthy models directory passes with
//! latency figures; a corrupted, missing or drifted model fails with exit 1 and says why.

use std::path::{Path, PathBuf};
use std::process::Output;

fn committed_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("inference/models")
}

fn mini_xdr(args: &[&str], models_dir: Option<&Path>) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mini-xdr"));
    cmd.args(args).env_remove("XDR_CONFIG").env_remove("XDR_MODELS_DIR");
    if let Some(dir) = models_dir {
        cmd.env("XDR_MODELS_DIR", dir);
    }
    cmd.output().expect("run mini-xdr")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn copy_models() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(committed_models()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

#[test]
fn verify_passes_on_the_committed_models_and_prints_latency() {
    let dir = committed_models();
    let out = mini_xdr(&["models", "verify", "--dir", dir.to_str().unwrap(), "--iterations", "40"], None);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for file in ["classifier.onnx", "classifier.json", "classifier.golden.json"] {
        assert!(text.contains(file), "{file} not listed:\n{text}");
    }
    assert!(text.contains("matches its metadata"), "{text}");
    assert!(text.contains("golden vectors reproduce onnxruntime"), "{text}");
    assert!(text.contains("latency batch   1: p50") && text.contains("latency batch  64: p50"), "{text}");
}

#[test]
fn verify_fails_on_a_corrupted_model_file() {
    let dir = copy_models();
    let path = dir.path().join("classifier.onnx");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    std::fs::write(&path, bytes).unwrap();
    // The directory comes from the environment here, the documented override.
    let out = mini_xdr(&["models", "verify", "--iterations", "5"], Some(dir.path()));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED") && text.contains("sha256") && text.contains("classifier.onnx"), "{text}");
}

#[test]
fn verify_fails_on_a_missing_model_file() {
    let dir = copy_models();
    std::fs::remove_file(dir.path().join("classifier.onnx")).unwrap();
    let out = mini_xdr(&["models", "verify", "--dir", dir.path().to_str().unwrap()], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED") && text.contains("cannot read") && text.contains("classifier.onnx"), "{text}");
}

#[test]
fn verify_fails_when_golden_outputs_no_longer_match() {
    let dir = copy_models();
    let path = dir.path().join("classifier.golden.json");
    let mut golden: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    golden["expected"][3][2] = serde_json::json!(0.5);
    std::fs::write(&path, serde_json::to_vec(&golden).unwrap()).unwrap();
    let out = mini_xdr(&["models", "verify", "--dir", dir.path().to_str().unwrap()], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("golden vectors differ"), "{text}");
}

#[test]
fn verify_fails_on_a_directory_that_does_not_exist() {
    let out = mini_xdr(&["models", "verify", "--dir", "/nonexistent/mini-xdr-models"], None);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("/nonexistent/mini-xdr-models"));
}
