#![doc = include_str!("../README.md")]

pub mod blocks;
pub mod config;
pub mod decoder;
pub mod encoder;
pub mod error;
pub mod image;
pub mod kl;
pub mod llamagen;
mod params;
pub mod phi;
pub mod quant;
pub mod token_order;
pub mod vqvae;

pub use config::VqVaeConfig;
pub use error::{Result, TokenizerError};
pub use kl::{KlVae, KlVaeConfig, MAR_LATENT_SCALE, Posterior};
pub use llamagen::{LlamaGenVq, LlamaGenVqConfig};
pub use phi::{Phi, VAR_PHI_TABLE, phi_index_rule, phi_ticks};
pub use quant::MultiScaleVq;
pub use token_order::TokenOrder;
pub use vqvae::VqVae;
