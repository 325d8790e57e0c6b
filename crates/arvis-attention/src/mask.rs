//! Attention masks: none, causal, block-causal (VAR's "see every earlier scale and your own"),
//! ACDiT's skip-causal mask, NAR's diagonal (proximity) mask, axial row/column masks and an
//! explicit boolean matrix.
//!
//! Positions are absolute: with `Lk` keys and `Lq` queries, query row `i` sits at position
//! `Lk − Lq + i` (the queries are the last `Lq` positions). [`AttentionMask::allows`] is the
//! pairwise **definition** of every mask; everything else is derived from it. For `None`,
//! `Causal` and `BlockCausal` the keys a query may see form a **prefix** `0..limit` of the key
//! positions, which the fused kernels exploit ([`AttentionMask::visible_prefix`]); the other
//! masks are irregular and the kernels test every (query, key) pair inside the range
//! [`AttentionMask::key_range`] bounds.

use std::ops::Range;

use crate::error::{AttentionError, Result};

/// Which keys each query may attend to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AttentionMask {
    /// Every query sees every key.
    #[default]
    None,
    /// Query at position `i` sees keys `j <= i`.
    Causal,
    /// Query at position `i` sees key `j` iff `block(j) <= block(i)`.
    BlockCausal(BlockCausalMask),
    /// ACDiT's skip-causal attention mask (see [`SkipCausalMask`]).
    SkipCausal(SkipCausalMask),
    /// NAR's proximity mask over anti-diagonals of a grid (see [`NeighborMask`]).
    Neighbor(NeighborMask),
    /// Axial attention within a grid row or column (see [`AxialMask`]).
    Axial(AxialMask),
    /// An explicit `[n, n]` boolean matrix (see [`ExplicitMask`]).
    Explicit(ExplicitMask),
}

impl AttentionMask {
    /// A block-causal mask over blocks of the given lengths.
    pub fn block_causal(block_lens: &[usize]) -> Self {
        AttentionMask::BlockCausal(BlockCausalMask::new(block_lens))
    }

    /// Whether the query at absolute position `q_pos` may see the key at `k_pos` (the pairwise
    /// definition). For a block-causal mask, positions past the last block are never visible.
    pub fn allows(&self, q_pos: usize, k_pos: usize) -> bool {
        match self {
            AttentionMask::None => true,
            AttentionMask::Causal => k_pos <= q_pos,
            AttentionMask::BlockCausal(m) => match (m.block_of(q_pos), m.block_of(k_pos)) {
                (Some(bq), Some(bk)) => bk <= bq,
                _ => false,
            },
            AttentionMask::SkipCausal(m) => m.allows(q_pos, k_pos),
            AttentionMask::Neighbor(m) => m.allows(q_pos, k_pos),
            AttentionMask::Axial(m) => m.allows(q_pos, k_pos),
            AttentionMask::Explicit(m) => m.allows(q_pos, k_pos),
        }
    }

    /// Whether the visible keys of every query form a prefix `0..visible_prefix` (`None`,
    /// `Causal`, `BlockCausal`).
    pub fn is_prefix(&self) -> bool {
        matches!(
            self,
            AttentionMask::None | AttentionMask::Causal | AttentionMask::BlockCausal(_)
        )
    }

    /// For a prefix mask ([`is_prefix`](Self::is_prefix)): how many keys (out of `lk`) the
    /// query at absolute position `q_pos` sees: they are the prefix `0..visible_prefix`.
    /// `None`: `lk`; causal: `q_pos + 1`; block-causal: the end of `q_pos`'s block (0 past the
    /// last block). For the irregular masks: the end of [`key_range`](Self::key_range) (every
    /// visible key is below it, not every key below it is visible). Clamped to `lk`.
    pub fn visible_prefix(&self, q_pos: usize, lk: usize) -> usize {
        let limit = match self {
            AttentionMask::None => lk,
            AttentionMask::Causal => q_pos.saturating_add(1),
            AttentionMask::BlockCausal(m) => m.block_end(q_pos).unwrap_or(0),
            _ => self.key_range(q_pos, lk).end,
        };
        limit.min(lk)
    }

    /// The smallest range of key positions (out of `lk`) holding every key the query at
    /// `q_pos` sees (empty when it sees none). Exact for every mask; for prefix masks it is
    /// `0..visible_prefix` (or empty). The GPU kernels visit only these keys.
    pub fn key_range(&self, q_pos: usize, lk: usize) -> Range<usize> {
        if self.is_prefix() {
            let end = self.visible_prefix(q_pos, lk);
            return 0..end;
        }
        let lo = (0..lk).find(|&k| self.allows(q_pos, k));
        match lo {
            None => 0..0,
            Some(lo) => {
                let hi = (lo..lk)
                    .rev()
                    .find(|&k| self.allows(q_pos, k))
                    .unwrap_or(lo);
                lo..hi + 1
            }
        }
    }

