//! [`LlamaGenVqConfig`]: the hyper-parameters of LlamaGen's VQ tokenizers.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TokenizerError};

/// Hyper-parameters of LlamaGen's VQ model, as stored under `"vq"` in a weights file's
/// `arvis.config` metadata.
///
/// The fields mirror the official `ModelArgs` of `vq_model.py` plus the constructor defaults of
/// its `Encoder`/`Decoder` (`ch = 128`, two residual blocks, three image channels) and the
/// `GroupNorm(32, eps = 1e-6)` of its `Normalize`. Fields marked *optional* may be absent from
/// the JSON and default to VQ-16.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlamaGenVqConfig {
    /// Codebook size (16384).
    pub codebook_size: usize,
    /// Codebook dimension (8): the channels of `quant_conv`'s output.
    pub codebook_embed_dim: usize,
    /// L2-normalise latents and codebook before the look-up (`true` in every release).
    #[serde(default = "default_true")]
    pub codebook_l2_norm: bool,
    /// Channel multiplier per encoder level (`[1, 1, 2, 2, 4]` for VQ-16, `[1, 2, 2, 4]` for
    /// VQ-8); `len − 1` stride-2 downsamples.
    pub encoder_ch_mult: Vec<usize>,
    /// Channel multiplier per decoder level (same as the encoder's in the releases).
    pub decoder_ch_mult: Vec<usize>,
    /// Channels between encoder/decoder and the 1×1 quant convs (256).
    pub z_channels: usize,
    /// *Optional.* Base channel count (128).
    #[serde(default = "default_ch")]
    pub ch: usize,
    /// *Optional.* Residual blocks per encoder level (2; the decoder has one more).
    #[serde(default = "default_res_blocks")]
    pub num_res_blocks: usize,
    /// *Optional.* Image channels (3).
    #[serde(default = "default_in_channels")]
    pub in_channels: usize,
    /// *Optional.* GroupNorm groups (32, hard-coded by the official `Normalize`).
    #[serde(default = "default_groups")]
    pub norm_groups: usize,
}

fn default_true() -> bool {
    true
}
fn default_ch() -> usize {
    128
}
fn default_res_blocks() -> usize {
    2
}
fn default_in_channels() -> usize {
    3
}
fn default_groups() -> usize {
    32
}

/// `F.normalize`'s default epsilon, used on latents and codebook rows.
pub const L2_NORM_EPS: f32 = 1e-12;

impl Default for LlamaGenVqConfig {
    /// VQ-16 (`vq_ds16_c2i.pt`).
    fn default() -> Self {
        Self::vq16()
    }
}

impl LlamaGenVqConfig {
    /// VQ-16: downsample 16, codebook 16384 × 8 (official `VQ_16`).
    pub fn vq16() -> Self {
        LlamaGenVqConfig {
            codebook_size: 16384,
            codebook_embed_dim: 8,
            codebook_l2_norm: true,
            encoder_ch_mult: vec![1, 1, 2, 2, 4],
            decoder_ch_mult: vec![1, 1, 2, 2, 4],
            z_channels: 256,
            ch: 128,
            num_res_blocks: 2,
            in_channels: 3,
            norm_groups: 32,
        }
    }

    /// VQ-8: downsample 8 (official `VQ_8`).
    pub fn vq8() -> Self {
        LlamaGenVqConfig {
            encoder_ch_mult: vec![1, 2, 2, 4],
            decoder_ch_mult: vec![1, 2, 2, 4],
            ..Self::vq16()
        }
    }

    /// Parses the `"vq"` object (not the whole `arvis.config`) and validates it.
    pub fn from_json(json: &str) -> Result<Self> {
        let cfg: LlamaGenVqConfig = serde_json::from_str(json)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads `arvis.config` from a weights file's metadata and parses its `"vq"` object.
    pub fn from_weights(weights: &arvis_core::Weights) -> Result<Self> {
        let all = weights.metadata_json(arvis_core::weights::META_CONFIG)?;
        let vq = all.get("vq").ok_or_else(|| {
            TokenizerError::Config(format!(
                "{}: `{}` has no \"vq\" object",
                weights.path().display(),
                arvis_core::weights::META_CONFIG
            ))
        })?;
        let cfg = LlamaGenVqConfig::deserialize(vq)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Spatial downsample factor of the encoder, `2^(len(encoder_ch_mult) − 1)` (16).
    pub fn downsample(&self) -> usize {
        1 << self.encoder_ch_mult.len().saturating_sub(1)
    }

    /// Upsample factor of the decoder, `2^(len(decoder_ch_mult) − 1)` (16).
    pub fn upsample(&self) -> usize {
        1 << self.decoder_ch_mult.len().saturating_sub(1)
    }

    /// Checks the invariants the model relies on; every error names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(TokenizerError::Config(msg));
        if self.codebook_size == 0 || self.codebook_size > u32::MAX as usize {
            return bad(format!(
                "codebook_size {} must be in 1..=2^32-1",
                self.codebook_size
            ));
        }
        if self.codebook_embed_dim == 0
            || self.z_channels == 0
            || self.ch == 0
            || self.in_channels == 0
        {
            return bad("codebook_embed_dim, z_channels, ch and in_channels must be >= 1".into());
        }
        if self.num_res_blocks == 0 || self.norm_groups == 0 {
            return bad("num_res_blocks and norm_groups must be >= 1".into());
        }
        if !self.ch.is_multiple_of(self.norm_groups) {
            return bad(format!(
                "ch {} is not divisible by norm_groups {} (GroupNorm after conv_in)",
                self.ch, self.norm_groups
            ));
        }
        for (field, mult) in [
            ("encoder_ch_mult", &self.encoder_ch_mult),
            ("decoder_ch_mult", &self.decoder_ch_mult),
        ] {
            if mult.is_empty() || mult.len() > 16 || mult.contains(&0) {
                return bad(format!(
                    "{field} {mult:?} must have 1..=16 positive entries"
                ));
            }
            for &m in mult {
                if !(self.ch * m).is_multiple_of(self.norm_groups) {
                    return bad(format!(
                        "{field}: channel count {} (ch {} × {m}) is not divisible by \
                         norm_groups {} (GroupNorm)",
                        self.ch * m,
                        self.ch,
                        self.norm_groups
                    ));
                }
            }
        }
        Ok(())
    }
}
