#![doc = include_str!("../README.md")]

pub mod blocks;
pub mod config;
pub mod decoder;
pub mod encoder;
pub mod error;
pub mod image;
mod params;
pub mod phi;
pub mod quant;
pub mod vqvae;

pub use config::VqVaeConfig;
pub use error::{Result, TokenizerError};
pub use phi::{Phi, VAR_PHI_TABLE, phi_index_rule, phi_ticks};
pub use quant::MultiScaleVq;
pub use vqvae::VqVae;
