//! VAR: visual autoregressive modelling by next-scale prediction (FoundationVision/VAR,
//! `models/var.py` and `models/basic_var.py`).
//!
//! An image is a pyramid of token maps (`1×1, 2×2, …, 16×16` for the official models, 680
//! tokens). The transformer predicts a whole scale at once from the class and all coarser
//! scales; the multi-scale VQ-VAE ([`arvis_tokenizer::VqVae`]) turns the tokens into the latent
//! `f̂` and the image.
//!
//! - [`Var::load`] / [`Var::from_parts`] / [`Var::random`] build a model;
//! - [`Var::generate`] samples images with classifier-free guidance ([`VarRequest`]);
//! - [`Var::generate_with_indices`] replays the loop with given tokens and returns the logits;
//! - [`Var::forward_teacher`] runs all scales at once under the block-causal mask.
//!
//! # Architecture (what the code implements)
//!
//! Width `C`, `H` heads of `C/H`, `depth` blocks, condition `cond = class_emb(label)` (the
//! class table's last row is the null class used for guidance).
//!
//! - Tokens of the first scale: `cond + pos_start + lvl_embed[0] + pos_1LC[0]`; of scale `si`:
//!   `word_embed(area(f̂ → pn_si)) + lvl_embed[si] + pos_1LC[scale si]`.
//! - Block: AdaLN vectors `gamma1, gamma2, scale1, scale2, shift1, shift2` (that order) from
//!   `ada_lin(SiLU(cond))` — or, with `shared_aln`, `shared_ada_lin(SiLU(cond)) + ada_gss`;
//!   `x += attn(LN(x)·(1+scale1) + shift1)·gamma1`, `x += ffn(LN(x)·(1+scale2) + shift2)·gamma2`.
//!   LayerNorm without affine, eps `norm_eps`; FFN `fc2(gelu_tanh(fc1(·)))`.
//! - Attention: `mat_qkv` without bias plus the bias `(q_bias, 0, v_bias)`; with `attn_l2_norm`
//!   q and k are L2-normalised per head, q is multiplied by `exp(min(scale_mul_1H11, ln 100))`,
//!   and the softmax scale is 1.
//! - Head: `head(LN(x)·(1+scale) + shift)` with `scale, shift` from `head_nm.ada_lin(SiLU(cond))`.
//!
//! Not implemented: the reference's `more_smooth` option (a Gumbel-softmax blend of codebook
//! entries, used only for visualisation) and random labels (`label_B=None`); pass labels.
//!
//! The AdaLN vectors depend only on the labels, so they are computed once per request (one
//! small GEMM per block), not per scale or per token. Every linear layer is one GEMM over all
//! `2B·pn²` tokens of a step; attention runs through [`arvis_attention::sdpa`] with one
//! [`arvis_attention::KvCache`] per block.

mod config;
mod generate;
pub(crate) mod layers;
mod model;
pub mod random;

pub use arvis_core::ops::WeightStorage;
/// The VQ-VAE configuration (re-exported from `arvis-tokenizer` for convenience).
pub use arvis_tokenizer::VqVaeConfig;
pub use config::VarConfig;
pub use generate::{Progress, SAMPLING_STREAM, VarOutput, VarReplay, VarRequest, VarSample};
pub use model::{LoadOptions, VAR_FAMILY, Var, VarFileConfig};
