//! The VQ-VAE's building blocks (official `models/basic_vae.py`): GroupNorm, convolutions,
//! [`ResnetBlock`], [`AttnBlock`], [`Downsample`], [`Upsample`].
//!
//! Each block is loaded from a [`WeightsScope`] positioned at the block (e.g.
//! `vae.encoder.down.0.block.1`) with the official key names below it, and every tensor is
//! read with its expected shape, so a wrong checkpoint fails naming the tensor.

use arvis_core::ops::{Conv2dParams, Padding2d};
use arvis_core::{Tensor, WeightsScope};

use crate::config::NORM_EPS;
use crate::error::{Result, TokenizerError};
use crate::params::{Backend, Init, Params};

/// Runs `f` on a [`Params`] view over `scope` (the public `load` functions' adapter).
fn with_scope<T>(
    scope: &WeightsScope<'_>,
    f: impl FnOnce(&Params<'_, '_>) -> Result<T>,
) -> Result<T> {
    let backend = Backend::Weights(scope.clone());
    f(&Params::new(&backend))
}

/// A 2-D convolution with bias (`nn.Conv2d`, groups 1): keys `weight` `[O, I, k, k]`, `bias`
/// `[O]`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Tensor,
    params: Conv2dParams,
}

impl Conv2d {
    pub(crate) fn build(
        p: &Params<'_, '_>,
        cin: usize,
        cout: usize,
        k: usize,
        params: Conv2dParams,
    ) -> Result<Self> {
        Ok(Conv2d {
            weight: p.get("weight", &[cout, cin, k, k], Init::Conv)?,
            bias: p.get("bias", &[cout], Init::Bias)?,
            params,
        })
    }

    /// A stride-1 `k×k` conv with padding `k / 2` (size-preserving for odd `k`).
    pub(crate) fn build_same(
        p: &Params<'_, '_>,
        cin: usize,
        cout: usize,
        k: usize,
    ) -> Result<Self> {
        Self::build(p, cin, cout, k, Conv2dParams::new(1, k / 2))
    }

    /// Loads a stride-1 `k×k` conv with padding `k / 2` from `scope`.
    pub fn load(scope: &WeightsScope<'_>, cin: usize, cout: usize, k: usize) -> Result<Self> {
        with_scope(scope, |p| Self::build_same(p, cin, cout, k))
    }

    /// Builds a conv from tensors (weight `[O, I, kh, kw]`, bias `[O]`).
    pub fn from_tensors(weight: Tensor, bias: Tensor, params: Conv2dParams) -> Self {
        Conv2d {
            weight,
            bias,
            params,
        }
    }

    /// `conv(x)` for `x` `[B, I, H, W]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.conv2d(&self.weight, Some(&self.bias), self.params)?)
    }

    /// The weight `[O, I, kh, kw]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[O]`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }
}

/// `GroupNorm(groups, C, eps = 1e-6, affine)`: keys `weight`, `bias` `[C]`.
#[derive(Clone, Debug)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
}

impl GroupNorm {
    pub(crate) fn build(p: &Params<'_, '_>, c: usize, groups: usize) -> Result<Self> {
        Ok(GroupNorm {
            weight: p.get("weight", &[c], Init::NormWeight)?,
            bias: p.get("bias", &[c], Init::NormBias)?,
            groups,
        })
    }

    /// Loads the norm of `c` channels in `groups` groups from `scope`.
    pub fn load(scope: &WeightsScope<'_>, c: usize, groups: usize) -> Result<Self> {
        with_scope(scope, |p| Self::build(p, c, groups))
    }

    /// `GN(x)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.group_norm(self.groups, Some(&self.weight), Some(&self.bias), NORM_EPS)?)
    }

    /// `silu(GN(x))`, the pre-activation used before every conv of the VAE.
    pub fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward(x)?.silu()?)
    }
}

/// `nin_shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))))))`; `nin_shortcut` is a 1×1 conv
/// when the channel count changes, the identity otherwise. Dropout is 0 at inference.
#[derive(Clone, Debug)]
pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
    nin_shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    pub(crate) fn build(
        p: &Params<'_, '_>,
        cin: usize,
        cout: usize,
        groups: usize,
    ) -> Result<Self> {
        Ok(ResnetBlock {
            norm1: GroupNorm::build(&p.scope("norm1"), cin, groups)?,
            conv1: Conv2d::build_same(&p.scope("conv1"), cin, cout, 3)?,
            norm2: GroupNorm::build(&p.scope("norm2"), cout, groups)?,
            conv2: Conv2d::build_same(&p.scope("conv2"), cout, cout, 3)?,
            nin_shortcut: if cin != cout {
                Some(Conv2d::build_same(&p.scope("nin_shortcut"), cin, cout, 1)?)
            } else {
                None
            },
        })
    }

    /// Loads a block `cin → cout` (GroupNorm with `groups` groups) from `scope`.
    pub fn load(scope: &WeightsScope<'_>, cin: usize, cout: usize, groups: usize) -> Result<Self> {
        with_scope(scope, |p| Self::build(p, cin, cout, groups))
    }

    /// The block applied to `x` `[B, cin, H, W]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward_silu(x)?)?;
        let h = self.conv2.forward(&self.norm2.forward_silu(&h)?)?;
        match &self.nin_shortcut {
            Some(nin) => Ok(nin.forward(x)?.add(&h)?),
            None => Ok(x.add(&h)?),
        }
    }
}

/// How an [`AttnBlock`] stores its query, key and value projections in a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkvLayout {
    /// One fused 1×1 conv `qkv` with `3C` outputs, split q | k | v along channels (VAR).
    Fused,
    /// Three 1×1 convs `q`, `k`, `v` (LlamaGen, taming-transformers).
    Separate,
}

