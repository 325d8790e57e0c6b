//! The building blocks of the VAR transformer (`models/basic_var.py`): linear layers, the
//! AdaLN self-attention block and the AdaLN head norm.
//!
//! Shapes: `N` rows of the batch (`2B` when sampling with guidance, `B` when teacher forcing),
//! `l` tokens of the current step, `C` width, `H` heads, `d = C / H`.

use arvis_attention::{AttentionMask, KvCache, sdpa};
use arvis_core::ops::{Activation, PackedMatrix, WeightStorage};
use arvis_core::{Tensor, WeightsScope};

use crate::error::Result;

/// `ln(100)` in `f32`, the cap of the learned per-head attention scale (the reference takes
/// `torch.log(torch.tensor(100)).item()`, a float32 log).
fn max_scale_mul() -> f32 {
    100f32.ln()
}

/// A linear layer `x·Wᵀ + b`, loaded from PyTorch layout (`weight` is `[out, in]`) and kept
/// packed for [`Tensor::matmul_packed`].
///
/// Why packed: a general GEMM re-packs the weight on every call, which costs as much as the
/// arithmetic when a VAR scale has few rows (`2B·pn²` = 2…512). Measured on the 2-core AVX-512
/// dev VM, `[m, 1024]·[1024, 4096]`, GEMM on a pre-transposed weight vs `matmul_packed`:
/// 0.85 vs 0.67 ms at m = 2 (the weight streamed once at 25 GB/s), 5.2 vs 3.2 ms at m = 72,
/// 21.3 vs 20.0 ms at m = 512 (215 GFLOP/s); see `docs/benchmarks.md`.
#[derive(Clone, Debug)]
pub(crate) struct Linear {
    packed: PackedMatrix,
}

impl Linear {
    /// Loads `weight` `[out, inp]` and, if `bias`, `bias` `[out]` from `scope`, the weight
    /// stored as `storage`.
    pub(crate) fn load(
        scope: &WeightsScope<'_>,
        out: usize,
        inp: usize,
        bias: bool,
        storage: WeightStorage,
    ) -> Result<Self> {
        let weight = scope.get("weight", &[out, inp])?;
        let bias = if bias {
            Some(scope.get("bias", &[out])?)
        } else {
            None
        };
        Linear::from_torch(&weight, bias, storage)
    }

    /// From a PyTorch-layout weight `[out, in]` and optional bias `[out]`, the weight stored as
    /// `storage` (the bias stays f32).
    pub(crate) fn from_torch(
        weight: &Tensor,
        bias: Option<Tensor>,
        storage: WeightStorage,
    ) -> Result<Self> {
        Ok(Linear {
            packed: PackedMatrix::from_linear_with(weight, bias.as_ref(), storage)?,
        })
    }

    /// One product over all leading dims, bias included.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul_packed(&self.packed)?)
    }

    /// [`Linear::forward`] followed by `act`, fused on the GPU.
    pub(crate) fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        Ok(x.matmul_packed_act(&self.packed, act)?)
    }
}

/// The six AdaLN vectors of one block for every batch row, each `[N, 1, C]`, in the
/// reference's chunk order `gamma1, gamma2, scale1, scale2, shift1, shift2`; the scales are
/// stored as `1 + scale`, the factor actually applied.
#[derive(Clone, Debug)]
pub(crate) struct BlockModulation {
    gamma1: Tensor,
    gamma2: Tensor,
    scale1p: Tensor,
    scale2p: Tensor,
    shift1: Tensor,
    shift2: Tensor,
}

impl BlockModulation {
    /// Splits `[N, 6, C]` into the six `[N, 1, C]` vectors.
    pub(crate) fn from_chunks(ada: &Tensor) -> Result<Self> {
        let c = ada.chunk(6, 1)?;
        Ok(BlockModulation {
            gamma1: c[0].clone(),
            gamma2: c[1].clone(),
            scale1p: c[2].add_scalar(1.0)?,
            scale2p: c[3].add_scalar(1.0)?,
            shift1: c[4].clone(),
            shift2: c[5].clone(),
        })
    }
}

/// Where a block's AdaLN vectors come from.
#[derive(Clone, Debug)]
pub(crate) enum AdaSource {
    /// Its own `ada_lin = Sequential(SiLU, Linear(D, 6C))`.
    Own(Linear),
    /// `shared_aln`: the shared linear's output plus this block's learned `ada_gss` `[6, C]`.
    Shared(Tensor),
}

