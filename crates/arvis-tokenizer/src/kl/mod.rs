//! MAR's KL-16 VAE (official `models/vae.py` of LTH14/mar, the LDM `AutoencoderKL`):
//! [`KlVae`] with its [`KlVaeConfig`] and [`Posterior`].
//!
//! The encoder and decoder are VAR's ([`crate::encoder`], [`crate::decoder`]: the same LDM
//! key layout `down.{i}` / `up.{i}` / `mid.{block_1, attn_1, block_2}`, with `up.0` the highest
//! resolution); the differences are separate `q`/`k`/`v` attention convs, attention placed by
//! resolution (encoder at 16×16, decoder only in `mid`), an encoder that outputs mean and
//! log-variance (`2·embed_dim` channels) through a 1×1 `quant_conv`, and a 1×1
//! `post_quant_conv`. MAR's latent scale 0.2325 is applied by the generator, not the VAE
//! ([`KlVaeConfig::latent_scale`]).

mod config;
mod model;

pub use config::{KlVaeConfig, LOGVAR_RANGE, MAR_LATENT_SCALE};
pub use model::{KlVae, Posterior};
