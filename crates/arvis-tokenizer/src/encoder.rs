//! The VQ-VAE encoder (official `Encoder`, `double_z=False`): image → latent `[B, Cvae, h, w]`.

use arvis_core::{Tensor, WeightsScope};

use crate::blocks::{AttnBlock, Conv2d, Downsample, GroupNorm, ResnetBlock};
use crate::config::VqVaeConfig;
use crate::error::Result;
use crate::params::{Backend, Params};

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

    pub(crate) fn build(p: &Params<'_, '_>, c: usize, cfg: &VqVaeConfig) -> Result<Self> {
        let g = cfg.norm_groups;
        Ok(Mid {
            block_1: ResnetBlock::build(&p.scope("block_1"), c, c, g)?,
            attn_1: if cfg.using_mid_sa {
                Some(AttnBlock::build(&p.scope("attn_1"), c, g)?)
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

/// The encoder: `conv_in`, `down.{i}` levels (attention at the lowest resolution, a stride-2
/// downsample after every level but the last), `mid`, then `norm_out`, SiLU, `conv_out` to
/// `z_channels`.
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
    pub(crate) fn build(p: &Params<'_, '_>, cfg: &VqVaeConfig) -> Result<Self> {
        let (ch, g, n) = (cfg.ch, cfg.norm_groups, cfg.ch_mult.len());
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
                if i == n - 1 && cfg.using_sa {
                    attns.push(AttnBlock::build(
                        &lp.scope(format!("attn.{b}")),
                        block_in,
                        g,
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
            conv_out: Conv2d::build_same(&p.scope("conv_out"), block_in, cfg.z_channels, 3)?,
            in_channels: cfg.in_channels,
        })
    }

    /// Loads the encoder from `scope` (positioned at `vae.encoder`).
    pub fn load(scope: &WeightsScope<'_>, cfg: &VqVaeConfig) -> Result<Self> {
        cfg.validate()?;
        let backend = Backend::Weights(scope.clone());
        Self::build(&Params::new(&backend), cfg)
    }

    /// Image channels it expects.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// `[B, in_channels, H, W]` → `[B, z_channels, H/f, W/f]` (`f` = downsample factor; `H` and
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
