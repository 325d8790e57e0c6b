//! LlamaGen's VQ tokenizers (official `tokenizer/tokenizer_image/vq_model.py` of
//! FoundationVision/LlamaGen): [`LlamaGenVq`] (VQ-16 and VQ-8) with its [`LlamaGenVqConfig`].
//!
//! The building blocks are VAR's ([`crate::blocks`]); the differences are the checkpoint
//! layout (`conv_blocks.{i}.res/attn/downsample/upsample`, `mid.{0,1,2}`, separate `q`/`k`/`v`
//! attention convs), the decoder's level order (`conv_blocks.0` is the *lowest* resolution),
//! 1×1 `quant_conv`/`post_quant_conv`, and a single-scale codebook that is L2-normalised at
//! every look-up.

mod codec;
mod config;
mod model;
mod quant;

pub use codec::{LlamaGenDecoder, LlamaGenEncoder};
pub use config::LlamaGenVqConfig;
pub use model::LlamaGenVq;
pub use quant::NormalizedCodebook;
