//! [`SpecModel`]: the target (or draft) model as the samplers see it — a causal model over
//! discrete tokens with a KV cache that scores a window of tokens in one forward and rolls back
//! to any prefix.
//!
//! # How a KV-cached transformer implements it (LlamaGen)
//!
//! - `rows()` is the number of images `B`; with guidance the implementor runs `2B` rows
//!   internally (conditional then unconditional), feeds every token to both halves, mixes the
//!   logits (`cfg_mix_stacked`) and returns `B` processed distributions
//!   ([`Dists::from_logits`] with the request's `SamplingConfig`).
//! - `start()` clears the per-layer caches and runs the class token (prefill); its output is the
//!   distribution of token 0.
//! - `forward(tokens, w)` embeds the `[B, w]` tokens, runs the blocks with `Attend::Cached` at
//!   sequence position `cls_token_num + cached()` (causal within the window, attending to the
//!   whole cache), appends their keys/values and returns `[B, w, V]`. Note that LlamaGen's
//!   `Attend::Cached` passes `AttentionMask::None` to `KvCache::attend`, which is right for one
//!   query only: a window needs `AttentionMask::Causal` (the queries are the last `w` cached
//!   positions), which is identical for `w = 1`.
//! - `rollback(len)` is `KvCache::truncate(cls_token_num + len)` on every layer (O(1)).
//!
//! All rows share one cache length (as `KvCache` has one length), so the samplers keep every
//! row at the same number of tokens: each verification commits the minimum accepted length
//! over the rows (see [`crate::decode`]).

use crate::dist::Dists;
use crate::error::Result;

/// A causal model over `V` discrete tokens generating `B` sequences of `seq_len()` tokens,
/// with a KV cache shared in length by all rows.
///
/// Positions count generated tokens from 0; the condition (class token, prompt) is the
/// implementor's business and sits before position 0. The cache holds the keys/values of the
/// first `cached()` generated tokens (plus the condition).
pub trait SpecModel {
    /// Number of sequences decoded together, `B`.
    fn rows(&self) -> usize;

    /// Vocabulary size `V`.
    fn vocab(&self) -> usize;

    /// Tokens per sequence, `N`.
    fn seq_len(&self) -> usize;

    /// Generated tokens whose keys/values are in the cache (the same for every row).
    fn cached(&self) -> usize;

    /// Clears the cache, runs the condition, and returns the distribution of token 0 as
    /// `[B, 1, V]`. Afterwards `cached() == 0`.
    fn start(&mut self) -> Result<Dists>;

    /// Appends `tokens` (`[B, w]` row-major: positions `cached() .. cached() + w` of each row)
    /// to the cache in **one** forward and returns `[B, w, V]`: slot `j` is the distribution of
    /// the token at position `cached_before + j + 1`, given everything up to and including input
    /// `j`. Afterwards `cached()` has grown by `w`.
    fn forward(&mut self, tokens: &[u32], width: usize) -> Result<Dists>;

    /// Keeps the first `len` generated tokens in the cache and drops the rest (`len <=
    /// cached()`); the next forward continues from position `len` exactly as if the dropped
    /// tokens had never been fed.
    fn rollback(&mut self, len: usize) -> Result<()>;
}

impl<M: SpecModel + ?Sized> SpecModel for &mut M {
    fn rows(&self) -> usize {
        (**self).rows()
    }
    fn vocab(&self) -> usize {
        (**self).vocab()
    }
    fn seq_len(&self) -> usize {
        (**self).seq_len()
    }
    fn cached(&self) -> usize {
        (**self).cached()
    }
    fn start(&mut self) -> Result<Dists> {
        (**self).start()
    }
    fn forward(&mut self, tokens: &[u32], width: usize) -> Result<Dists> {
        (**self).forward(tokens, width)
    }
    fn rollback(&mut self, len: usize) -> Result<()> {
        (**self).rollback(len)
    }
}
