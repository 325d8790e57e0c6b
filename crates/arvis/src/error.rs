//! The facade's error type: every crate's error, plus the pipeline's own.

use std::path::PathBuf;

/// Result alias of the facade.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from loading a model, generating, or writing images.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor op or weights-file error.
    #[error(transparent)]
    Core(#[from] arvis_core::Error),
    /// A tokenizer error (VQ-VAE, image I/O).
    #[error(transparent)]
    Tokenizer(#[from] arvis_tokenizer::TokenizerError),
    /// A model error (bad request, wrong weights).
    #[error(transparent)]
    Model(#[from] arvis_models::ModelError),
    /// A speculative sampler failed (a bad window, a model breaking the sampler contract).
    #[error("sampler: {0}")]
    Spec(#[from] arvis_spec::SpecError),
    /// The file's `arvis.family` names a model this build cannot run.
    #[error("{}: unsupported model family `{family}` (supported: var)", path.display())]
    UnsupportedFamily {
        /// The weights file.
        path: PathBuf,
        /// The family it declares.
        family: String,
    },
    /// A model file's metadata is present but unusable.
    #[error("{}: {msg}", path.display())]
    BadMetadata {
        /// The weights file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The requested device is not available.
    #[error("device `{0}` is not available: {1}")]
    Device(String, String),
    /// A command-line mistake that the argument parser cannot see (e.g. no model given).
    #[error("{0}")]
    Usage(String),
    /// Writing an output file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// `true` for mistakes in what the user asked for (wrong file, bad request), as opposed to
    /// internal failures; the CLI maps these to exit code 2.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Core(e) => !matches!(
                e,
                arvis_core::Error::Shape { .. } | arvis_core::Error::Broadcast { .. }
            ),
            Error::Model(_) | Error::Tokenizer(_) => true,
            // A bad argument is the caller's; a broken contract or a model failure inside the
            // sampler is ours.
            Error::Spec(e) => matches!(e, arvis_spec::SpecError::Arg { .. }),
            Error::UnsupportedFamily { .. }
            | Error::BadMetadata { .. }
            | Error::Device(..)
            | Error::Usage(_)
            | Error::Io { .. } => true,
        }
    }
}