/// Multi-head self-attention with L2-normalised q/k (`SelfAttention`).
#[derive(Clone, Debug)]
pub(crate) struct SelfAttention {
    /// `mat_qkv` with the bias `cat(q_bias, 0, v_bias)` folded in.
    qkv: Linear,
    /// `exp(min(scale_mul_1H11, ln 100))` as `[1, H, 1, 1]`, when `attn_l2_norm`.
    scale_mul: Option<Tensor>,
    proj: Linear,
    heads: usize,
    head_dim: usize,
    /// Softmax scale: 1 with L2-normalised q/k, `0.25/√d` otherwise.
    scale: f32,
}

impl SelfAttention {
    pub(crate) fn load(
        scope: &WeightsScope<'_>,
        c: usize,
        heads: usize,
        l2_norm: bool,
        storage: WeightStorage,
    ) -> Result<Self> {
        let head_dim = c / heads;
        let weight = scope.get("mat_qkv.weight", &[3 * c, c])?;
        let q_bias = scope.get("q_bias", &[c])?;
        let v_bias = scope.get("v_bias", &[c])?;
        // `zero_k_bias` is a non-learned buffer of zeros: recomputed, never read.
        let bias = Tensor::concat(&[&q_bias, &q_bias.new_zeros(&[c])?, &v_bias], 0)?;
        let (scale_mul, scale) = if l2_norm {
            let s = scope.get("scale_mul_1H11", &[1, heads, 1, 1])?;
            let cap = max_scale_mul();
            // `exp(min(s, log 100))` of 16 numbers, once at load: on the host with the same
            // `f32::exp` on every device, then placed where `s` lives.
            let m = s.to_cpu()?.map(move |v| v.min(cap).exp())?;
            (Some(m.to_device_of(&s)?), 1.0)
        } else {
            (None, 0.25 / (head_dim as f32).sqrt())
        };
        Ok(SelfAttention {
            qkv: Linear::from_torch(&weight, Some(bias), storage)?,
            scale_mul,
            proj: Linear::load(&scope.scope("proj"), c, c, true, storage)?,
            heads,
            head_dim,
            scale,
        })
    }

    /// `x`: `[N, l, C]`. With a cache, this step's k/v are appended and the queries attend to
    /// everything cached (the queries are the last `l` positions); `mask` applies to the keys
    /// seen.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        cache: Option<&mut KvCache>,
        mask: &AttentionMask,
    ) -> Result<Tensor> {
        let (n, l, c) = dims3(x)?;
        let (h, d) = (self.heads, self.head_dim);
        // One GEMM for q, k and v of all rows and tokens, then one permute to [3, N, H, l, d].
        let qkv = self
            .qkv
            .forward(x)?
            .reshape(&[n, l, 3, h, d])?
            .permute(&[2, 0, 3, 1, 4])?;
        let parts = qkv.chunk(3, 0)?;
        let shape = [n, h, l, d];
        let (mut q, mut k, v) = (
            parts[0].reshape(&shape)?,
            parts[1].reshape(&shape)?,
            parts[2].reshape(&shape)?,
        );
        if let Some(s) = &self.scale_mul {
            q = q.l2_normalize(-1, 1e-12)?.mul(s)?;
            k = k.l2_normalize(-1, 1e-12)?;
        }
        let out = match cache {
            Some(cache) => {
                cache.append(&k, &v)?;
                cache.attend(&q, mask, self.scale)?
            }
            None => sdpa(&q, &k, &v, mask, self.scale)?,
        };
        let out = out.permute(&[0, 2, 1, 3])?.reshape(&[n, l, c])?;
        self.proj.forward(&out)
    }
}

/// `fc2(gelu_tanh(fc1(x)))`.
#[derive(Clone, Debug)]
pub(crate) struct Ffn {
    fc1: Linear,
    fc2: Linear,
}

impl Ffn {
    pub(crate) fn load(
        scope: &WeightsScope<'_>,
        c: usize,
        hidden: usize,
        storage: WeightStorage,
    ) -> Result<Self> {
        Ok(Ffn {
            fc1: Linear::load(&scope.scope("fc1"), hidden, c, true, storage)?,
            fc2: Linear::load(&scope.scope("fc2"), c, hidden, true, storage)?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.gelu_tanh()?)
    }
}

/// One `AdaLNSelfAttn` block:
/// `x += attn(LN(x)·(1+s1) + b1)·g1; x += ffn(LN(x)·(1+s2) + b2)·g2`.
#[derive(Clone, Debug)]
pub(crate) struct Block {
    pub(crate) ada: AdaSource,
    attn: SelfAttention,
    ffn: Ffn,
    eps: f32,
}

impl Block {
    pub(crate) fn load(
        scope: &WeightsScope<'_>,
        cfg: &super::VarConfig,
        storage: WeightStorage,
    ) -> Result<Self> {
        let c = cfg.embed_dim;
        let ada = if cfg.shared_aln {
            AdaSource::Shared(scope.get("ada_gss", &[1, 1, 6, c])?.reshape(&[6, c])?)
        } else {
            AdaSource::Own(Linear::load(
                &scope.scope("ada_lin.1"),
                6 * c,
                c,
                true,
                storage,
            )?)
        };
        Ok(Block {
            ada,
            attn: SelfAttention::load(
                &scope.scope("attn"),
                c,
                cfg.num_heads,
                cfg.attn_l2_norm,
                storage,
            )?,
            ffn: Ffn::load(&scope.scope("ffn"), c, cfg.ffn_hidden(), storage)?,
            eps: cfg.norm_eps as f32,
        })
    }

