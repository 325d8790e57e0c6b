//! Activations and other elementwise unary ops.

use crate::tensor::Tensor;

/// `√(2/π)`, the constant of the tanh approximation of GELU.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// SiLU / swish: `x · σ(x)`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// GELU, tanh approximation (PyTorch `approximate='tanh'`; VAR's FFN).
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

/// GELU, exact: `x · Φ(x) = ½·x·(1 + erf(x/√2))` (PyTorch's default; MAR's ViT).
#[inline]
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Logistic sigmoid.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Tensor {
    /// SiLU elementwise.
    pub fn silu(&self) -> Tensor {
        self.map(silu)
    }

    /// GELU (tanh approximation) elementwise.
    pub fn gelu_tanh(&self) -> Tensor {
        self.map(gelu_tanh)
    }

    /// GELU (exact, erf) elementwise.
    pub fn gelu_erf(&self) -> Tensor {
        self.map(gelu_erf)
    }

    /// Sigmoid elementwise.
    pub fn sigmoid(&self) -> Tensor {
        self.map(sigmoid)
    }

    /// `tanh` elementwise.
    pub fn tanh(&self) -> Tensor {
        self.map(f32::tanh)
    }

    /// `exp` elementwise.
    pub fn exp(&self) -> Tensor {
        self.map(f32::exp)
    }

    /// Clamps every element into `[lo, hi]`.
    pub fn clamp(&self, lo: f32, hi: f32) -> Tensor {
        self.map(|v| v.clamp(lo, hi))
    }
}
