//! The LDM-style encoder shared by VAR's VQ-VAE (official `Encoder`, `double_z=False`) and
//! MAR's KL-16 VAE (`double_z=True`): image → latent `[B, Cz, h, w]`.

use arvis_core::{Tensor, WeightsScope};

use crate::blocks::{AttnBlock, Conv2d, Downsample, GroupNorm, QkvLayout, ResnetBlock};
use crate::config::VqVaeConfig;
use crate::error::Result;
use crate::params::{Backend, Params};

/// The structure of an LDM-style encoder/decoder pair (`down.{i}` / `up.{i}` levels,
/// `mid.{block_1, attn_1, block_2}`), which VAR's VQ-VAE and MAR's KL-VAE share; the two differ
/// only in the fields below.
#[derive(Clone, Debug)]
pub(crate) struct CodecLayout {
    pub(crate) in_channels: usize,
    pub(crate) ch: usize,
    pub(crate) ch_mult: Vec<usize>,
    /// Encoder residual blocks per level (the decoder has one more).
    pub(crate) num_res_blocks: usize,
    pub(crate) norm_groups: usize,
    /// Decoder input channels; the encoder outputs twice as many with `double_z`.
    pub(crate) z_channels: usize,
    /// Encoder `conv_out` emits mean and log-variance (`2·z_channels`, KL-VAE).
    pub(crate) double_z: bool,
    /// Attention after each residual block of encoder level `i` (`down.{i}.attn.{b}`).
    pub(crate) encoder_attn: Vec<bool>,
    /// Attention after each residual block of decoder level `i` (`up.{i}.attn.{b}`).
    pub(crate) decoder_attn: Vec<bool>,
    /// `mid.attn_1` between the two middle residual blocks.
    pub(crate) mid_attn: bool,
    /// How attention blocks store q, k, v (fused for VAR, separate for LDM/MAR).
    pub(crate) qkv: QkvLayout,
}

/// One resolution level: residual blocks, optional attention after each, optional downsample.
#[derive(Clone, Debug)]
pub(crate) struct Level {
    pub(crate) blocks: Vec<ResnetBlock>,
    pub(crate) attns: Vec<AttnBlock>,
    pub(crate) resample: Option<Resample>,
}

/// The level's resampling conv (down in the encoder, up in the decoder).
#[derive(Clone, Debug)]
pub(crate) enum Resample {
    Down(Downsample),
    Up(crate::blocks::Upsample),
}

impl Level {
    /// `block[i]` then `attn[i]` (when the level has attention) for each block, then resample.
    pub(crate) fn forward(&self, mut h: Tensor) -> Result<Tensor> {
        for (i, block) in self.blocks.iter().enumerate() {
            h = block.forward(&h)?;
            if let Some(attn) = self.attns.get(i) {
                h = attn.forward(&h)?;
            }
        }
        match &self.resample {
            Some(Resample::Down(d)) => d.forward(&h),
            Some(Resample::Up(u)) => u.forward(&h),
            None => Ok(h),
        }
    }
}

/// `block_1 → attn_1 (optional) → block_2`, keys `mid.{block_1, attn_1, block_2}`.
#[derive(Clone, Debug)]
pub(crate) struct Mid {
    block_1: ResnetBlock,
    attn_1: Option<AttnBlock>,
    block_2: ResnetBlock,
}

impl Mid {
    /// A middle stage from its parts (for tokenizers whose checkpoint keys differ from VAR's).
    pub(crate) fn from_parts(
        block_1: ResnetBlock,
        attn_1: Option<AttnBlock>,
        block_2: ResnetBlock,
    ) -> Self {
        Mid {
            block_1,
            attn_1,
            block_2,
        }
    }

