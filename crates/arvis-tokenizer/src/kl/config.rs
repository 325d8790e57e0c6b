//! [`KlVaeConfig`]: the hyper-parameters of MAR's KL-16 VAE.

use serde::{Deserialize, Serialize};

use crate::blocks::QkvLayout;
use crate::encoder::CodecLayout;
use crate::error::{Result, TokenizerError};

/// MAR's latent scale: the generator works on `posterior.sample() · 0.2325` and decodes
/// `vae.decode(tokens / 0.2325)` (official `engine_mar.py` L65 and L159).
pub const MAR_LATENT_SCALE: f32 = 0.2325;

/// Bounds of the posterior log-variance (official `DiagonalGaussianDistribution` clamps it).
pub const LOGVAR_RANGE: (f32, f32) = (-30.0, 20.0);

/// Hyper-parameters of the KL-VAE, as stored under `"vae"` in a weights file's `arvis.config`
/// metadata (family `klvae`).
///
/// The fields mirror the official `AutoencoderKL(embed_dim, ch_mult)` of MAR's `models/vae.py`
/// and the defaults it leaves to `Encoder`/`Decoder` (`ch = 128`, two residual blocks,
/// `resolution = 256`, encoder attention at 16×16, none in the decoder, `GroupNorm(32, eps
/// 1e-6)`). Fields marked *optional* may be absent from the JSON and default to KL-16.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KlVaeConfig {
    /// Latent channels (16): `post_quant_conv` is `embed_dim → embed_dim`, `quant_conv`
    /// `2·embed_dim → 2·embed_dim` (mean and log-variance).
    pub embed_dim: usize,
    /// Channel multiplier per resolution level (`[1, 1, 2, 2, 4]`); `len − 1` stride-2
    /// downsamples, so the downsample factor is `2^(len − 1)` (16).
    pub ch_mult: Vec<usize>,
    /// *Optional.* Base channel count (128).
    #[serde(default = "default_ch")]
    pub ch: usize,
    /// *Optional.* Residual blocks per encoder level (2; the decoder has one more).
    #[serde(default = "default_res_blocks")]
    pub num_res_blocks: usize,
    /// *Optional.* The official `resolution` argument (256). It does not constrain the input
    /// size; it only places attention: level `i` of the encoder works at `resolution / 2^i`.
    #[serde(default = "default_resolution")]
    pub resolution: usize,
    /// *Optional.* Feature-map sides at which the encoder has attention after each residual
    /// block (`[16]`: the lowest level of KL-16).
    #[serde(default = "default_encoder_attn")]
    pub encoder_attn_resolutions: Vec<usize>,
    /// *Optional.* The same for the decoder (`[]`: only the middle attention).
    #[serde(default)]
    pub decoder_attn_resolutions: Vec<usize>,
    /// *Optional.* Image channels (3), in and out.
    #[serde(default = "default_in_channels")]
    pub in_channels: usize,
    /// *Optional.* GroupNorm groups (32, hard-coded by the official `Normalize`).
    #[serde(default = "default_groups")]
    pub norm_groups: usize,
    /// *Optional.* The generator's latent scale ([`MAR_LATENT_SCALE`] = 0.2325). It is not part
    /// of the official `AutoencoderKL` (MAR's engine applies it): [`crate::KlVae::encode`] and
    /// [`crate::KlVae::decode`] ignore it, [`crate::KlVae::encode_tokens`] multiplies by it and
    /// [`crate::KlVae::decode_tokens`] divides by it.
    #[serde(default = "default_scale")]
    pub latent_scale: f32,
}

fn default_ch() -> usize {
    128
}
fn default_res_blocks() -> usize {
    2
}
fn default_resolution() -> usize {
    256
}
fn default_encoder_attn() -> Vec<usize> {
    vec![16]
}
fn default_in_channels() -> usize {
    3
}
fn default_groups() -> usize {
    32
}
fn default_scale() -> f32 {
    MAR_LATENT_SCALE
}

impl Default for KlVaeConfig {
    /// KL-16 (`kl16.ckpt`).
    fn default() -> Self {
        Self::kl16()
    }
}

