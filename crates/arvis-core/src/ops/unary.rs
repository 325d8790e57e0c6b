//! Activations and other elementwise unary ops.
//!
//! The scalar functions are the definitions (and what a user's own kernel can call); the tensor
//! methods run them over slices compiled for AVX-512 / AVX2+FMA / baseline and dispatched at run
//! time. SiLU, sigmoid and tanh-GELU use the vectorisable [`exp_f32`]; so does exact GELU,
//! through the Chebyshev fit of `erfc` the GPU kernels use (fractional error < 1.2e-7; `libm`'s
//! scalar `erff` kept it from vectorising and cost MAR's ViT ~5 % of its time).

use multiversion::multiversion;
use rayon::prelude::*;

use super::broadcast::PAR_MIN;
use super::lanes::exp_f32;
use crate::error::Result;
use crate::gpu::ops::elementwise::{self, UnaryOp};
use crate::tensor::{Tensor, gpu_context};

/// `√(2/π)`, the constant of the tanh approximation of GELU.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// SiLU / swish: `x · σ(x)`.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp_f32(-x))
}

/// GELU, tanh approximation (PyTorch `approximate='tanh'`; VAR's FFN), computed as
/// `x · σ(2u)` with `u = √(2/π)(x + 0.044715x³)`, which equals `½x(1 + tanh u)`.
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
    x / (1.0 + exp_f32(-2.0 * u))
}

/// GELU, exact: `x · Φ(x) = ½·x·(1 + erf(x/√2))` (PyTorch's default; MAR's ViT), as
/// `x·(1 − ½·erfc(z))` for `x ≥ 0` and `½·x·erfc(z)` below, `z = |x|/√2`: written through
/// `erfc` of a non-negative argument so the negative tail keeps its relative accuracy. The
/// same formula as `shaders/unary.wgsl` and `shaders/matmul.wgsl`.
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    let e = erfc_pos(x.abs() * std::f32::consts::FRAC_1_SQRT_2);
    if x >= 0.0 {
        x * (1.0 - 0.5 * e)
    } else {
        0.5 * x * e
    }
}

/// `erfc(z)` for `z ≥ 0` with fractional error < 1.2e-7 (Numerical Recipes' Chebyshev fit
/// `t·exp(−z² + P(t))`, `t = 1/(1 + z/2)`), branch-free so that slices of it vectorise.
#[inline(always)]
fn erfc_pos(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = -0.822_152_23 + t * 0.170_872_77;
    let p = 1.488_515_9 + t * p;
    let p = -1.135_204 + t * p;
    let p = 0.278_868_07 + t * p;
    let p = -0.186_288_06 + t * p;
    let p = 0.096_784_18 + t * p;
    let p = 0.374_091_96 + t * p;
    let p = 1.000_023_7 + t * p;
    t * exp_f32(-z * z - 1.265_512_2 + t * p)
}

/// Logistic sigmoid.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// An activation fused into a product's epilogue ([`Tensor::linear_act`],
/// [`Tensor::matmul_packed_act`]): on the GPU it is applied in the matmul kernel before the
/// store, on the CPU after the product by the matching tensor op.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Activation {
    /// The identity.
    #[default]
    None,
    /// [`gelu_tanh`] (PyTorch `GELU(approximate='tanh')`).
    GeluTanh,
    /// [`silu`].
    Silu,
    /// [`gelu_erf`] (PyTorch's default GELU).
    GeluErf,
}

impl Activation {
    /// The activation applied to every element of `x` (on `x`'s device).
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::None => Ok(x.clone()),
            Activation::GeluTanh => x.gelu_tanh(),
            Activation::Silu => x.silu(),
            Activation::GeluErf => x.gelu_erf(),
        }
    }

    /// The `ACT` override of `shaders/matmul.wgsl`.
    pub(crate) fn shader_code(self) -> u32 {
        match self {
            Activation::None => 0,
            Activation::GeluTanh => 1,
            Activation::Silu => 2,
            Activation::GeluErf => 3,
        }
    }
}

/// Which activation a slice kernel applies.
#[derive(Clone, Copy)]
enum Act {
    Silu,
    GeluTanh,
    GeluErf,
    Sigmoid,
    Exp,
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn act_slice(dst: &mut [f32], src: &[f32], act: Act) {
    // One loop per activation so each is a straight-line, vectorisable body.
    let it = dst.iter_mut().zip(src);
    match act {
        Act::Silu => it.for_each(|(d, &x)| *d = silu(x)),
        Act::GeluTanh => it.for_each(|(d, &x)| *d = gelu_tanh(x)),
        Act::GeluErf => it.for_each(|(d, &x)| *d = gelu_erf(x)),
        Act::Sigmoid => it.for_each(|(d, &x)| *d = sigmoid(x)),
        Act::Exp => it.for_each(|(d, &x)| *d = exp_f32(x)),
    }
}

fn activation(t: &Tensor, act: Act) -> Result<Tensor> {
    if let Some(ctx) = gpu_context("activation", &[t])? {
        let op = match act {
            Act::Silu => UnaryOp::Silu,
            Act::GeluTanh => UnaryOp::GeluTanh,
            Act::GeluErf => UnaryOp::GeluErf,
            Act::Sigmoid => UnaryOp::Sigmoid,
            Act::Exp => UnaryOp::Exp,
        };
        return elementwise::unary(&ctx, t, op, 0.0, 0.0);
    }
    let x = t.data();
    let mut out = vec![0.0f32; x.len()];
    if x.len() >= PAR_MIN {
        out.par_chunks_mut(PAR_MIN)
            .zip(x.par_chunks(PAR_MIN))
            .for_each(|(d, s)| act_slice(d, s, act));
    } else {
        act_slice(&mut out, x, act);
    }
    Tensor::from_vec(out, t.shape())
}

impl Tensor {
    /// SiLU elementwise.
    pub fn silu(&self) -> Result<Tensor> {
        activation(self, Act::Silu)
    }

    /// GELU (tanh approximation) elementwise.
    pub fn gelu_tanh(&self) -> Result<Tensor> {
        activation(self, Act::GeluTanh)
    }

    /// GELU (exact, erf) elementwise.
    pub fn gelu_erf(&self) -> Result<Tensor> {
        activation(self, Act::GeluErf)
    }

    /// Sigmoid elementwise.
    pub fn sigmoid(&self) -> Result<Tensor> {
        activation(self, Act::Sigmoid)
    }

    /// `exp` elementwise ([`exp_f32`]: ≤ 3 ulp, exactly 0 below −87.3).
    pub fn exp(&self) -> Result<Tensor> {
        activation(self, Act::Exp)
    }

    /// `tanh` elementwise.
    pub fn tanh(&self) -> Result<Tensor> {
        if let Some(ctx) = gpu_context("tanh", &[self])? {
            return elementwise::unary(&ctx, self, UnaryOp::Tanh, 0.0, 0.0);
        }
        self.map(f32::tanh)
    }

    /// Clamps every element into `[lo, hi]` (`max(lo)` then `min(hi)`, so it never panics, even
    /// for `lo > hi` or NaN bounds).
    pub fn clamp(&self, lo: f32, hi: f32) -> Result<Tensor> {
        if let Some(ctx) = gpu_context("clamp", &[self])? {
            return elementwise::unary(&ctx, self, UnaryOp::Clamp, lo, hi);
        }
        self.map(|v| v.max(lo).min(hi))
    }
}
