//! The one error type of `arvis-tokenizer`.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = TokenizerError> = std::result::Result<T, E>;

/// Errors raised while building or running the VQ-VAE, or reading and writing images.
///
/// Tensor-level failures (a missing or mis-shaped tensor in the weights file, an op rejecting
/// its operands) arrive as [`TokenizerError::Core`] and name the tensor or op; the other
/// variants add the tokenizer's own context (which scale, which image, which config field).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// An error from `arvis-core` (weights loading, tensor ops).
    #[error(transparent)]
    Core(#[from] arvis_core::Error),
    /// A tokenizer configuration is inconsistent (names the field and why).
    #[error("invalid tokenizer config: {0}")]
    Config(String),
    /// The configuration JSON could not be parsed.
    #[error("tokenizer config JSON: {0}")]
    ConfigJson(#[from] serde_json::Error),
    /// A tensor handed to the tokenizer has the wrong shape.
    #[error("{op}: expected {expected}, found shape {found:?}")]
    Shape {
        /// The method that rejected the tensor (`"img_to_indices"`, `"fhat_to_img"`, ...).
        op: &'static str,
        /// What it needs, in words.
        expected: String,
        /// The shape it got.
        found: Vec<usize>,
    },
    /// A token index is not below the vocabulary size.
    #[error(
        "scale with patch number {pn}: index {index} at position {position} is out of range for a vocabulary of {vocab_size}"
    )]
    IndexOutOfRange {
        /// Patch number (side of the token map) of the offending scale.
        pn: usize,
        /// Position of the index in the row-major `B·pn·pn` list.
        position: usize,
        /// The index.
        index: u32,
        /// Vocabulary size of the codebook.
        vocab_size: usize,
    },
    /// A per-scale index list has the wrong length.
    #[error(
        "scale with patch number {pn}: expected {expected} indices (batch {batch} × {pn}²), found {found}"
    )]
    IndexCount {
        /// Patch number of the scale.
        pn: usize,
        /// Batch size.
        batch: usize,
        /// `batch · pn²`.
        expected: usize,
        /// Length given.
        found: usize,
    },
    /// The number of scales given does not match the quantiser's patch numbers.
    #[error("expected {expected} scales (patch numbers {patch_nums:?}), found {found}")]
    ScaleCount {
        /// Number of scales of the quantiser.
        expected: usize,
        /// Number given.
        found: usize,
        /// The quantiser's patch numbers.
        patch_nums: Vec<usize>,
    },
    /// A scale index is outside `0..num_scales`.
    #[error("scale index {si} out of range for {num_scales} scales")]
    ScaleIndex {
        /// The scale index given.
        si: usize,
        /// Number of scales.
        num_scales: usize,
    },
    /// A PNG file could not be read, decoded or written.
    #[error("{}: {source}", path.display())]
    Image {
        /// The file.
        path: PathBuf,
        /// What the `image` crate reported.
        #[source]
        source: image::ImageError,
    },
    /// Pixel data does not fit the requested image layout.
    #[error("image: {0}")]
    Pixels(String),
}

impl TokenizerError {
    pub(crate) fn shape(op: &'static str, expected: impl Into<String>, found: &[usize]) -> Self {
        TokenizerError::Shape {
            op,
            expected: expected.into(),
            found: found.to_vec(),
        }
    }
}
