//! [`AttentionError`]: the one error type of `arvis-attention`.
//!
//! Shape errors name the op (`sdpa`, `sdpa_reference`, `KvCache::append`, ...) and carry the
//! offending shapes, so a caller sees what went wrong without a debugger.

/// Result alias used throughout `arvis-attention`.
pub type Result<T, E = AttentionError> = std::result::Result<T, E>;

/// Errors raised by attention and the KV cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttentionError {
    /// An error from a tensor op of `arvis-core`.
    #[error(transparent)]
    Core(#[from] arvis_core::Error),
    /// An operand is not a rank-4 `[B, H, L, D]` tensor.
    #[error("{op}: `{operand}` must be a rank-4 [B, H, L, D] tensor, found shape {shape:?}")]
    Rank {
        /// The op that rejected its input.
        op: &'static str,
        /// Which operand (`"q"`, `"k"`, `"v"`).
        operand: &'static str,
        /// The shape it had.
        shape: Vec<usize>,
    },
    /// The operands' shapes do not fit together (batch, heads, head dim, k vs v).
    #[error("{op}: {what}: q {q:?}, k {k:?}, v {v:?}")]
    Mismatch {
        /// The op.
        op: &'static str,
        /// What does not match, in words.
        what: String,
        /// Shape of `q`.
        q: Vec<usize>,
        /// Shape of `k`.
        k: Vec<usize>,
        /// Shape of `v`.
        v: Vec<usize>,
    },
    /// More queries than keys: queries are the *last* `Lq` of the `Lk` positions, so
    /// `Lq <= Lk` is required.
    #[error(
        "{op}: {lq} queries but {lk} keys (queries are the last Lq of the Lk positions, so Lq <= Lk): q {q:?}, k {k:?}"
    )]
    QueriesExceedKeys {
        /// The op.
        op: &'static str,
        /// Number of queries.
        lq: usize,
        /// Number of keys.
        lk: usize,
        /// Shape of `q`.
        q: Vec<usize>,
        /// Shape of `k`.
        k: Vec<usize>,
    },
    /// A mask with a fixed extent (block-causal, skip-causal, neighbor, axial, explicit) does
    /// not cover exactly the key positions.
    #[error(
        "{op}: the mask covers {covered} positions (block lengths {block_lens:?}) but there are {lk} keys"
    )]
    MaskLength {
        /// The op.
        op: &'static str,
        /// Sum of the block lengths.
        covered: usize,
        /// Number of keys.
        lk: usize,
        /// The mask's block lengths (block-causal masks; empty for the others).
        block_lens: Vec<usize>,
    },
    /// Keys or values given to the cache do not fit its `[B, H, *, D]` layout.
    #[error(
        "{op}: expected k and v of shape [{batch}, {heads}, L, {head_dim}], found k {k:?}, v {v:?}"
    )]
    CacheShape {
        /// The op (`"KvCache::append"`, `"KvCache::attend"`).
        op: &'static str,
        /// The cache's batch size.
        batch: usize,
        /// The cache's number of heads.
        heads: usize,
        /// The cache's head dimension.
        head_dim: usize,
        /// Shape of the keys (or queries) given.
        k: Vec<usize>,
        /// Shape of the values given.
        v: Vec<usize>,
    },
    /// Appending would exceed the cache's capacity.
    #[error(
        "KvCache::append: {len} cached + {added} new positions exceed the capacity of {capacity}"
    )]
    CacheFull {
        /// Positions already cached.
        len: usize,
        /// Positions being appended.
        added: usize,
        /// The cache's capacity.
        capacity: usize,
    },
    /// The cache's buffers would not fit in memory (`B·H·capacity·D` overflows).
    #[error(
        "KvCache: [{batch}, {heads}, {capacity}, {head_dim}] f32 buffers are too large to allocate"
    )]
    CacheTooLarge {
        /// The cache's batch size.
        batch: usize,
        /// The cache's number of heads.
        heads: usize,
        /// The cache's capacity.
        capacity: usize,
        /// The cache's head dimension.
        head_dim: usize,
    },
    /// Operands on different devices (CPU and GPU, or two GPU contexts), or a cache given
    /// tensors on another device than the one it holds its data on.
    #[error("{op}: {msg}")]
    Device {
        /// The op.
        op: &'static str,
        /// What differs, in words.
        msg: String,
    },
    /// A RoPE argument does not fit (head dim, positions, rank).
    #[error("rope2d: {0}")]
    Rope(String),
    /// `truncate` asked for more positions than the cache holds.
    #[error("KvCache::truncate: cannot truncate to {requested} positions, the cache holds {len}")]
    Truncate {
        /// The length asked for.
        requested: usize,
        /// Positions cached.
        len: usize,
    },
}
