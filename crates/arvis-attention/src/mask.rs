//! Attention masks: none, causal, and block-causal (VAR's "see every earlier scale and your own").
//!
//! Positions are absolute: with `Lk` keys and `Lq` queries, query row `i` sits at position
//! `Lk − Lq + i` (the queries are the last `Lq` positions). For every mask here the keys a query
//! may see form a **prefix** `0..limit` of the key positions, which is what the fused kernel
//! exploits ([`AttentionMask::visible_prefix`]); [`AttentionMask::allows`] states the same rule
//! pairwise, as the definition.

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
        }
    }

    /// How many keys (out of `lk`) the query at absolute position `q_pos` sees: they are always
    /// the prefix `0..visible_prefix`. `None`: `lk`; causal: `q_pos + 1`; block-causal: the end
    /// of `q_pos`'s block (0 past the last block). Clamped to `lk`.
    pub fn visible_prefix(&self, q_pos: usize, lk: usize) -> usize {
        let limit = match self {
            AttentionMask::None => lk,
            AttentionMask::Causal => q_pos.saturating_add(1),
            AttentionMask::BlockCausal(m) => m.block_end(q_pos).unwrap_or(0),
        };
        limit.min(lk)
    }

    /// Checks that the mask fits `lk` key positions: a block-causal mask must cover exactly
    /// `lk` positions. `op` names the caller in the error.
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
            _ => Ok(()),
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