/// Single-head spatial self-attention: 1×1 q, k, v convs, scale `C^-0.5`, softmax over keys,
/// `proj_out` 1×1 and a residual. Keys `norm`, `proj_out` and either a fused `qkv`
/// (`[3C, C, 1, 1]`, [`QkvLayout::Fused`]) or separate `q`, `k`, `v` ([`QkvLayout::Separate`]).
#[derive(Clone, Debug)]
pub struct AttnBlock {
    norm: GroupNorm,
    q: Conv2d,
    k: Conv2d,
    v: Conv2d,
    proj_out: Conv2d,
    scale: f32,
}

impl AttnBlock {
    pub(crate) fn build(p: &Params<'_, '_>, c: usize, groups: usize) -> Result<Self> {
        Self::build_with(p, c, groups, QkvLayout::Fused)
    }

    pub(crate) fn build_with(
        p: &Params<'_, '_>,
        c: usize,
        groups: usize,
        layout: QkvLayout,
    ) -> Result<Self> {
        if layout == QkvLayout::Separate {
            let conv = |name: &str| Conv2d::build_same(&p.scope(name), c, c, 1);
            return Ok(AttnBlock {
                norm: GroupNorm::build(&p.scope("norm"), c, groups)?,
                q: conv("q")?,
                k: conv("k")?,
                v: conv("v")?,
                proj_out: conv("proj_out")?,
                scale: attn_scale(c),
            });
        }
        let qkv = Conv2d::build_same(&p.scope("qkv"), c, 3 * c, 1)?;
        // Split the fused conv once at load: three 1×1 convs produce q, k and v directly,
        // without copying slices out of a 3C-channel activation on every call.
        let part = |i: usize| -> Result<Conv2d> {
            Ok(Conv2d::from_tensors(
                qkv.weight.narrow(0, i * c, c)?,
                qkv.bias.narrow(0, i * c, c)?,
                Conv2dParams::default(),
            ))
        };
        Ok(AttnBlock {
            norm: GroupNorm::build(&p.scope("norm"), c, groups)?,
            q: part(0)?,
            k: part(1)?,
            v: part(2)?,
            proj_out: Conv2d::build_same(&p.scope("proj_out"), c, c, 1)?,
            scale: attn_scale(c),
        })
    }

    /// Loads an attention block over `c` channels with a fused `qkv` conv from `scope`.
    pub fn load(scope: &WeightsScope<'_>, c: usize, groups: usize) -> Result<Self> {
        with_scope(scope, |p| Self::build(p, c, groups))
    }

    /// Loads an attention block over `c` channels stored with `layout` from `scope`.
    pub fn load_with(
        scope: &WeightsScope<'_>,
        c: usize,
        groups: usize,
        layout: QkvLayout,
    ) -> Result<Self> {
        with_scope(scope, |p| Self::build_with(p, c, groups, layout))
    }

    /// `x + proj_out(attn(norm(x)))` for `x` `[B, C, H, W]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        if s.len() != 4 {
            return Err(TokenizerError::shape("AttnBlock", "[B, C, H, W]", s));
        }
        let (b, c, hw) = (s[0], s[1], s[2] * s[3]);
        let xn = self.norm.forward(x)?;
        let q = self.q.forward(&xn)?.reshape(&[b, c, hw])?;
        let k = self.k.forward(&xn)?.reshape(&[b, c, hw])?;
        let v = self.v.forward(&xn)?.reshape(&[b, c, hw])?;
        // w[i, j] = Σ_c q[c, i]·k[c, j] · C^-0.5, softmax over the keys j.
        let w = q
            .matmul_t(&k, true, false)?
            .scale(self.scale)?
            .softmax(-1)?;
        // h[c, i] = Σ_j v[c, j]·w[i, j].
        let h = v.matmul_t(&w, false, true)?.reshape(s)?;
        Ok(x.add(&self.proj_out.forward(&h)?)?)
    }
}

/// `int(C) ** (-0.5)` in Python (f64), applied to an f32 tensor.
fn attn_scale(c: usize) -> f32 {
    (c as f64).powf(-0.5) as f32
}

/// `conv3×3_stride2(F.pad(x, (0, 1, 0, 1)))`: one zero column on the right and one zero row at
/// the bottom, then a stride-2 conv without padding; key `conv`.
#[derive(Clone, Debug)]
pub struct Downsample {
    conv: Conv2d,
}

impl Downsample {
    pub(crate) fn build(p: &Params<'_, '_>, c: usize) -> Result<Self> {
        let params = Conv2dParams {
            stride: (2, 2),
            padding: Padding2d::from_torch_pad([0, 1, 0, 1]),
        };
        Ok(Downsample {
            conv: Conv2d::build(&p.scope("conv"), c, c, 3, params)?,
        })
    }

    /// Loads the downsample of `c` channels from `scope`.
    pub fn load(scope: &WeightsScope<'_>, c: usize) -> Result<Self> {
        with_scope(scope, |p| Self::build(p, c))
    }

    /// Halves `H` and `W` (of even input sizes).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(x)
    }
}

/// `conv3×3(nearest×2(x))`; key `conv`.
#[derive(Clone, Debug)]
pub struct Upsample {
    conv: Conv2d,
}

impl Upsample {
    pub(crate) fn build(p: &Params<'_, '_>, c: usize) -> Result<Self> {
        Ok(Upsample {
            conv: Conv2d::build_same(&p.scope("conv"), c, c, 3)?,
        })
    }

    /// Loads the upsample of `c` channels from `scope`.
    pub fn load(scope: &WeightsScope<'_>, c: usize) -> Result<Self> {
        with_scope(scope, |p| Self::build(p, c))
    }

    /// Doubles `H` and `W`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(&x.upsample_nearest2x()?)
    }
}
