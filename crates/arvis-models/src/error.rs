//! [`ModelError`]: the one error type of `arvis-models`.

use std::path::PathBuf;

/// Result alias used throughout `arvis-models`.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// Errors from loading a model or running a request.
///
/// Variants for user mistakes (a wrong weights file, an invalid request) say what was expected
/// and what was found; failures inside tensor ops, attention or the tokenizer are wrapped with
/// the stage that raised them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A tensor op, or reading the weights file, failed (the core error names the op, or the
    /// file and tensor).
    #[error(transparent)]
    Core(#[from] arvis_core::Error),
    /// Attention or the KV cache failed.
    #[error("attention: {0}")]
    Attention(#[from] arvis_attention::AttentionError),
    /// The VQ-VAE tokenizer failed.
    #[error("VQ-VAE: {0}")]
    Tokenizer(#[from] arvis_tokenizer::TokenizerError),
    /// A per-token head (MAR's diffusion head) or its sampler failed.
    #[error("head: {0}")]
    Head(#[from] arvis_heads::HeadError),
    /// The weights file declares another model family.
    #[error("{}: `arvis.family` is `{found}`, expected `{expected}`", path.display())]
    Family {
        /// The weights file.
        path: PathBuf,
        /// The family the model needs.
        expected: &'static str,
        /// The family the file declares.
        found: String,
    },
    /// The configuration is missing, malformed, or describes an impossible model.
    #[error("invalid model configuration: {msg}")]
    Config {
        /// What is wrong.
        msg: String,
    },
    /// A request field is out of range.
    #[error("invalid request: {msg}")]
    Request {
        /// What is wrong, with the offending value.
        msg: String,
    },
    /// A class label is not a real class of the model.
    #[error(
        "invalid request: label {label} at position {position} is out of range (the model has {num_classes} classes, 0..{num_classes})"
    )]
    Label {
        /// The offending label.
        label: u32,
        /// Its position in the batch.
        position: usize,
        /// Number of real classes.
        num_classes: usize,
    },
    /// The weights file holds a transformer tensor the configuration has no place for (e.g.
    /// `blocks.16.*` in a file configured with depth 16, or `ada_gss` without `shared_aln`):
    /// the configuration and the tensors disagree.
    #[error("{}: tensor `{name}` does not belong to the configured model ({why})", path.display())]
    UnexpectedTensor {
        /// The weights file.
        path: PathBuf,
        /// Full tensor name.
        name: String,
        /// The configuration it contradicts, in words.
        why: String,
    },
    /// Caller-supplied token indices (replay, teacher forcing) do not fit the model.
    #[error("invalid indices at scale {scale}: {msg}")]
    Indices {
        /// The scale (0-based).
        scale: usize,
        /// What is wrong.
        msg: String,
    },
}

impl ModelError {
    pub(crate) fn request(msg: impl Into<String>) -> Self {
        ModelError::Request { msg: msg.into() }
    }

    pub(crate) fn config(msg: impl Into<String>) -> Self {
        ModelError::Config { msg: msg.into() }
    }
}
