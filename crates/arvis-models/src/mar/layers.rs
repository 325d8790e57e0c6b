//! MAR's transformer block: timm 0.9.12 `Block` as MAR builds it (`qkv_bias=True`, no
//! q/k norm, no layer scale, `norm_layer` = LayerNorm with the configured eps, `Mlp` with exact
//! GELU). Dropouts are inactive at inference.
//!
//! Shapes: `N` rows (`2B` with guidance), `L` tokens, `C` width, `H` heads, `d = C / H`.

use arvis_attention::{AttentionMask, sdpa};
use arvis_core::ops::{Activation, WeightStorage};
use arvis_core::{Tensor, WeightsScope};

use crate::error::Result;
use crate::var::layers::Linear;

/// A LayerNorm's affine parameters.
#[derive(Clone, Debug)]
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    pub(crate) fn load(scope: &WeightsScope<'_>, c: usize, eps: f32) -> Result<Self> {
        Ok(LayerNorm {
            weight: scope.get("weight", &[c])?,
            bias: scope.get("bias", &[c])?,
            eps,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.layer_norm(Some(&self.weight), Some(&self.bias), self.eps)?)
    }
}

/// `x = x + proj(attn(norm1(x)))`, `x = x + fc2(gelu(fc1(norm2(x))))`, bidirectional
/// attention over all `L` tokens.
#[derive(Clone, Debug)]
pub(crate) struct VitBlock {
    norm1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl VitBlock {
    /// Loads `norm1`, `attn.qkv`, `attn.proj`, `norm2`, `mlp.fc1`, `mlp.fc2` (all with bias)
    /// for width `c`, `heads` heads and MLP hidden size `hidden`.
    pub(crate) fn load(
        scope: &WeightsScope<'_>,
        c: usize,
        heads: usize,
        hidden: usize,
        eps: f32,
    ) -> Result<Self> {
        let lin = |name: &str, out: usize, inp: usize| {
            Linear::load(&scope.scope(name), out, inp, true, WeightStorage::F32)
        };
        Ok(VitBlock {
            norm1: LayerNorm::load(&scope.scope("norm1"), c, eps)?,
            qkv: lin("attn.qkv", 3 * c, c)?,
            proj: lin("attn.proj", c, c)?,
            norm2: LayerNorm::load(&scope.scope("norm2"), c, eps)?,
            fc1: lin("mlp.fc1", hidden, c)?,
            fc2: lin("mlp.fc2", c, hidden)?,
            heads,
        })
    }

    /// The block on `x` `[N, L, C]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, l, c) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let (h, d) = (self.heads, c / self.heads);
        let qkv = self.qkv.forward(&self.norm1.forward(x)?)?;
        // timm: qkv.reshape(N, L, 3, H, d).permute(2, 0, 3, 1, 4): q, k, v are the three
        // C-wide column blocks, each split into H heads of d.
        let part = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(-1, i * c, c)?
                .reshape(&[n, l, h, d])?
                .transpose(1, 2)?)
        };
        let scale = (1.0 / (d as f64).sqrt()) as f32;
        let o = sdpa(&part(0)?, &part(1)?, &part(2)?, &AttentionMask::None, scale)?;
        let o = o.transpose(1, 2)?.reshape(&[n, l, c])?;
        let x = x.add(&self.proj.forward(&o)?)?;
        let m = self
            .fc1
            .forward_act(&self.norm2.forward(&x)?, Activation::GeluErf)?;
        Ok(x.add(&self.fc2.forward(&m)?)?)
    }
}
