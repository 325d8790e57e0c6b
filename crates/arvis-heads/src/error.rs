//! The one error type of `arvis-heads`.

/// Result alias of this crate.
pub type Result<T, E = HeadError> = std::result::Result<T, E>;

/// Errors raised while loading a head or sampling from it.
///
/// Tensor-level failures (a missing or mis-shaped weight, an op rejecting its operands) arrive
/// as [`HeadError::Core`] and name the tensor or op; the other variants add the head's own
/// context (which argument, which config field, which sampler setting).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// An error from `arvis-core` (weights loading, tensor ops).
    #[error(transparent)]
    Core(#[from] arvis_core::Error),
    /// A configuration value is invalid (names the field and why).
    #[error("invalid {what}: {msg}")]
    Config {
        /// What was being configured (`"diffusion head"`, `"respacing"`, `"DiSA schedule"`).
        what: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// A tensor handed to the head or a sampler has the wrong shape.
    #[error("{op}: expected {expected}, found shape {found:?}")]
    Shape {
        /// The method that rejected the tensor.
        op: &'static str,
        /// What it needs, in words.
        expected: String,
        /// The shape it got.
        found: Vec<usize>,
    },
    /// Recorded noise ran out or does not fit the sampler's draws.
    #[error("recorded noise: {0}")]
    Noise(String),
}

impl HeadError {
    pub(crate) fn config(what: &'static str, msg: impl Into<String>) -> Self {
        HeadError::Config {
            what,
            msg: msg.into(),
        }
    }

    pub(crate) fn shape(op: &'static str, expected: impl Into<String>, found: &[usize]) -> Self {
        HeadError::Shape {
            op,
            expected: expected.into(),
            found: found.to_vec(),
        }
    }
}