    /// The number of positions a mask with a fixed extent covers (`None` for `None` and
    /// `Causal`, which fit any length).
    pub fn covered_len(&self) -> Option<usize> {
        match self {
            AttentionMask::None | AttentionMask::Causal => None,
            AttentionMask::BlockCausal(m) => Some(m.total_len()),
            AttentionMask::SkipCausal(m) => Some(m.len()),
            AttentionMask::Neighbor(m) => Some(m.len()),
            AttentionMask::Axial(m) => Some(m.len()),
            AttentionMask::Explicit(m) => Some(m.len()),
        }
    }

    /// Checks that the mask fits `lk` key positions: every mask but `None` and `Causal` must
    /// cover exactly `lk` positions. `op` names the caller in the error.
    pub fn validate(&self, op: &'static str, lk: usize) -> Result<()> {
        match self {
            AttentionMask::BlockCausal(m) if m.total_len() != lk => {
                Err(AttentionError::MaskLength {
                    op,
                    covered: m.total_len(),
                    lk,
                    block_lens: m.block_lens().to_vec(),
                })
            }
            m => match m.covered_len() {
                Some(n) if n != lk => Err(AttentionError::MaskLength {
                    op,
                    covered: n,
                    lk,
                    block_lens: Vec::new(),
                }),
                _ => Ok(()),
            },
        }
    }
}

/// Consecutive blocks of positions; a position sees its own block and every earlier one.
///
/// VAR: one block per scale, of length `pn²` (`[1, 4, 9, …, 256]`, 680 positions in all for
/// `patch_nums = [1, 2, 3, 4, 5, 6, 8, 10, 13, 16]`). Zero-length blocks are allowed (and own
/// no position).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockCausalMask {
    lens: Vec<usize>,
    /// Exclusive end position of each block (running sums of `lens`).
    ends: Vec<usize>,
}

impl BlockCausalMask {
    /// A mask over consecutive blocks of the given lengths.
    pub fn new(block_lens: &[usize]) -> Self {
        let ends = block_lens
            .iter()
            .scan(0usize, |acc, &l| {
                *acc = acc.saturating_add(l);
                Some(*acc)
            })
            .collect();
        BlockCausalMask {
            lens: block_lens.to_vec(),
            ends,
        }
    }

    /// VAR's mask: one block of `pn²` positions per patch number.
    pub fn from_patch_nums(patch_nums: &[usize]) -> Self {
        let lens: Vec<usize> = patch_nums.iter().map(|&p| p.saturating_mul(p)).collect();
        Self::new(&lens)
    }

    /// The mask restricted to its first `n_blocks` blocks (all of them if `n_blocks` is larger):
    /// the mask of a KV cache that holds the first `n_blocks` scales.
    pub fn prefix(&self, n_blocks: usize) -> Self {
        Self::new(&self.lens[..n_blocks.min(self.lens.len())])
    }

    /// The block lengths.
    pub fn block_lens(&self) -> &[usize] {
        &self.lens
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.lens.len()
    }

    /// Total number of positions covered (the sum of the block lengths).
    pub fn total_len(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Index of the block holding position `pos`, or `None` past the last block.
    pub fn block_of(&self, pos: usize) -> Option<usize> {
        let b = self.ends.partition_point(|&e| e <= pos);
        (b < self.ends.len()).then_some(b)
    }

    /// Exclusive end of the block holding `pos` (the number of positions `pos` may see), or
    /// `None` past the last block.
    pub fn block_end(&self, pos: usize) -> Option<usize> {
        self.block_of(pos).map(|b| self.ends[b])
    }
}

/// Which copy of a block a position of a [`SkipCausalMask`] belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockCopy {
    /// The clean (denoised, context) copy.
    Clean,
    /// The noisy copy (being denoised).
    Noisy,
}

/// ACDiT's Skip-Causal Attention Mask (SCAM).
///
/// ACDiT (Hu et al., 2024, "Interpolating Autoregressive Conditional Modeling and Diffusion
/// Transformer") generates a sequence of blocks; block `i` is denoised by diffusion conditioned
/// on the clean blocks before it. Training therefore presents every block twice, a **clean**
/// copy `c_i` and a **noisy** copy `n_i`, and the mask is, for blocks `bq`, `bk` of the query
/// and the key:
///
/// - a **noisy** query of block `bq` sees the **clean** keys of blocks `bk < bq` and the
///   **noisy** keys of its own block (`bk == bq`); it never sees its own clean copy, later
///   blocks, or other noisy blocks;
/// - a **clean** query of block `bq` sees the **clean** keys of blocks `bk <= bq` (block-causal
///   over the clean copies) and no noisy key.
///
/// The layout of the sequence is explicit: consecutive **segments**, each a run of positions of
/// one `(block, copy)`. [`SkipCausalMask::clean_then_noisy`] lays out `c_0 … c_{N−1}` followed
/// by `n_0 … n_{N−1}`; [`SkipCausalMask::interleaved`] lays out `c_0 n_0 c_1 n_1 …`; inference
/// with a KV cache holding `c_0 … c_{i−1}` and the queries `n_i` last is
/// `interleaved`-compatible (use a mask over exactly the cached positions). A block may have
/// several segments per copy; positions past the last segment see nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkipCausalMask {
    /// Per position: `(block, copy)`.
    pos: Vec<(u32, BlockCopy)>,
}

