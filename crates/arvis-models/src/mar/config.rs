//! [`MarConfig`]: the hyper-parameters of MAR's masked autoencoder (official `MAR.__init__`).

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Hyper-parameters of MAR (official `models/mar.py`), as stored under `"mar"` in a weights
/// file's `arvis.config`. Field names follow the official constructor. The diffusion head's
/// shape is read off its tensors (`diffloss.net.*`), not from here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarConfig {
    /// Image side in pixels (256).
    pub img_size: usize,
    /// Downsample factor of the KL VAE (16).
    pub vae_stride: usize,
    /// Latent pixels per token side (1 in every release).
    pub patch_size: usize,
    /// Latent channels of the VAE (16).
    pub vae_embed_dim: usize,
    /// Encoder width (768 for MAR-B).
    pub encoder_embed_dim: usize,
    /// Encoder blocks (12 for MAR-B).
    pub encoder_depth: usize,
    /// Encoder attention heads.
    pub encoder_num_heads: usize,
    /// Decoder width.
    pub decoder_embed_dim: usize,
    /// Decoder blocks.
    pub decoder_depth: usize,
    /// Decoder attention heads.
    pub decoder_num_heads: usize,
    /// *Optional.* MLP hidden size over width (4).
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: f64,
    /// Real classes (1000); unconditional rows use the learned `fake_latent`.
    pub class_num: usize,
    /// *Optional.* Class-embedding tokens in front of the image tokens (64).
    #[serde(default = "default_buffer_size")]
    pub buffer_size: usize,
    /// *Optional.* Epsilon of the blocks' and final layer norms (1e-6: the releases pass
    /// `partial(nn.LayerNorm, eps=1e-6)`; `z_proj_ln` always uses 1e-6).
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f32,
}

fn default_mlp_ratio() -> f64 {
    4.0
}
fn default_buffer_size() -> usize {
    64
}
fn default_norm_eps() -> f32 {
    1e-6
}

impl MarConfig {
    fn preset(depth: usize, width: usize, heads: usize) -> Self {
        MarConfig {
            img_size: 256,
            vae_stride: 16,
            patch_size: 1,
            vae_embed_dim: 16,
            encoder_embed_dim: width,
            encoder_depth: depth,
            encoder_num_heads: heads,
            decoder_embed_dim: width,
            decoder_depth: depth,
            decoder_num_heads: heads,
            mlp_ratio: 4.0,
            class_num: 1000,
            buffer_size: 64,
            norm_eps: 1e-6,
        }
    }

    /// MAR-B (`mar_base`): 12 + 12 blocks, width 768, 12 heads.
    pub fn mar_base() -> Self {
        Self::preset(12, 768, 12)
    }

    /// MAR-L (`mar_large`): 16 + 16 blocks, width 1024, 16 heads.
    pub fn mar_large() -> Self {
        Self::preset(16, 1024, 16)
    }

    /// MAR-H (`mar_huge`): 20 + 20 blocks, width 1280, 16 heads.
    pub fn mar_huge() -> Self {
        Self::preset(20, 1280, 16)
    }

    /// Tokens per side, `img_size / vae_stride / patch_size` (16).
    pub fn seq_side(&self) -> usize {
        self.img_size / self.vae_stride / self.patch_size
    }

    /// Image tokens, `seq_side²` (256).
    pub fn seq_len(&self) -> usize {
        self.seq_side() * self.seq_side()
    }

    /// Channels of one token, `vae_embed_dim · patch_size²` (16).
    pub fn token_embed_dim(&self) -> usize {
        self.vae_embed_dim * self.patch_size * self.patch_size
    }

    /// Hidden size of a block's MLP, `int(width · mlp_ratio)` (timm's `Block`).
    pub fn mlp_hidden(&self, width: usize) -> usize {
        (width as f64 * self.mlp_ratio) as usize
    }

    /// Checks the invariants the model relies on.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(ModelError::config(msg));
        let sizes = [
            self.img_size,
            self.vae_stride,
            self.patch_size,
            self.vae_embed_dim,
            self.encoder_embed_dim,
            self.encoder_depth,
            self.encoder_num_heads,
            self.decoder_embed_dim,
            self.decoder_depth,
            self.decoder_num_heads,
            self.class_num,
        ];
        if sizes.contains(&0) {
            return bad(format!("every size must be >= 1: {self:?}"));
        }
        if !self
            .img_size
            .is_multiple_of(self.vae_stride * self.patch_size)
            || self.seq_len() == 0
        {
            return bad(format!(
                "img_size {} is not a multiple of vae_stride {} × patch_size {}",
                self.img_size, self.vae_stride, self.patch_size
            ));
        }
        for (what, w, h) in [
            ("encoder", self.encoder_embed_dim, self.encoder_num_heads),
            ("decoder", self.decoder_embed_dim, self.decoder_num_heads),
        ] {
            if !w.is_multiple_of(h) {
                return bad(format!("{what} width {w} does not split into {h} heads"));
            }
        }
        if !(self.mlp_ratio.is_finite() && self.mlp_ratio > 0.0) {
            return bad(format!("mlp_ratio {} must be > 0", self.mlp_ratio));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return bad(format!("norm_eps {} must be > 0", self.norm_eps));
        }
        Ok(())
    }
}
