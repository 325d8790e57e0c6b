//! LlamaGen's class-conditional GPT (official `autoregressive/models/gpt.py` and `generate.py`
//! of FoundationVision/LlamaGen): raster next-token prediction over the VQ-16 token grid
//! ([`arvis_tokenizer::LlamaGenVq`]), 2D RoPE, KV-cached decoding and classifier-free guidance
//! `u + (c − u)·cfg` on a doubled batch; [`LlamaGenSpec`] runs it under the speculative samplers
//! of `arvis-spec`.

mod config;
mod generate;
mod layers;
mod model;
pub mod random;
mod speculative;

pub use arvis_tokenizer::{LlamaGenVq, LlamaGenVqConfig, TokenOrder};
pub use config::LlamaGenConfig;
pub use generate::{LLAMAGEN_SAMPLING_STREAM, LlamaGenGuidance, LlamaGenRun};
pub use model::{LLAMAGEN_FAMILY, LlamaGen};
pub use speculative::{LlamaGenSpec, codebook_embeddings};
