//! MAR (LTH14/mar, "Autoregressive Image Generation without Vector Quantization"): a masked
//! encoder–decoder over the KL-16 VAE's continuous tokens ([`arvis_tokenizer::KlVae`]) that
//! reveals the tokens in a random order over a cosine schedule of AR iterations, each token
//! drawn by a per-token diffusion head ([`arvis_heads::DiffusionHead`]), with classifier-free
//! guidance against the learned `fake_latent`.

mod config;
mod generate;
mod layers;
mod model;
mod patch;
pub mod random;

pub use arvis_heads::{DiffusionHeadConfig, StepAnnealing, StepSchedule};
pub use arvis_tokenizer::{KlVae, KlVaeConfig};
pub use config::MarConfig;
pub use generate::{CfgSchedule, HeadSteps, MAR_SAMPLING_STREAM, MarIteration, MarRequest, MarRun};
pub use model::{MAR_FAMILY, Mar};
