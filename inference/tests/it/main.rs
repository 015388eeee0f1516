//! Integration tests of xdr-inference against the committed model files.

mod classifier;
