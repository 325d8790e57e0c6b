//! [`VqVaeConfig`]: the hyper-parameters of VAR's multi-scale VQ-VAE.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TokenizerError};

/// Hyper-parameters of the VQ-VAE, as stored under `"vae"` in a weights file's `arvis.config`
/// metadata.
///
/// The fields mirror the official `VQVAE(...)` constructor and its hard-coded `ddconfig`
/// (`models/vqvae.py`). Fields marked *optional* may be absent from the JSON and default to the
/// official behaviour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VqVaeConfig {
    /// Codebook size `V` (4096 in the release).
    pub vocab_size: usize,
    /// Latent channels `Cvae` (32), also the codebook dimension.
    pub z_channels: usize,
    /// Base channel count of encoder and decoder (160).
    pub ch: usize,
    /// Channel multiplier per resolution level (`[1, 1, 2, 2, 4]`); `len − 1` stride-2
    /// downsamples, so the downsample factor is `2^(len − 1)`.
    pub ch_mult: Vec<usize>,
    /// Residual blocks per level in the encoder (the decoder has one more per level).
    pub num_res_blocks: usize,
    /// Self-attention after each residual block of the lowest-resolution level.
    pub using_sa: bool,
    /// Self-attention between the two middle residual blocks.
    pub using_mid_sa: bool,
    /// Kernel size of `quant_conv` / `post_quant_conv` (3 for VAR; padding `ks / 2`).
    pub quant_conv_ks: usize,
    /// Residual ratio `r` of the Phi convs: `phi(h) = (1 − |r|)·h + |r|·conv(h)`; `|r| ≤ 1e-6`
    /// makes every Phi the identity (no weights).
    pub quant_resi: f64,
    /// Phi sharing: 0 = one Phi per scale, 1 = a single shared Phi, `K ≥ 2` = `K` Phis shared
    /// across the scales (VAR: 4).
    pub share_quant_resi: usize,
    /// The official model's inference flag. It only freezes parameters there, so it has no
    /// effect on this (inference-only) implementation; kept for config round-trips.
    #[serde(default = "default_true")]
    pub test_mode: bool,
    /// Token-map side per scale, from small to large (`[1,2,3,4,5,6,8,10,13,16]`). The last
    /// one is the latent's spatial size (image size / downsample factor).
    pub patch_nums: Vec<usize>,
    /// Image channels (3).
    #[serde(default = "default_in_channels")]
    pub in_channels: usize,
    /// *Optional.* Number of Phis when `share_quant_resi == 0`; 0 (default) means one per scale.
    #[serde(default)]
    pub default_qresi_counts: usize,
    /// *Optional.* Cosine-similarity nearest neighbour (`using_znorm=True`) instead of L2
    /// distance. VAR's VAE uses L2 (default `false`).
    #[serde(default)]
    pub using_znorm: bool,
    /// *Optional.* GroupNorm groups (the official `Normalize` hard-codes 32; every channel count
    /// must be divisible by it).
    #[serde(default = "default_groups")]
    pub norm_groups: usize,
}

fn default_true() -> bool {
    true
}

fn default_in_channels() -> usize {
    3
}

fn default_groups() -> usize {
    32
}

/// GroupNorm epsilon of the official `Normalize` (not configurable there either).
pub const NORM_EPS: f32 = 1e-6;

impl Default for VqVaeConfig {
    /// The released `vae_ch160v4096z32` tokenizer of VAR.
    fn default() -> Self {
        VqVaeConfig {
            vocab_size: 4096,
            z_channels: 32,
            ch: 160,
            ch_mult: vec![1, 1, 2, 2, 4],
            num_res_blocks: 2,
            using_sa: true,
            using_mid_sa: true,
            quant_conv_ks: 3,
            quant_resi: 0.5,
            share_quant_resi: 4,
            test_mode: true,
            patch_nums: vec![1, 2, 3, 4, 5, 6, 8, 10, 13, 16],
            in_channels: 3,
            default_qresi_counts: 0,
            using_znorm: false,
            norm_groups: 32,
        }
    }
}

