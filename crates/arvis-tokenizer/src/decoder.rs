//! The LDM-style decoder (official `Decoder` of VAR and of MAR's KL-VAE): latent
//! `[B, Cz, h, w]` → image (unclamped).

use arvis_core::{Tensor, WeightsScope};

use crate::blocks::{AttnBlock, Conv2d, GroupNorm, ResnetBlock, Upsample};
use crate::config::VqVaeConfig;
use crate::encoder::{CodecLayout, Level, Mid, Resample};
use crate::error::Result;
use crate::params::{Backend, Params};

/// The decoder: `conv_in` to `ch·ch_mult[-1]`, `mid`, then the `up.{i}` levels from the lowest
/// resolution (`i = len − 1`) to the highest (`i = 0`; the official code builds the list with
/// `insert(0)`), each with `num_res_blocks + 1` residual blocks (attention after each where the
/// model places it: VAR at the lowest resolution, MAR's KL-VAE nowhere) and a nearest×2 + conv upsample after every level but `up.0`; finally
/// `norm_out`, SiLU, `conv_out` to the image channels.
#[derive(Clone, Debug)]
pub struct Decoder {
    conv_in: Conv2d,
    mid: Mid,
    /// Indexed like the checkpoint: `up[0]` is the highest resolution.
    up: Vec<Level>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    z_channels: usize,
}

impl Decoder {
    pub(crate) fn build(p: &Params<'_, '_>, cfg: &CodecLayout) -> Result<Self> {
        let (ch, g, n) = (cfg.ch, cfg.norm_groups, cfg.ch_mult.len());
        let mut block_in = ch * cfg.ch_mult[n - 1];
        let conv_in = Conv2d::build_same(&p.scope("conv_in"), cfg.z_channels, block_in, 3)?;
        let mid = Mid::build(&p.scope("mid"), block_in, cfg)?;
        // Built from the lowest resolution up, as the official constructor does, so that the
        // channel bookkeeping (`block_in`) follows the same order; stored by level index.
        let mut up: Vec<Option<Level>> = vec![None; n];
        for i in (0..n).rev() {
            let lp = p.scope(format!("up.{i}"));
            let block_out = ch * cfg.ch_mult[i];
            let mut blocks = Vec::new();
            let mut attns = Vec::new();
            for b in 0..=cfg.num_res_blocks {
                blocks.push(ResnetBlock::build(
                    &lp.scope(format!("block.{b}")),
                    block_in,
                    block_out,
                    g,
                )?);
                block_in = block_out;
                if cfg.decoder_attn.get(i) == Some(&true) {
                    attns.push(AttnBlock::build_with(
                        &lp.scope(format!("attn.{b}")),
                        block_in,
                        g,
                        cfg.qkv,
                    )?);
                }
            }
            let resample = if i != 0 {
                Some(Resample::Up(Upsample::build(
                    &lp.scope("upsample"),
                    block_in,
                )?))
            } else {
                None
            };
            up[i] = Some(Level {
                blocks,
                attns,
                resample,
            });
        }
        Ok(Decoder {
            conv_in,
            mid,
            up: up.into_iter().flatten().collect(),
            norm_out: GroupNorm::build(&p.scope("norm_out"), block_in, g)?,
            conv_out: Conv2d::build_same(&p.scope("conv_out"), block_in, cfg.in_channels, 3)?,
            z_channels: cfg.z_channels,
        })
    }

    /// Loads VAR's VQ-VAE decoder from `scope` (positioned at `vae.decoder`).
    pub fn load(scope: &WeightsScope<'_>, cfg: &VqVaeConfig) -> Result<Self> {
        cfg.validate()?;
        let backend = Backend::Weights(scope.clone());
        Self::build(&Params::new(&backend), &cfg.layout())
    }

    /// Latent channels it expects.
    pub fn z_channels(&self) -> usize {
        self.z_channels
    }

    /// `[B, z_channels, h, w]` → `[B, in_channels, h·f, w·f]`, not clamped.
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let mut h = self.mid.forward(&self.conv_in.forward(z)?)?;
        for level in self.up.iter().rev() {
            h = level.forward(h)?;
        }
        self.conv_out.forward(&self.norm_out.forward_silu(&h)?)
    }
}