impl SkipCausalMask {
    /// A mask from explicit segments `(block, copy, length)`, in sequence order.
    pub fn from_segments(segments: &[(usize, BlockCopy, usize)]) -> Self {
        let mut pos = Vec::new();
        for &(b, c, len) in segments {
            pos.extend(std::iter::repeat_n((b as u32, c), len));
        }
        SkipCausalMask { pos }
    }

    /// All clean copies (blocks in order), then all noisy copies: `c_0 … c_{N−1} n_0 … n_{N−1}`.
    pub fn clean_then_noisy(block_lens: &[usize]) -> Self {
        let clean = block_lens
            .iter()
            .enumerate()
            .map(|(b, &l)| (b, BlockCopy::Clean, l));
        let noisy = block_lens
            .iter()
            .enumerate()
            .map(|(b, &l)| (b, BlockCopy::Noisy, l));
        Self::from_segments(&clean.chain(noisy).collect::<Vec<_>>())
    }

    /// Each block's clean copy followed by its noisy copy: `c_0 n_0 c_1 n_1 …`.
    pub fn interleaved(block_lens: &[usize]) -> Self {
        let segs: Vec<_> = block_lens
            .iter()
            .enumerate()
            .flat_map(|(b, &l)| [(b, BlockCopy::Clean, l), (b, BlockCopy::Noisy, l)])
            .collect();
        Self::from_segments(&segs)
    }

    /// Positions covered.
    pub fn len(&self) -> usize {
        self.pos.len()
    }

    /// Whether no position is covered.
    pub fn is_empty(&self) -> bool {
        self.pos.is_empty()
    }

    /// `(block, copy)` of a position (`None` past the end).
    pub fn position(&self, pos: usize) -> Option<(usize, BlockCopy)> {
        self.pos.get(pos).map(|&(b, c)| (b as usize, c))
    }

    /// The pairwise rule (see the type's documentation).
    pub fn allows(&self, q_pos: usize, k_pos: usize) -> bool {
        let (Some(&(bq, cq)), Some(&(bk, ck))) = (self.pos.get(q_pos), self.pos.get(k_pos)) else {
            return false;
        };
        match (cq, ck) {
            (BlockCopy::Noisy, BlockCopy::Clean) => bk < bq,
            (BlockCopy::Noisy, BlockCopy::Noisy) => bk == bq,
            (BlockCopy::Clean, BlockCopy::Clean) => bk <= bq,
            (BlockCopy::Clean, BlockCopy::Noisy) => false,
        }
    }
}

/// NAR's proximity mask (Neighboring Autoregressive Modeling, He et al. 2025,
/// `setup_proximity_mask` in the `ThisisBillhe/NAR` code).
///
/// The sequence is `prefix` condition tokens followed by an `height × width` grid of image
/// tokens in **raster order** (grid token `(h, w)` at position `prefix + h·width + w`). Grid
/// tokens are grouped by their Manhattan distance `h + w` from the start token `(0, 0)` (the
/// anti-diagonals, generated one per NAR step). What is implemented, as in the NAR code (a
/// lower-triangular mask whose grid×grid block is replaced):
///
/// - condition token `i < prefix` sees condition tokens `j <= i` (causal) and no grid token;
/// - grid token `(h, w)` sees every condition token and the grid tokens `(h', w')` with
///   `h' + w' <= h + w` ([`Diagonal::Bidirectional`], the NAR code: causal across diagonals,
///   bidirectional within one), or with `h' + w' < h + w` plus itself
///   ([`Diagonal::SelfOnly`]: strictly earlier diagonals and the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborMask {
    /// Condition tokens before the grid.
    pub prefix: usize,
    /// Grid rows.
    pub height: usize,
    /// Grid columns.
    pub width: usize,
    /// What a grid token sees of its own diagonal.
    pub diagonal: Diagonal,
}

/// Visibility inside a query's own anti-diagonal in a [`NeighborMask`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Diagonal {
    /// The whole own diagonal (the NAR code's proximity mask).
    #[default]
    Bidirectional,
    /// Only the token itself.
    SelfOnly,
}