impl VqVaeConfig {
    /// Parses the `"vae"` object (not the whole `arvis.config`) and validates it.
    pub fn from_json(json: &str) -> Result<Self> {
        let cfg: VqVaeConfig = serde_json::from_str(json)?;
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
        let cfg = VqVaeConfig::deserialize(vae)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The encoder/decoder structure: attention (fused `qkv`) after every residual block of the
    /// lowest-resolution level of both (`using_sa`) and in `mid` (`using_mid_sa`).
    pub(crate) fn layout(&self) -> crate::encoder::CodecLayout {
        let n = self.ch_mult.len();
        let lowest: Vec<bool> = (0..n).map(|i| self.using_sa && i + 1 == n).collect();
        crate::encoder::CodecLayout {
            in_channels: self.in_channels,
            ch: self.ch,
            ch_mult: self.ch_mult.clone(),
            num_res_blocks: self.num_res_blocks,
            norm_groups: self.norm_groups,
            z_channels: self.z_channels,
            double_z: false,
            encoder_attn: lowest.clone(),
            decoder_attn: lowest,
            mid_attn: self.using_mid_sa,
            qkv: crate::blocks::QkvLayout::Fused,
        }
    }

    /// Spatial downsample factor of the encoder, `2^(len(ch_mult) − 1)` (16 for VAR).
    pub fn downsample(&self) -> usize {
        1 << self.ch_mult.len().saturating_sub(1)
    }

    /// Side of the latent grid, i.e. the last patch number.
    pub fn latent_size(&self) -> usize {
        self.patch_nums.last().copied().unwrap_or(0)
    }

    /// Side of the images the tokenizer encodes and decodes (`latent_size · downsample`).
    pub fn image_size(&self) -> usize {
        self.latent_size() * self.downsample()
    }

    /// Number of Phi convs stored in the checkpoint (0 when they are identities).
    pub fn num_phis(&self) -> usize {
        if self.quant_resi.abs() <= 1e-6 {
            return 0;
        }
        match self.share_quant_resi {
            0 if self.default_qresi_counts > 0 => self.default_qresi_counts,
            0 => self.patch_nums.len(),
            1 => 1,
            k => k,
        }
    }

    /// Checks the invariants the model relies on; every error names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(TokenizerError::Config(msg));
        if self.vocab_size == 0 || self.vocab_size > u32::MAX as usize {
            return bad(format!(
                "vocab_size {} must be in 1..=2^32-1",
                self.vocab_size
            ));
        }
        if self.z_channels == 0 || self.ch == 0 || self.in_channels == 0 {
            return bad("z_channels, ch and in_channels must be >= 1".into());
        }
        if self.ch_mult.is_empty() || self.ch_mult.contains(&0) {
            return bad(format!(
                "ch_mult {:?} must be non-empty and positive",
                self.ch_mult
            ));
        }
        if self.ch_mult.len() > 16 {
            return bad(format!(
                "ch_mult has {} levels (at most 16)",
                self.ch_mult.len()
            ));
        }
        if self.num_res_blocks == 0 {
            return bad("num_res_blocks must be >= 1".into());
        }
        if self.norm_groups == 0 {
            return bad("norm_groups must be >= 1".into());
        }
        for &m in &self.ch_mult {
            let c = self.ch * m;
            if !c.is_multiple_of(self.norm_groups) {
                return bad(format!(
                    "channel count {} (ch {} × mult {m}) is not divisible by norm_groups {} \
                     (GroupNorm)",
                    c, self.ch, self.norm_groups
                ));
            }
        }
        if self.quant_conv_ks == 0 || self.quant_conv_ks.is_multiple_of(2) {
            return bad(format!(
                "quant_conv_ks {} must be odd (padding ks/2 keeps the size)",
                self.quant_conv_ks
            ));
        }
        if !self.quant_resi.is_finite() {
            return bad("quant_resi must be finite".into());
        }
        if self.patch_nums.is_empty() || self.patch_nums.contains(&0) {
            return bad(format!(
                "patch_nums {:?} must be non-empty and positive",
                self.patch_nums
            ));
        }
        if self.patch_nums.windows(2).any(|w| w[0] > w[1]) {
            return bad(format!(
                "patch_nums {:?} must be non-decreasing (the last is the latent size)",
                self.patch_nums
            ));
        }
        Ok(())
    }
}
