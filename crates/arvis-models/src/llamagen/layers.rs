//! The GPT's transformer block (official `TransformerBlock`): RMSNorm, self-attention with a
//! fused `wqkv`, 2D RoPE and SDPA, RMSNorm, SwiGLU. No biases.
//!
//! Shapes: `N` rows (`2B` with guidance), `L` tokens of this call, `C` width, `H` heads.

use arvis_attention::{AttentionMask, KvCache, RopeTable, rope2d, sdpa};
use arvis_core::ops::WeightStorage;
use arvis_core::{Tensor, WeightsScope};

use crate::error::Result;
use crate::llamagen::config::LlamaGenConfig;
use crate::var::layers::Linear;

/// One block: `h = x + wo(attn(norm₁(x)))`, `out = h + w2(silu(w1(norm₂(h))) · w3(norm₂(h)))`.
#[derive(Clone, Debug)]
pub(crate) struct Block {
    attention_norm: Tensor,
    wqkv: Linear,
    wo: Linear,
    ffn_norm: Tensor,
    w1: Linear,
    w3: Linear,
    w2: Linear,
    heads: usize,
    eps: f32,
}

/// Where the keys and values of a call come from.
pub(crate) enum Attend<'a> {
    /// Append to the cache, attend causally to everything cached: the `L` new tokens are the
    /// last `L` cache positions, each sees the cache up to itself (one token, the prefill, or a
    /// speculative window of several tokens).
    Cached(&'a mut KvCache),
    /// The whole sequence at once with a causal mask (teacher forcing).
    Causal,
}

impl Block {
    /// Loads the block, its linear weights stored as `storage`.
    pub(crate) fn load(
        scope: &WeightsScope<'_>,
        cfg: &LlamaGenConfig,
        storage: WeightStorage,
    ) -> Result<Self> {
        let (c, f) = (cfg.dim, cfg.ffn_hidden());
        let a = scope.scope("attention");
        let ff = scope.scope("feed_forward");
        Ok(Block {
            attention_norm: scope.get("attention_norm.weight", &[c])?,
            wqkv: Linear::load(&a.scope("wqkv"), 3 * c, c, false, storage)?,
            wo: Linear::load(&a.scope("wo"), c, c, false, storage)?,
            ffn_norm: scope.get("ffn_norm.weight", &[c])?,
            w1: Linear::load(&ff.scope("w1"), f, c, false, storage)?,
            w3: Linear::load(&ff.scope("w3"), f, c, false, storage)?,
            w2: Linear::load(&ff.scope("w2"), c, f, false, storage)?,
            heads: cfg.n_head,
            eps: cfg.norm_eps,
        })
    }

    /// The block on `x` `[N, L, C]` whose first token is at table row `start` of `rope`.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        rope: &RopeTable,
        start: usize,
        attend: Attend<'_>,
    ) -> Result<Tensor> {
        let (n, l, c) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let (h, d) = (self.heads, c / self.heads);
        let qkv = self
            .wqkv
            .forward(&x.rms_norm(Some(&self.attention_norm), self.eps)?)?;
        // [N, L, C] → [N, H, L, d] for each of q, k, v.
        let heads = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(-1, i * c, c)?
                .reshape(&[n, l, h, d])?
                .transpose(1, 2)?)
        };
        let q = rope2d(&heads(0)?, rope, start)?;
        let k = rope2d(&heads(1)?, rope, start)?;
        let v = heads(2)?;
        let scale = (1.0 / (d as f64).sqrt()) as f32;
        let o = match attend {
            Attend::Cached(cache) => {
                cache.append(&k, &v)?;
                // Causal with the queries aligned to the cache's end; for one query this is
                // every cached key (the same as no mask).
                cache.attend(&q, &AttentionMask::Causal, scale)?
            }
            Attend::Causal => sdpa(&q, &k, &v, &AttentionMask::Causal, scale)?,
        };
        let o = o.transpose(1, 2)?.reshape(&[n, l, c])?;
        let x = x.add(&self.wo.forward(&o)?)?;
        let xn = x.rms_norm(Some(&self.ffn_norm), self.eps)?;
        let g = self.w1.forward(&xn)?.silu()?.mul(&self.w3.forward(&xn)?)?;
        Ok(x.add(&self.w2.forward(&g)?)?)
    }
}