    /// The block's AdaLN vectors for the batch. `silu_cond` is `SiLU(cond)` `[N, C]` (own
    /// `ada_lin`); `shared` is the shared linear's output `[N, 6, C]` (shared AdaLN).
    pub(crate) fn modulation(
        &self,
        silu_cond: &Tensor,
        shared: Option<&Tensor>,
    ) -> Result<BlockModulation> {
        let (n, c) = (silu_cond.shape()[0], silu_cond.shape()[1]);
        let ada = match (&self.ada, shared) {
            (AdaSource::Own(lin), _) => lin.forward(silu_cond)?.reshape(&[n, 6, c])?,
            (AdaSource::Shared(gss), Some(shared)) => gss.add(shared)?,
            (AdaSource::Shared(_), None) => {
                return Err(crate::error::ModelError::config(
                    "shared AdaLN block without the shared_ada_lin output",
                ));
            }
        };
        BlockModulation::from_chunks(&ada)
    }

    pub(crate) fn forward(
        &self,
        x: &Tensor,
        m: &BlockModulation,
        cache: Option<&mut KvCache>,
        mask: &AttentionMask,
    ) -> Result<Tensor> {
        let h = self.modulated_norm(x, &m.scale1p, &m.shift1)?;
        let x = x.add(&self.attn.forward(&h, cache, mask)?.mul(&m.gamma1)?)?;
        let h = self.modulated_norm(&x, &m.scale2p, &m.shift2)?;
        Ok(x.add(&self.ffn.forward(&h)?.mul(&m.gamma2)?)?)
    }

    fn modulated_norm(&self, x: &Tensor, scale1p: &Tensor, shift: &Tensor) -> Result<Tensor> {
        Ok(x.layer_norm(None, None, self.eps)?
            .mul(scale1p)?
            .add(shift)?)
    }
}

/// `AdaLNBeforeHead` followed by the `head` linear: `head(LN(x)·(1+scale) + shift)` with
/// `scale, shift = Linear(D, 2C)(SiLU(cond))` (scale first).
#[derive(Clone, Debug)]
pub(crate) struct Head {
    ada_lin: Linear,
    head: Linear,
    eps: f32,
}

/// The head's AdaLN vectors, each `[N, 1, C]` (`1 + scale`, `shift`).
#[derive(Clone, Debug)]
pub(crate) struct HeadModulation {
    scale1p: Tensor,
    shift: Tensor,
}

impl Head {
    pub(crate) fn load(
        weights: &WeightsScope<'_>,
        cfg: &super::VarConfig,
        vocab: usize,
        storage: WeightStorage,
    ) -> Result<Self> {
        let c = cfg.embed_dim;
        Ok(Head {
            ada_lin: Linear::load(&weights.scope("head_nm.ada_lin.1"), 2 * c, c, true, storage)?,
            head: Linear::load(&weights.scope("head"), vocab, c, true, storage)?,
            eps: cfg.norm_eps as f32,
        })
    }

    pub(crate) fn modulation(&self, silu_cond: &Tensor) -> Result<HeadModulation> {
        let (n, c) = (silu_cond.shape()[0], silu_cond.shape()[1]);
        let ada = self.ada_lin.forward(silu_cond)?.reshape(&[n, 2, c])?;
        let parts = ada.chunk(2, 1)?;
        Ok(HeadModulation {
            scale1p: parts[0].add_scalar(1.0)?,
            shift: parts[1].clone(),
        })
    }

    /// Logits `[N, l, V]` for hidden states `[N, l, C]`.
    pub(crate) fn forward(&self, x: &Tensor, m: &HeadModulation) -> Result<Tensor> {
        let h = x
            .layer_norm(None, None, self.eps)?
            .mul(&m.scale1p)?
            .add(&m.shift)?;
        self.head.forward(&h)
    }
}

/// `(N, l, C)` of a rank-3 tensor.
pub(crate) fn dims3(x: &Tensor) -> Result<(usize, usize, usize)> {
    match *x.shape() {
        [n, l, c] => Ok((n, l, c)),
        _ => Err(arvis_core::Error::Shape {
            op: "var",
            expected: "[N, l, C]".into(),
            found: x.shape().to_vec(),
        }
        .into()),
    }
}