impl NeighborMask {
    /// The NAR proximity mask (bidirectional within a diagonal).
    pub fn new(prefix: usize, height: usize, width: usize) -> Self {
        NeighborMask {
            prefix,
            height,
            width,
            diagonal: Diagonal::Bidirectional,
        }
    }

    /// Positions covered: `prefix + height·width`.
    pub fn len(&self) -> usize {
        self.prefix + self.height * self.width
    }

    /// Whether no position is covered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The group of a position: condition token `i` → `i`, grid token `(h, w)` →
    /// `prefix + h + w`; `None` past the end. Grid query `q` sees key `k` iff
    /// `group(k) <= group(q)` (bidirectional), resp. `group(k) < group(q) || k == q`; a
    /// condition query sees exactly the keys of smaller or equal group too.
    pub fn group(&self, pos: usize) -> Option<usize> {
        if pos < self.prefix {
            return Some(pos);
        }
        let g = pos - self.prefix;
        (g < self.height * self.width).then(|| self.prefix + g / self.width + g % self.width)
    }

    /// The pairwise rule (see the type's documentation).
    pub fn allows(&self, q_pos: usize, k_pos: usize) -> bool {
        let (Some(gq), Some(gk)) = (self.group(q_pos), self.group(k_pos)) else {
            return false;
        };
        match self.diagonal {
            Diagonal::Bidirectional => gk <= gq,
            // Condition tokens are alone in their group, so this keeps them causal.
            Diagonal::SelfOnly => gk < gq || k_pos == q_pos,
        }
    }
}

/// Which grid line an [`AxialMask`] attends along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// A query sees the keys of its own row.
    Row,
    /// A query sees the keys of its own column.
    Column,
}

/// Axial attention over a `height × width` grid in raster order (position `h·width + w`): a
/// query sees only keys in its own row ([`Axis::Row`]) resp. column ([`Axis::Column`]); with
/// `causal`, only those at or before it along that line (`w' <= w`, resp. `h' <= h`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AxialMask {
    /// Grid rows.
    pub height: usize,
    /// Grid columns.
    pub width: usize,
    /// Row or column attention.
    pub axis: Axis,
    /// Causal within the line.
    pub causal: bool,
}

impl AxialMask {
    /// Row attention (bidirectional).
    pub fn row(height: usize, width: usize) -> Self {
        AxialMask {
            height,
            width,
            axis: Axis::Row,
            causal: false,
        }
    }

    /// Column attention (bidirectional).
    pub fn column(height: usize, width: usize) -> Self {
        AxialMask {
            height,
            width,
            axis: Axis::Column,
            causal: false,
        }
    }

    /// The same mask, causal within each line.
    pub fn causal(mut self) -> Self {
        self.causal = true;
        self
    }

    /// Positions covered: `height·width`.
    pub fn len(&self) -> usize {
        self.height * self.width
    }

    /// Whether no position is covered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(line, index along the line)` of a position, `None` past the end.
    pub fn line_of(&self, pos: usize) -> Option<(usize, usize)> {
        if pos >= self.len() {
            return None;
        }
        let (h, w) = (pos / self.width, pos % self.width);
        Some(match self.axis {
            Axis::Row => (h, w),
            Axis::Column => (w, h),
        })
    }

    /// The pairwise rule (see the type's documentation).
    pub fn allows(&self, q_pos: usize, k_pos: usize) -> bool {
        match (self.line_of(q_pos), self.line_of(k_pos)) {
            (Some((lq, iq)), Some((lk, ik))) => lq == lk && (!self.causal || ik <= iq),
            _ => false,
        }
    }
}

/// An explicit `[n, n]` boolean mask: `allows(q, k) = bits[q·n + k]` (false outside `n`).
/// Rows may be all false: such a query sees nothing and its output is zeros on every device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplicitMask {
    n: usize,
    bits: Vec<bool>,
}

impl ExplicitMask {
    /// `allows(q, k) = f(q, k)` for `q, k < n`.
    pub fn from_fn(n: usize, f: impl Fn(usize, usize) -> bool) -> Self {
        let bits = (0..n * n).map(|i| f(i / n, i % n)).collect();
        ExplicitMask { n, bits }
    }

    /// The matrix of any mask over `n` positions.
    pub fn from_mask(mask: &AttentionMask, n: usize) -> Self {
        Self::from_fn(n, |q, k| mask.allows(q, k))
    }

    /// Positions covered.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether no position is covered.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The pairwise rule.
    pub fn allows(&self, q_pos: usize, k_pos: usize) -> bool {
        q_pos < self.n && k_pos < self.n && self.bits[q_pos * self.n + k_pos]
    }
}
