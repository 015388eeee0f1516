//! Detection worker of Mini-XDR: feature vectors per (org, source ip) window, the ONNX
//! classifier run with tract, and per-org baselines fitted with linfa.
#![forbid(unsafe_code)]

pub mod features;
pub mod model;