impl KlVaeConfig {
    /// MAR's KL-16: `AutoencoderKL(embed_dim=16, ch_mult=(1, 1, 2, 2, 4))`, downsample 16.
    pub fn kl16() -> Self {
        KlVaeConfig {
            embed_dim: 16,
            ch_mult: vec![1, 1, 2, 2, 4],
            ch: default_ch(),
            num_res_blocks: default_res_blocks(),
            resolution: default_resolution(),
            encoder_attn_resolutions: default_encoder_attn(),
            decoder_attn_resolutions: Vec::new(),
            in_channels: default_in_channels(),
            norm_groups: default_groups(),
            latent_scale: MAR_LATENT_SCALE,
        }
    }

    /// Parses the `"vae"` object (not the whole `arvis.config`) and validates it.
    pub fn from_json(json: &str) -> Result<Self> {
        let cfg: KlVaeConfig = serde_json::from_str(json)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads `arvis.config` from a weights file's metadata and parses its `"vae"` object.
    pub fn from_weights(weights: &arvis_core::Weights) -> Result<Self> {
        let all = weights.metadata_json(arvis_core::weights::META_CONFIG)?;
        let vae = all.get("vae").ok_or_else(|| {
            TokenizerError::Config(format!(
                "{}: `{}` has no \"vae\" object",
                weights.path().display(),
                arvis_core::weights::META_CONFIG
            ))
        })?;
        let cfg = KlVaeConfig::deserialize(vae)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Spatial downsample factor of the encoder (and upsample factor of the decoder),
    /// `2^(len(ch_mult) − 1)` (16).
    pub fn downsample(&self) -> usize {
        1 << self.ch_mult.len().saturating_sub(1)
    }

    /// Whether encoder level `i` has attention: its feature-map side, `resolution` halved `i`
    /// times (the official `curr_res`), is one of `encoder_attn_resolutions`.
    pub fn encoder_attn_at(&self, i: usize) -> bool {
        self.encoder_attn_resolutions
            .contains(&(self.resolution >> i))
    }

    /// Whether decoder level `up.{i}` has attention: the official decoder starts at
    /// `resolution / 2^(n − 1)` (floored) and doubles it per level.
    pub fn decoder_attn_at(&self, i: usize) -> bool {
        let n = self.ch_mult.len();
        let lowest = self.resolution >> (n - 1);
        self.decoder_attn_resolutions
            .contains(&(lowest << (n - 1 - i)))
    }

    /// The shared encoder/decoder structure (separate q, k, v; mean and log-variance out).
    pub(crate) fn layout(&self) -> CodecLayout {
        let n = self.ch_mult.len();
        CodecLayout {
            in_channels: self.in_channels,
            ch: self.ch,
            ch_mult: self.ch_mult.clone(),
            num_res_blocks: self.num_res_blocks,
            norm_groups: self.norm_groups,
            z_channels: self.embed_dim,
            double_z: true,
            encoder_attn: (0..n).map(|i| self.encoder_attn_at(i)).collect(),
            decoder_attn: (0..n).map(|i| self.decoder_attn_at(i)).collect(),
            mid_attn: true,
            qkv: QkvLayout::Separate,
        }
    }

    /// Checks the invariants the model relies on; every error names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(TokenizerError::Config(msg));
        if self.embed_dim == 0 || self.ch == 0 || self.in_channels == 0 {
            return bad("embed_dim, ch and in_channels must be >= 1".into());
        }
        if self.ch_mult.is_empty() || self.ch_mult.len() > 16 || self.ch_mult.contains(&0) {
            return bad(format!(
                "ch_mult {:?} must have 1..=16 positive entries",
                self.ch_mult
            ));
        }
        if self.num_res_blocks == 0 || self.norm_groups == 0 {
            return bad("num_res_blocks and norm_groups must be >= 1".into());
        }
        for c in std::iter::once(self.ch).chain(self.ch_mult.iter().map(|m| self.ch * m)) {
            if !c.is_multiple_of(self.norm_groups) {
                return bad(format!(
                    "channel count {c} (ch {} × ch_mult {:?}) is not divisible by norm_groups \
                     {} (GroupNorm)",
                    self.ch, self.ch_mult, self.norm_groups
                ));
            }
        }
        if !(self.latent_scale.is_finite() && self.latent_scale > 0.0) {
            return bad(format!(
                "latent_scale {} must be finite and positive",
                self.latent_scale
            ));
        }
        Ok(())
    }
}
