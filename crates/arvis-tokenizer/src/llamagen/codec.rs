//! LlamaGen's encoder and decoder (official `Encoder`/`Decoder` of `vq_model.py`), built from
//! VAR's blocks with LlamaGen's key layout.

use arvis_core::{Tensor, WeightsScope};

use crate::blocks::{AttnBlock, Conv2d, Downsample, GroupNorm, QkvLayout, ResnetBlock, Upsample};
use crate::encoder::{Level, Mid, Resample};
use crate::error::Result;
use crate::llamagen::config::LlamaGenVqConfig;
use crate::params::{Backend, Params};

/// `mid.0` (residual), `mid.1` (attention), `mid.2` (residual) over `c` channels.
fn build_mid(p: &Params<'_, '_>, c: usize, groups: usize) -> Result<Mid> {
    Ok(Mid::from_parts(
        ResnetBlock::build(&p.scope("0"), c, c, groups)?,
        Some(AttnBlock::build_with(
            &p.scope("1"),
            c,
            groups,
            QkvLayout::Separate,
        )?),
        ResnetBlock::build(&p.scope("2"), c, c, groups)?,
    ))
}

/// The residual blocks `res.{b}` of one level (`cin → cout`, then `cout → cout`), with an
/// attention block `attn.{b}` after each when `attn` is set. Returns the blocks and attentions.
fn build_blocks(
    p: &Params<'_, '_>,
    count: usize,
    cin: usize,
    cout: usize,
    groups: usize,
    attn: bool,
) -> Result<(Vec<ResnetBlock>, Vec<AttnBlock>)> {
    let (mut blocks, mut attns) = (Vec::with_capacity(count), Vec::new());
    let mut block_in = cin;
    for b in 0..count {
        blocks.push(ResnetBlock::build(
            &p.scope(format!("res.{b}")),
            block_in,
            cout,
            groups,
        )?);
        block_in = cout;
        if attn {
            attns.push(AttnBlock::build_with(
                &p.scope(format!("attn.{b}")),
                cout,
                groups,
                QkvLayout::Separate,
            )?);
        }
    }
    Ok((blocks, attns))
}

/// The encoder: `conv_in` to `ch`, `conv_blocks.{i}` from the highest resolution to the lowest
/// (`num_res_blocks` residual blocks each, attention after each at the lowest level, a stride-2
/// downsample after every level but the last), `mid`, `norm_out`, SiLU, `conv_out` to
/// `z_channels`.
#[derive(Clone, Debug)]
pub struct LlamaGenEncoder {
    conv_in: Conv2d,
    levels: Vec<Level>,
    mid: Mid,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl LlamaGenEncoder {
    pub(crate) fn build(p: &Params<'_, '_>, cfg: &LlamaGenVqConfig) -> Result<Self> {
        let (ch, g) = (cfg.ch, cfg.norm_groups);
        let n = cfg.encoder_ch_mult.len();
        let conv_in = Conv2d::build_same(&p.scope("conv_in"), cfg.in_channels, ch, 3)?;
        let mut block_in = ch;
        let mut levels = Vec::with_capacity(n);
        for (i, &mult) in cfg.encoder_ch_mult.iter().enumerate() {
            let lp = p.scope(format!("conv_blocks.{i}"));
            let block_out = ch * mult;
            let (blocks, attns) =
                build_blocks(&lp, cfg.num_res_blocks, block_in, block_out, g, i == n - 1)?;
            block_in = block_out;
            let resample = if i != n - 1 {
                Some(Resample::Down(Downsample::build(
                    &lp.scope("downsample"),
                    block_in,
                )?))
            } else {
                None
            };
            levels.push(Level {
                blocks,
                attns,
                resample,
            });
        }
        Ok(LlamaGenEncoder {
            conv_in,
            levels,
            mid: build_mid(&p.scope("mid"), block_in, g)?,
            norm_out: GroupNorm::build(&p.scope("norm_out"), block_in, g)?,
            conv_out: Conv2d::build_same(&p.scope("conv_out"), block_in, cfg.z_channels, 3)?,
        })
    }

    /// Loads the encoder from `scope` (positioned at `encoder`).
    pub fn load(scope: &WeightsScope<'_>, cfg: &LlamaGenVqConfig) -> Result<Self> {
        cfg.validate()?;
        let backend = Backend::Weights(scope.clone());
        Self::build(&Params::new(&backend), cfg)
    }

    /// `[B, in_channels, H, W]` → `[B, z_channels, H/f, W/f]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.conv_in.forward(x)?;
        for level in &self.levels {
            h = level.forward(h)?;
        }
        let h = self.mid.forward(&h)?;
        self.conv_out.forward(&self.norm_out.forward_silu(&h)?)
    }
}

/// The decoder: `conv_in` to `ch·mult[-1]`, `mid`, then `conv_blocks.{j}` from the *lowest*
/// resolution (`j = 0`, the official `reversed(range(n))` order, the reverse of VAR's `up.{i}`)
/// to the highest, each with `num_res_blocks + 1` residual blocks (attention after each at the
/// lowest level) and a nearest×2 + conv upsample after every level but the last; `norm_out`,
/// SiLU, `conv_out` to the image channels.
#[derive(Clone, Debug)]
pub struct LlamaGenDecoder {
    conv_in: Conv2d,
    mid: Mid,
    /// In execution order: `levels[0]` = `conv_blocks.0`, the lowest resolution.
    levels: Vec<Level>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl LlamaGenDecoder {
    pub(crate) fn build(p: &Params<'_, '_>, cfg: &LlamaGenVqConfig) -> Result<Self> {
        let (ch, g) = (cfg.ch, cfg.norm_groups);
        let mult = &cfg.decoder_ch_mult;
        let n = mult.len();
        let mut block_in = ch * mult[n - 1];
        let conv_in = Conv2d::build_same(&p.scope("conv_in"), cfg.z_channels, block_in, 3)?;
        let mid = build_mid(&p.scope("mid"), block_in, g)?;
        let mut levels = Vec::with_capacity(n);
        for (j, &m) in mult.iter().rev().enumerate() {
            let lp = p.scope(format!("conv_blocks.{j}"));
            let block_out = ch * m;
            let (blocks, attns) =
                build_blocks(&lp, cfg.num_res_blocks + 1, block_in, block_out, g, j == 0)?;
            block_in = block_out;
            let resample = if j != n - 1 {
                Some(Resample::Up(Upsample::build(
                    &lp.scope("upsample"),
                    block_in,
                )?))
            } else {
                None
            };
            levels.push(Level {
                blocks,
                attns,
                resample,
            });
        }
        Ok(LlamaGenDecoder {
            conv_in,
            mid,
            levels,
            norm_out: GroupNorm::build(&p.scope("norm_out"), block_in, g)?,
            conv_out: Conv2d::build_same(&p.scope("conv_out"), block_in, cfg.in_channels, 3)?,
        })
    }

    /// Loads the decoder from `scope` (positioned at `decoder`).
    pub fn load(scope: &WeightsScope<'_>, cfg: &LlamaGenVqConfig) -> Result<Self> {
        cfg.validate()?;
        let backend = Backend::Weights(scope.clone());
        Self::build(&Params::new(&backend), cfg)
    }

    /// `[B, z_channels, h, w]` → `[B, in_channels, h·f, w·f]`, not clamped.
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let mut h = self.mid.forward(&self.conv_in.forward(z)?)?;
        for level in &self.levels {
            h = level.forward(h)?;
        }
        self.conv_out.forward(&self.norm_out.forward_silu(&h)?)
    }
}
