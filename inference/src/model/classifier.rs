//! The window classifier: the committed ONNX model run with tract, after checking that the
//! file is the one its metadata describes (sha256) and speaks our feature layout.
//!
//! Inference is CPU-bound and synchronous. From async code call it through
//! `tokio::task::spawn_blocking` (the `Classifier` is `Send + Sync` and cheap to share in an
//! `Arc`), so a batch never stalls the runtime's worker threads.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tract_onnx::prelude::*;

use super::ModelError;
use crate::features::vector::{FEATURE_NAMES, FEATURE_VERSION};
use crate::features::{FeatureVector, N_FEATURES};

/// Metadata file of the classifier inside a models directory.
pub const METADATA_FILE: &str = "classifier.json";

/// `classifier.json`, written by `inference/train/train.py`. Unknown fields are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct ClassifierMetadata {
    pub name: String,
    pub model_file: String,
    pub sha256: String,
    pub golden_file: String,
    pub input_name: String,
    pub output_name: String,
    pub feature_version: u32,
    pub feature_names: Vec<String>,
    pub classes: Vec<String>,
}

/// `classifier.golden.json`: inputs and the training runtime's outputs for them.
#[derive(Debug, Clone, Deserialize)]
pub struct GoldenVectors {
    pub runtime: String,
    pub tolerance: f64,
    pub inputs: Vec<Vec<f64>>,
    pub labels: Vec<String>,
    pub expected: Vec<Vec<f64>>,
}

/// One window's class probabilities, in the model's class order (they sum to 1).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassProbabilities {
    pub classes: Vec<(String, f32)>,
}

impl ClassProbabilities {
    /// The most likely class and its probability.
    pub fn top(&self) -> (&str, f32) {
        self.classes.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|(c, p)| (c.as_str(), *p)).unwrap_or(("", 0.0))
    }

    pub fn get(&self, class: &str) -> Option<f32> {
        self.classes.iter().find(|(c, _)| c == class).map(|(_, p)| *p)
    }
}

type Plan = TypedRunnableModel<TypedModel>;

/// Batch sizes that get a plan of their own: tract optimizes a concrete shape better than
/// the symbolic batch (≈ 1.3–1.5× in `bench inference`). Other sizes use the symbolic plan.
pub const FIXED_BATCHES: [usize; 2] = [1, 64];

/// The loaded classifier. Build once, share, call `predict` from a blocking thread.
#[derive(Debug)]
pub struct Classifier {
    meta: ClassifierMetadata,
    dir: PathBuf,
    plan: Plan,
    fixed: Vec<(usize, Plan)>,
}