    pub(crate) fn build(p: &Params<'_, '_>, c: usize, layout: &CodecLayout) -> Result<Self> {
        let g = layout.norm_groups;
        Ok(Mid {
            block_1: ResnetBlock::build(&p.scope("block_1"), c, c, g)?,
            attn_1: if layout.mid_attn {
                Some(AttnBlock::build_with(&p.scope("attn_1"), c, g, layout.qkv)?)
            } else {
                None
            },
            block_2: ResnetBlock::build(&p.scope("block_2"), c, c, g)?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.block_1.forward(x)?;
        if let Some(attn) = &self.attn_1 {
            h = attn.forward(&h)?;
        }
        self.block_2.forward(&h)
    }
}

/// The encoder: `conv_in`, `down.{i}` levels (attention where the model places it — VAR: the
/// lowest resolution; MAR's KL-VAE: the 16×16 level —, a stride-2 downsample after every level
/// but the last), `mid`, then `norm_out`, SiLU, `conv_out` to `z_channels` (VQ-VAE) or
/// `2·z_channels` (KL-VAE: mean and log-variance).
#[derive(Clone, Debug)]
pub struct Encoder {
    conv_in: Conv2d,
    down: Vec<Level>,
    mid: Mid,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    in_channels: usize,
}

impl Encoder {
    pub(crate) fn build(p: &Params<'_, '_>, cfg: &CodecLayout) -> Result<Self> {
        let (ch, g) = (cfg.ch, cfg.norm_groups);
        let n = cfg.ch_mult.len();
        let conv_in = Conv2d::build_same(&p.scope("conv_in"), cfg.in_channels, ch, 3)?;
        let mut block_in = ch;
        let mut down = Vec::with_capacity(n);
        for (i, &mult) in cfg.ch_mult.iter().enumerate() {
            let lp = p.scope(format!("down.{i}"));
            let block_out = ch * mult;
            let mut blocks = Vec::new();
            let mut attns = Vec::new();
            for b in 0..cfg.num_res_blocks {
                blocks.push(ResnetBlock::build(
                    &lp.scope(format!("block.{b}")),
                    block_in,
                    block_out,
                    g,
                )?);
                block_in = block_out;
                if cfg.encoder_attn.get(i) == Some(&true) {
                    attns.push(AttnBlock::build_with(
                        &lp.scope(format!("attn.{b}")),
                        block_in,
                        g,
                        cfg.qkv,
                    )?);
                }
            }
            let resample = if i != n - 1 {
                Some(Resample::Down(Downsample::build(
                    &lp.scope("downsample"),
                    block_in,
                )?))
            } else {
                None
            };
            down.push(Level {
                blocks,
                attns,
                resample,
            });
        }
        Ok(Encoder {
            conv_in,
            down,
            mid: Mid::build(&p.scope("mid"), block_in, cfg)?,
            norm_out: GroupNorm::build(&p.scope("norm_out"), block_in, g)?,
            conv_out: Conv2d::build_same(
                &p.scope("conv_out"),
                block_in,
                cfg.z_channels * if cfg.double_z { 2 } else { 1 },
                3,
            )?,
            in_channels: cfg.in_channels,
        })
    }

    /// Loads VAR's VQ-VAE encoder from `scope` (positioned at `vae.encoder`).
    pub fn load(scope: &WeightsScope<'_>, cfg: &VqVaeConfig) -> Result<Self> {
        cfg.validate()?;
        let backend = Backend::Weights(scope.clone());
        Self::build(&Params::new(&backend), &cfg.layout())
    }

    /// Image channels it expects.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// `[B, in_channels, H, W]` → `[B, z, H/f, W/f]` (`z` = `z_channels`, doubled for the
    /// KL-VAE; `f` = downsample factor; `H` and
    /// `W` must be multiples of `f`, which the caller checks).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.conv_in.forward(x)?;
        for level in &self.down {
            h = level.forward(h)?;
        }
        let h = self.mid.forward(&h)?;
        self.conv_out.forward(&self.norm_out.forward_silu(&h)?)
    }
}
