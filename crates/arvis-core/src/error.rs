//! The one error type of `arvis-core`.
//!
//! Every variant carries enough context (the op, the tensor or file name, expected vs found) for
//! a user to see what went wrong without a debugger.

use std::path::PathBuf;

/// Result alias used throughout `arvis-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors raised by tensor ops, weight loading and sampling.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The GPU runtime failed: no adapter, a device request, a transfer or a kernel launch.
    #[error("gpu {op}: {msg}")]
    Gpu {
        /// What was being done (`"adapter"`, `"download"`, `"add"`).
        op: &'static str,
        /// What went wrong.
        msg: String,
    },
    /// Operands live on different devices (or an op has no implementation for one).
    #[error("{op}: {msg}")]
    Device {
        /// The op.
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// An op received an operand whose shape does not fit.
    #[error("{op}: shape mismatch: expected {expected}, found {found:?}")]
    Shape {
        /// The op that rejected its input, e.g. `"matmul"`.
        op: &'static str,
        /// What the op needed, in words (`"[.., k] with k = 64"`).
        expected: String,
        /// The shape it got.
        found: Vec<usize>,
    },
    /// Two operands cannot be broadcast together.
    #[error("{op}: cannot broadcast {lhs:?} with {rhs:?}")]
    Broadcast {
        /// The op.
        op: &'static str,
        /// Left operand's shape.
        lhs: Vec<usize>,
        /// Right operand's shape.
        rhs: Vec<usize>,
    },
    /// A dimension index is outside `-rank..rank`.
    #[error("{op}: dimension {dim} out of range for a rank-{rank} tensor")]
    Dim {
        /// The op.
        op: &'static str,
        /// The dimension asked for (negative counts from the end).
        dim: isize,
        /// Rank of the tensor.
        rank: usize,
    },
    /// An argument is outside its valid range (kernel size, stride, `k` of top-k, an index...).
    #[error("{op}: invalid argument: {msg}")]
    Arg {
        /// The op.
        op: &'static str,
        /// What is wrong, in words.
        msg: String,
    },
    /// A buffer's length does not equal the product of the shape.
    #[error("{op}: {len} elements cannot form shape {shape:?} ({expected} elements)")]
    ElementCount {
        /// The op (`"from_vec"`, `"reshape"`).
        op: &'static str,
        /// Elements supplied.
        len: usize,
        /// Requested shape.
        shape: Vec<usize>,
        /// Product of `shape`.
        expected: usize,
    },
    /// The weights file could not be opened or mapped.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid safetensors container (bad header, offsets, truncation...).
    #[error("{}: invalid safetensors file: {msg}", path.display())]
    SafeTensors {
        /// The file (or the name given to an in-memory buffer).
        path: PathBuf,
        /// What the validator found.
        msg: String,
    },
    /// A tensor the model needs is not in the file.
    #[error("{}: missing tensor `{name}`", path.display())]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// Full tensor name.
        name: String,
    },
    /// A tensor in the file has another shape than the model expects.
    #[error("{}: tensor `{name}` has shape {found:?}, expected {expected:?}", path.display())]
    TensorShape {
        /// The file.
        path: PathBuf,
        /// Full tensor name.
        name: String,
        /// Shape the model needs.
        expected: Vec<usize>,
        /// Shape stored in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a dtype we do not convert to f32.
    #[error("{}: tensor `{name}` has unsupported dtype {dtype} (expected F32, F16 or BF16)", path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// Full tensor name.
        name: String,
        /// The stored dtype, as safetensors names it.
        dtype: String,
    },
    /// The `__metadata__` block is missing a key or holds invalid JSON.
    #[error("{}: metadata: {msg}", path.display())]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

impl Error {
    pub(crate) fn gpu(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Gpu {
            op,
            msg: msg.into(),
        }
    }

    pub(crate) fn shape(op: &'static str, expected: impl Into<String>, found: &[usize]) -> Self {
        Error::Shape {
            op,
            expected: expected.into(),
            found: found.to_vec(),
        }
    }

    pub(crate) fn arg(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Arg {
            op,
            msg: msg.into(),
        }
    }
}
