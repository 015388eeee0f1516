//! The committed classifier: tract reproduces onnxruntime's golden outputs, and every way a
//! model directory can be broken gives its own clear error.

use std::path::{Path, PathBuf};
use xdr_inference::features::{FeatureVector, N_FEATURES};
use xdr_inference::model::{Classifier, ModelError};

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// A scratch copy of the models directory that a test may break.
fn copy_models() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(models_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

fn edit_metadata(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("classifier.json");
    let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut meta);
    std::fs::write(path, serde_json::to_vec(&meta).unwrap()).unwrap();
}

#[test]
fn tract_matches_the_onnxruntime_golden_outputs_within_1e_5() {
    let classifier = Classifier::load(&models_dir()).unwrap();
    let golden = classifier.golden().unwrap();
    assert!(golden.inputs.len() >= 20 && golden.tolerance <= 1e-5);
    let vectors: Vec<FeatureVector> = golden
        .inputs
        .iter()
        .map(|row| FeatureVector(row.iter().map(|v| *v as f32).collect::<Vec<_>>().try_into().unwrap()))
        .collect();
    let got = classifier.predict(&vectors).unwrap();
    assert_eq!(got.len(), golden.expected.len());
    for (i, (probs, expected)) in got.iter().zip(&golden.expected).enumerate() {
        assert_eq!(probs.classes.len(), 7);
        for ((class, p), e) in probs.classes.iter().zip(expected) {
            assert!(
                (*p as f64 - e).abs() <= 1e-5,
                "row {i} ({}) class {class}: tract {p}, onnxruntime {e}",
                golden.labels[i]
            );
        }
        let sum: f32 = probs.classes.iter().map(|(_, p)| p).sum();
        assert!((sum - 1.0).abs() < 1e-4);
    }
    assert!(classifier.check_golden().unwrap() <= 1e-5);
    // One vector at a time (its own plan) gives the same answer as the batch.
    for (v, batch_row) in vectors.iter().zip(&got) {
        let single = classifier.predict(std::slice::from_ref(v)).unwrap();
        for ((_, a), (_, b)) in single[0].classes.iter().zip(&batch_row.classes) {
            assert!((a - b).abs() <= 1e-6, "single {a} vs batch {b}");
        }
    }
}

#[test]
fn classes_are_in_the_documented_order_and_predictions_follow_the_golden_labels() {
    let classifier = Classifier::load(&models_dir()).unwrap();
    assert_eq!(classifier.classes(), ["normal", "ddos", "recon", "brute_force", "web_attack", "malware_botnet", "apt"]);
    let golden = classifier.golden().unwrap();
    let vectors: Vec<FeatureVector> = golden
        .inputs
        .iter()
        .map(|row| FeatureVector(row.iter().map(|v| *v as f32).collect::<Vec<_>>().try_into().unwrap()))
        .collect();
    let got = classifier.predict(&vectors).unwrap();
    // The simulated held-out windows are mostly classified as what they are.
    let right = got.iter().zip(&golden.labels).filter(|(p, label)| p.top().0 == label.as_str()).count();
    assert!(right >= 20, "{right} of 28 golden windows classified as labelled");
    assert!(classifier.predict(&[]).unwrap().is_empty());
}

#[test]
fn a_corrupted_model_file_fails_the_hash_check() {
    let dir = copy_models();
    let path = dir.path().join("classifier.onnx");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let err = Classifier::load(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains("classifier.onnx") && err.to_string().contains("sha256"), "{err}");
}

#[test]
fn a_missing_model_file_or_metadata_is_reported_by_path() {
    let dir = copy_models();
    std::fs::remove_file(dir.path().join("classifier.onnx")).unwrap();
    let err = Classifier::load(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::Io { .. }), "{err}");
    assert!(err.to_string().contains("classifier.onnx"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = Classifier::load(empty.path()).unwrap_err();
    assert!(matches!(err, ModelError::Io { .. }) && err.to_string().contains("classifier.json"), "{err}");
}

#[test]
fn a_file_that_is_not_an_onnx_graph_is_unloadable_even_with_a_matching_hash() {
    use sha2::Digest;
    let dir = copy_models();
    let garbage = b"this is not a protobuf graph".repeat(10);
    std::fs::write(dir.path().join("classifier.onnx"), &garbage).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(&garbage));
    edit_metadata(dir.path(), |m| m["sha256"] = sha.into());
    let err = Classifier::load(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::Unloadable { .. }), "{err}");
}

#[test]
fn metadata_with_the_wrong_class_count_is_a_shape_error_at_load() {
    let dir = copy_models();
    edit_metadata(dir.path(), |m| {
        m["classes"].as_array_mut().unwrap().pop();
    });
    let err = Classifier::load(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::Unloadable { .. }) && err.to_string().contains("[N, 6]"), "{err}");
}

#[test]
fn a_model_for_another_feature_layout_is_refused() {
    let dir = copy_models();
    edit_metadata(dir.path(), |m| m["feature_version"] = 99.into());
    let err = Classifier::load(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::FeatureMismatch { found_version: 99, .. }), "{err}");
}

#[test]
fn golden_outputs_that_drift_fail_the_golden_check() {
    let dir = copy_models();
    let path = dir.path().join("classifier.golden.json");
    let mut golden: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let first = &mut golden["expected"][0][0];
    *first = (first.as_f64().unwrap() + 1e-3).into();
    std::fs::write(&path, serde_json::to_vec(&golden).unwrap()).unwrap();
    let classifier = Classifier::load(dir.path()).unwrap();
    assert!(matches!(classifier.check_golden(), Err(ModelError::GoldenMismatch { .. })));
}

#[test]
fn the_vector_width_is_the_models_input_width() {
    let classifier = Classifier::load(&models_dir()).unwrap();
    assert_eq!(classifier.metadata().feature_names.len(), N_FEATURES);
}