impl Classifier {
    /// Load `dir/classifier.json`, check the model file's sha256 and feature layout against
    /// it, and optimize the graph for a dynamic batch size.
    pub fn load(dir: &Path) -> Result<Classifier, ModelError> {
        let meta: ClassifierMetadata = read_json(&dir.join(METADATA_FILE))?;
        if meta.feature_version != FEATURE_VERSION || meta.feature_names != FEATURE_NAMES {
            return Err(ModelError::FeatureMismatch {
                expected_version: FEATURE_VERSION,
                found_version: meta.feature_version,
            });
        }
        if meta.classes.is_empty() {
            return Err(ModelError::Metadata { path: dir.join(METADATA_FILE), reason: "no classes".into() });
        }
        let model_path = dir.join(&meta.model_file);
        let bytes = read(&model_path)?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(&meta.sha256) {
            return Err(ModelError::HashMismatch { path: model_path, expected: meta.sha256.clone(), actual });
        }
        let unloadable = |e: TractError| ModelError::Unloadable { path: model_path.clone(), reason: format!("{e:#}") };
        let plan = build_plan(&bytes, meta.classes.len(), None).map_err(unloadable)?;
        let fixed = FIXED_BATCHES
            .iter()
            .map(|&b| Ok((b, build_plan(&bytes, meta.classes.len(), Some(b)).map_err(unloadable)?)))
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Classifier { meta, dir: dir.to_owned(), plan, fixed })
    }

    pub fn metadata(&self) -> &ClassifierMetadata {
        &self.meta
    }

    pub fn classes(&self) -> &[String] {
        &self.meta.classes
    }

    /// Class probabilities for each vector, in input order. An empty batch gives an empty result.
    pub fn predict(&self, vectors: &[FeatureVector]) -> Result<Vec<ClassProbabilities>, ModelError> {
        if vectors.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.predict_raw(vectors)?;
        Ok(rows
            .chunks(self.meta.classes.len())
            .map(|row| ClassProbabilities {
                classes: self.meta.classes.iter().cloned().zip(row.iter().copied()).collect(),
            })
            .collect())
    }

    /// The output tensor, row-major `[vectors.len(), classes]`.
    pub fn predict_raw(&self, vectors: &[FeatureVector]) -> Result<Vec<f32>, ModelError> {
        let n = vectors.len();
        let flat: Vec<f32> = vectors.iter().flat_map(|v| v.0).collect();
        let input = tract_ndarray::Array2::from_shape_vec((n, N_FEATURES), flat)
            .map_err(|e| ModelError::Shape(e.to_string()))?;
        let plan = self.fixed.iter().find(|(b, _)| *b == n).map_or(&self.plan, |(_, p)| p);
        let out = plan.run(tvec!(Tensor::from(input).into())).map_err(|e| ModelError::Inference(format!("{e:#}")))?;
        let view = out[0].to_array_view::<f32>().map_err(|e| ModelError::Shape(format!("{e:#}")))?;
        if view.shape() != [n, self.meta.classes.len()] {
            return Err(ModelError::Shape(format!(
                "output shape {:?}, expected [{n}, {}]",
                view.shape(),
                self.meta.classes.len()
            )));
        }
        Ok(view.iter().copied().collect())
    }

    /// Read the golden vectors named by the metadata.
    pub fn golden(&self) -> Result<GoldenVectors, ModelError> {
        let golden: GoldenVectors = read_json(&self.dir.join(&self.meta.golden_file))?;
        if golden.inputs.len() != golden.expected.len() {
            return Err(ModelError::Metadata {
                path: self.dir.join(&self.meta.golden_file),
                reason: "inputs and expected differ in length".into(),
            });
        }
        Ok(golden)
    }

    /// Run the golden inputs and return the largest absolute difference from the expected
    /// probabilities; an error if it exceeds the file's tolerance.
    pub fn check_golden(&self) -> Result<f64, ModelError> {
        let golden = self.golden()?;
        let vectors = golden
            .inputs
            .iter()
            .map(|row| {
                let arr: [f32; N_FEATURES] = row
                    .iter()
                    .map(|v| *v as f32)
                    .collect::<Vec<_>>()
                    .try_into()
                    .map_err(|_| ModelError::Shape(format!("golden input of {} values", row.len())))?;
                Ok(FeatureVector(arr))
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let expected: Vec<f64> = golden.expected.iter().flatten().copied().collect();
        // Every plan must agree: the whole set as one batch (symbolic plan), each row alone
        // and the set cycled to every fixed batch size.
        let mut max_diff = 0.0f64;
        let mut compare = |got: &[f32], expected: &[f64]| -> Result<(), ModelError> {
            if expected.len() != got.len() {
                return Err(ModelError::Shape(format!("{} outputs, {} expected", got.len(), expected.len())));
            }
            let d = got.iter().zip(expected).map(|(g, e)| (*g as f64 - e).abs()).fold(0.0, f64::max);
            max_diff = max_diff.max(d);
            Ok(())
        };
        compare(&self.predict_raw(&vectors)?, &expected)?;
        let k = self.meta.classes.len();
        for (i, v) in vectors.iter().enumerate() {
            compare(&self.predict_raw(std::slice::from_ref(v))?, &expected[i * k..(i + 1) * k])?;
        }
        for &b in &FIXED_BATCHES {
            let idx: Vec<usize> = (0..vectors.len()).cycle().take(b).collect();
            let batch: Vec<FeatureVector> = idx.iter().map(|&i| vectors[i]).collect();
            let want: Vec<f64> = idx.iter().flat_map(|&i| expected[i * k..(i + 1) * k].iter().copied()).collect();
            compare(&self.predict_raw(&batch)?, &want)?;
        }
        if max_diff > golden.tolerance {
            return Err(ModelError::GoldenMismatch { max_diff, tolerance: golden.tolerance });
        }
        Ok(max_diff)
    }
}

/// An optimized plan for a concrete batch size, or for a symbolic one (`N`) when `batch` is None.
fn build_plan(bytes: &[u8], n_classes: usize, batch: Option<usize>) -> TractResult<Plan> {
    let mut model = tract_onnx::onnx().model_for_read(&mut std::io::Cursor::new(bytes))?;
    let batch = match batch {
        Some(b) => b.to_dim(),
        None => model.symbols.sym("N").to_dim(),
    };
    model.set_input_fact(0, f32::fact([batch, N_FEATURES.to_dim()]).into())?;
    let plan = model.into_optimized()?.into_runnable()?;
    let out = plan.model().output_fact(0)?;
    // The second axis must be the class count; the first is the symbolic batch.
    let cols = out.shape.get(1).and_then(|d| d.to_i64().ok());
    if out.rank() != 2 || cols != Some(n_classes as i64) {
        return Err(TractError::msg(format!("model output {:?} is not [N, {n_classes}]", out.shape)));
    }
    Ok(plan)
}

fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|source| ModelError::Io { path: path.to_owned(), source })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ModelError> {
    serde_json::from_slice(&read(path)?)
        .map_err(|e| ModelError::Metadata { path: path.to_owned(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The detector shares one classifier across `spawn_blocking` calls through an `Arc`.
    #[test]
    fn the_classifier_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Classifier>();
        assert_send_sync::<super::super::Baseline>();
    }

    #[test]
    fn top_picks_the_most_likely_class() {
        let p =
            ClassProbabilities { classes: vec![("normal".into(), 0.2), ("recon".into(), 0.7), ("apt".into(), 0.1)] };
        assert_eq!(p.top(), ("recon", 0.7));
        assert_eq!(p.get("apt"), Some(0.1));
        assert_eq!(p.get("ddos"), None);
    }
}
