//! CPU implementations of the tensor ops, as methods on [`Tensor`](crate::Tensor).
//!
//! One file per op family; each op validates its inputs (returning [`Error`](crate::Error) with
//! the op's name and the offending shape) before touching data. Parallelism is rayon; GEMM-shaped
//! work goes through the single `sgemm` entry point in `ops/gemm.rs`.

mod broadcast;
mod conv;
pub(crate) mod gemm;
pub(crate) mod lanes;
mod matmul;
mod modulate;
mod norm;
pub(crate) mod packed;
mod resize;
mod shape;
pub(crate) mod softmax;
mod unary;
mod winograd;

pub use broadcast::broadcast_shapes;
pub use conv::{Conv2dParams, Padding2d};
pub use lanes::exp_f32;
pub use packed::{PackedMatrix, WeightStorage, round_to_f16};
pub use shape::axis_index;
pub use unary::{Activation, gelu_erf, gelu_tanh, sigmoid, silu};
pub use winograd::Conv3x3Winograd;
