//! [`SpecError`]: the one error type of `arvis-spec`.

/// Result alias used throughout `arvis-spec`.
pub type Result<T, E = SpecError> = std::result::Result<T, E>;

/// Errors raised by the speculative samplers and the traits they drive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// An error from `arvis-core` (sampling, logits processing).
    #[error(transparent)]
    Core(#[from] arvis_core::Error),
    /// An argument is outside its valid range (window length, a probability vector, a config).
    #[error("{op}: invalid argument: {msg}")]
    Arg {
        /// The function or method that rejected it.
        op: &'static str,
        /// What is wrong, in words.
        msg: String,
    },
    /// A model, drafter or head returned something that breaks the trait's contract (wrong
    /// number of rows, distributions of the wrong width, a rollback past the cache).
    #[error("{op}: contract violation: {msg}")]
    Contract {
        /// Where it was detected.
        op: &'static str,
        /// What was expected and what came back.
        msg: String,
    },
    /// An implementor's own error (a model crate's error), boxed so the traits stay
    /// model-agnostic.
    #[error("model: {0}")]
    Model(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl SpecError {
    /// An [`SpecError::Arg`].
    pub fn arg(op: &'static str, msg: impl Into<String>) -> Self {
        SpecError::Arg {
            op,
            msg: msg.into(),
        }
    }

    /// A [`SpecError::Contract`].
    pub fn contract(op: &'static str, msg: impl Into<String>) -> Self {
        SpecError::Contract {
            op,
            msg: msg.into(),
        }
    }

    /// Wraps an implementor's error in [`SpecError::Model`].
    pub fn model(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        SpecError::Model(Box::new(e))
    }
}
