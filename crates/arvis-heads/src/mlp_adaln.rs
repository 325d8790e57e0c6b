//! MAR's diffusion head network `SimpleMLPAdaLN` (`models/diffloss.py`): an MLP of AdaLN
//! residual blocks conditioned on the timestep and the AR transformer's output `z`.
//!
//! ```text
//! y = TimestepEmbedder(t) + cond_embed(z)          t: original timestep (0..1000)
//! x = input_proj(x_t)                              C → w
//! ResBlock × depth:  shift, scale, gate = Linear_{w→3w}(SiLU(y)).chunk(3)
//!                    x = x + gate·mlp(LN_affine(x)·(1 + scale) + shift)    mlp = Lin, SiLU, Lin
//! Final:             shift, scale = Linear_{w→2w}(SiLU(y)).chunk(2)
//!                    out = Linear_{w→2C}(LN(x)·(1 + scale) + shift)       [ε | v]
//! ```
//! Both layer norms use eps 1e-6 (the final one without affine parameters). Every linear runs
//! once over all rows of the batch (one `[N, w]` product per layer), with the weight packed once
//! at load.

use arvis_core::ops::{Activation, PackedMatrix};
use arvis_core::{Device, Tensor, WeightsScope};

use crate::diffusion::{DenoiseModel, DiffusionSampler};
use crate::error::{HeadError, Result};
use crate::noise::{NoiseSource, OnDevice};

/// Size of the sinusoidal timestep embedding (`frequency_embedding_size`).
pub const FREQUENCY_EMBEDDING_SIZE: usize = 256;

/// The timestep embedding's `max_period`.
const MAX_PERIOD: f64 = 10_000.0;

/// Epsilon of both layer norms.
const LN_EPS: f32 = 1e-6;

/// The shape of a `SimpleMLPAdaLN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiffusionHeadConfig {
    /// Token channels `C` (MAR: 16, the KL-16 latent); the output has `2C`.
    pub token_channels: usize,
    /// Condition channels `D` (MAR: the decoder width).
    pub z_channels: usize,
    /// Width `w` of the MLP (MAR-B: 1024).
    pub width: usize,
    /// Number of residual blocks (MAR-B: 6).
    pub depth: usize,
}

impl DiffusionHeadConfig {
    /// Reads the shape off the tensors under `scope` (`input_proj`, `cond_embed`, and the
    /// number of `res_blocks.{i}`).
    ///
    /// Errors: [`HeadError::Core`] when a tensor is missing, [`HeadError::Config`] when the
    /// shapes are inconsistent.
    pub fn infer(scope: &WeightsScope<'_>) -> Result<Self> {
        let ip = scope.shape_of("input_proj.weight")?;
        let ce = scope.shape_of("cond_embed.weight")?;
        let (&[width, token_channels], &[w2, z_channels]) = (ip, ce) else {
            return Err(HeadError::config(
                "diffusion head",
                format!("input_proj.weight {ip:?} / cond_embed.weight {ce:?} are not matrices"),
            ));
        };
        if w2 != width {
            return Err(HeadError::config(
                "diffusion head",
                format!("cond_embed width {w2} differs from input_proj width {width}"),
            ));
        }
        let depth = (0..)
            .take_while(|i| scope.contains(&format!("res_blocks.{i}.in_ln.weight")))
            .count();
        let cfg = DiffusionHeadConfig {
            token_channels,
            z_channels,
            width,
            depth,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every size is positive.
    pub fn validate(&self) -> Result<()> {
        if self.token_channels == 0 || self.z_channels == 0 || self.width == 0 || self.depth == 0 {
            return Err(HeadError::config(
                "diffusion head",
                format!("every size must be positive: {self:?}"),
            ));
        }
        Ok(())
    }

    /// Every tensor of the head, relative to its scope, with its shape (the official keys).
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (c, d, w) = (self.token_channels, self.z_channels, self.width);
        let f = FREQUENCY_EMBEDDING_SIZE;
        let mut v: Vec<(String, Vec<usize>)> = vec![
            ("time_embed.mlp.0.weight".into(), vec![w, f]),
            ("time_embed.mlp.0.bias".into(), vec![w]),
            ("time_embed.mlp.2.weight".into(), vec![w, w]),
            ("time_embed.mlp.2.bias".into(), vec![w]),
            ("cond_embed.weight".into(), vec![w, d]),
            ("cond_embed.bias".into(), vec![w]),
            ("input_proj.weight".into(), vec![w, c]),
            ("input_proj.bias".into(), vec![w]),
        ];
        for i in 0..self.depth {
            let p = format!("res_blocks.{i}");
            v.extend([
                (format!("{p}.in_ln.weight"), vec![w]),
                (format!("{p}.in_ln.bias"), vec![w]),
                (format!("{p}.mlp.0.weight"), vec![w, w]),
                (format!("{p}.mlp.0.bias"), vec![w]),
                (format!("{p}.mlp.2.weight"), vec![w, w]),
                (format!("{p}.mlp.2.bias"), vec![w]),
                (format!("{p}.adaLN_modulation.1.weight"), vec![3 * w, w]),
                (format!("{p}.adaLN_modulation.1.bias"), vec![3 * w]),
            ]);
        }
        v.extend([
            ("final_layer.linear.weight".into(), vec![2 * c, w]),
            ("final_layer.linear.bias".into(), vec![2 * c]),
            (
                "final_layer.adaLN_modulation.1.weight".into(),
                vec![2 * w, w],
            ),
            ("final_layer.adaLN_modulation.1.bias".into(), vec![2 * w]),
        ]);
        v
    }

    /// Multiply-adds ×2 of one forward over `rows` rows, given the time embedding is computed
    /// once (the sampler's case): the FLOP count benches report.
    pub fn flops_per_forward(&self, rows: usize) -> u64 {
        let (c, w) = (self.token_channels as u64, self.width as u64);
        let per_row = c * w + self.depth as u64 * 5 * w * w + 2 * w * w + w * 2 * c;
        2 * rows as u64 * per_row
    }
}

/// A linear layer loaded from PyTorch layout and packed once.
#[derive(Clone, Debug)]
struct Linear(PackedMatrix);

impl Linear {
    fn load(scope: &WeightsScope<'_>, out: usize, inp: usize) -> Result<Self> {
        let w = scope.get("weight", &[out, inp])?;
        let b = scope.get("bias", &[out])?;
        Ok(Linear(PackedMatrix::from_linear(&w, Some(&b))?))
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul_packed(&self.0)?)
    }

    fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        Ok(x.matmul_packed_act(&self.0, act)?)
    }
}

/// One `ResBlock`.
#[derive(Clone, Debug)]
struct ResBlock {
    ln_weight: Tensor,
    ln_bias: Tensor,
    mlp0: Linear,
    mlp2: Linear,
    ada: Linear,
}

impl ResBlock {
    fn load(scope: &WeightsScope<'_>, w: usize) -> Result<Self> {
        Ok(ResBlock {
            ln_weight: scope.get("in_ln.weight", &[w])?,
            ln_bias: scope.get("in_ln.bias", &[w])?,
            mlp0: Linear::load(&scope.scope("mlp.0"), w, w)?,
            mlp2: Linear::load(&scope.scope("mlp.2"), w, w)?,
            ada: Linear::load(&scope.scope("adaLN_modulation.1"), 3 * w, w)?,
        })
    }

    /// `x + gate·mlp(LN(x)·(1 + scale) + shift)`, with `silu_y = SiLU(y)`.
    fn forward(&self, x: &Tensor, silu_y: &Tensor) -> Result<Tensor> {
        let m = self.ada.forward(silu_y)?.chunk(3, -1)?;
        let (shift, scale, gate) = (&m[0], &m[1], &m[2]);
        let h = x
            .layer_norm(Some(&self.ln_weight), Some(&self.ln_bias), LN_EPS)?
            .modulate(scale, shift)?;
        let h = self
            .mlp2
            .forward(&self.mlp0.forward_act(&h, Activation::Silu)?)?;
        Ok(x.add(&gate.mul(&h)?)?)
    }
}

/// MAR's diffusion head (`SimpleMLPAdaLN`), loaded from the official keys.
#[derive(Clone, Debug)]
pub struct DiffusionHead {
    cfg: DiffusionHeadConfig,
    time_mlp0: Linear,
    time_mlp2: Linear,
    cond_embed: Linear,
    input_proj: Linear,
    blocks: Vec<ResBlock>,
    final_ada: Linear,
    final_linear: Linear,
    device: Device,
}

impl DiffusionHead {
    /// Loads the head from `scope`, which holds the official `SimpleMLPAdaLN` keys
    /// (`time_embed.mlp.0.weight`, `res_blocks.0.adaLN_modulation.1.weight`, …). A MAR
    /// checkpoint stores the head under `diffloss.net`: pass `weights.scope("diffloss.net")`.
    /// The head lives on the scope's device.
    ///
    /// Errors: [`HeadError::Core`] naming a missing or mis-shaped tensor;
    /// [`HeadError::Config`] for a zero size.
    pub fn load(scope: &WeightsScope<'_>, cfg: &DiffusionHeadConfig) -> Result<Self> {
        cfg.validate()?;
        let (c, d, w) = (cfg.token_channels, cfg.z_channels, cfg.width);
        let blocks = (0..cfg.depth)
            .map(|i| ResBlock::load(&scope.scope(&format!("res_blocks.{i}")), w))
            .collect::<Result<Vec<_>>>()?;
        if scope.contains(&format!("res_blocks.{}.in_ln.weight", cfg.depth)) {
            return Err(HeadError::config(
                "diffusion head",
                format!(
                    "{} holds more than the configured {} residual blocks",
                    scope.prefix(),
                    cfg.depth
                ),
            ));
        }
        Ok(DiffusionHead {
            cfg: *cfg,
            time_mlp0: Linear::load(
                &scope.scope("time_embed.mlp.0"),
                w,
                FREQUENCY_EMBEDDING_SIZE,
            )?,
            time_mlp2: Linear::load(&scope.scope("time_embed.mlp.2"), w, w)?,
            cond_embed: Linear::load(&scope.scope("cond_embed"), w, d)?,
            input_proj: Linear::load(&scope.scope("input_proj"), w, c)?,
            blocks,
            final_ada: Linear::load(&scope.scope("final_layer.adaLN_modulation.1"), 2 * w, w)?,
            final_linear: Linear::load(&scope.scope("final_layer.linear"), 2 * c, w)?,
            device: scope.device(),
        })
    }

    /// [`DiffusionHead::load`] with the shape read off the tensors
    /// ([`DiffusionHeadConfig::infer`]).
    pub fn load_inferred(scope: &WeightsScope<'_>) -> Result<Self> {
        Self::load(scope, &DiffusionHeadConfig::infer(scope)?)
    }

    /// The head's shape.
    pub fn config(&self) -> &DiffusionHeadConfig {
        &self.cfg
    }

    /// The device the weights live on (inputs must be there too).
    pub fn device(&self) -> Device {
        self.device
    }

    /// The sinusoidal embedding `[cos(t·f), sin(t·f)]` (cos half first), `fᵢ =
    /// exp(−ln(10⁴)·i/128)`, computed in `f32` as the reference: `[timesteps.len(), 256]`.
    pub fn timestep_embedding(timesteps: &[f32]) -> Result<Tensor> {
        let half = FREQUENCY_EMBEDDING_SIZE / 2;
        let neg_log = -(MAX_PERIOD.ln() as f32);
        let freqs: Vec<f32> = (0..half)
            .map(|i| (neg_log * i as f32 / half as f32).exp())
            .collect();
        let mut out = Vec::with_capacity(timesteps.len() * FREQUENCY_EMBEDDING_SIZE);
        for &t in timesteps {
            out.extend(freqs.iter().map(|&f| (t * f).cos()));
            out.extend(freqs.iter().map(|&f| (t * f).sin()));
        }
        Ok(Tensor::from_vec(
            out,
            &[timesteps.len(), FREQUENCY_EMBEDDING_SIZE],
        )?)
    }

    /// `TimestepEmbedder`: `[timesteps.len(), w]`.
    pub fn embed_time(&self, timesteps: &[f32]) -> Result<Tensor> {
        let freq = Self::timestep_embedding(timesteps)?.to_device(self.device)?;
        self.time_mlp2
            .forward(&self.time_mlp0.forward_act(&freq, Activation::Silu)?)
    }

    /// `cond_embed(z)`: `[N, D] → [N, w]` (independent of the timestep, so a sampler computes
    /// it once).
    pub fn embed_condition(&self, z: &Tensor) -> Result<Tensor> {
        self.check_rows("embed_condition", z, self.cfg.z_channels)?;
        self.cond_embed.forward(z)
    }

    /// The network on embedded inputs: `x` `[N, C]`, `t_emb` `[N, w]` or `[1, w]` (one
    /// timestep for every row), `c_emb` `[N, w]` → `[N, 2C]`.
    pub fn forward_embedded(&self, x: &Tensor, t_emb: &Tensor, c_emb: &Tensor) -> Result<Tensor> {
        self.check_rows("forward", x, self.cfg.token_channels)?;
        let n = x.shape()[0];
        let w = self.cfg.width;
        if c_emb.shape() != [n, w] {
            return Err(HeadError::shape(
                "forward",
                format!("c_emb [{n}, {w}]"),
                c_emb.shape(),
            ));
        }
        let t_rows = t_emb.shape().first().copied().unwrap_or(0);
        if t_emb.rank() != 2 || t_emb.shape()[1] != w || (t_rows != 1 && t_rows != n) {
            return Err(HeadError::shape(
                "forward",
                format!("t_emb [{n}, {w}] or [1, {w}]"),
                t_emb.shape(),
            ));
        }
        let silu_y = t_emb.add(c_emb)?.silu()?;
        let mut h = self.input_proj.forward(x)?;
        for block in &self.blocks {
            h = block.forward(&h, &silu_y)?;
        }
        let m = self.final_ada.forward(&silu_y)?.chunk(2, -1)?;
        let h = h.layer_norm(None, None, LN_EPS)?.modulate(&m[1], &m[0])?;
        self.final_linear.forward(&h)
    }

    /// The reference `forward(x, t, c)`: `x` `[N, C]`, one timestep per row (or one for
    /// all), `z` `[N, D]` → `[N, 2C]` (`[ε | v]`).
    pub fn forward(&self, x: &Tensor, timesteps: &[f32], z: &Tensor) -> Result<Tensor> {
        let t_emb = self.embed_time(timesteps)?;
        self.forward_embedded(x, &t_emb, &self.embed_condition(z)?)
    }

    /// The reference `forward_with_cfg`: the first half of `x` is run against all `2B`
    /// conditions `z = [cond; uncond]`, the noise channels are mixed
    /// `ε_u + scale·(ε_c − ε_u)` and duplicated, the variance channels kept per row.
    pub fn forward_with_cfg(
        &self,
        x: &Tensor,
        timesteps: &[f32],
        z: &Tensor,
        scale: f32,
    ) -> Result<Tensor> {
        self.check_rows("forward_with_cfg", x, self.cfg.token_channels)?;
        let rows = x.shape()[0];
        if !rows.is_multiple_of(2) {
            return Err(HeadError::shape(
                "forward_with_cfg",
                "an even number of rows [cond; uncond]",
                x.shape(),
            ));
        }
        let b = rows / 2;
        let c = self.cfg.token_channels;
        let half = x.narrow(0, 0, b)?;
        let out = self.forward(&Tensor::concat(&[&half, &half], 0)?, timesteps, z)?;
        let eps = out.narrow(1, 0, c)?;
        let (ec, eu) = (eps.narrow(0, 0, b)?, eps.narrow(0, b, b)?);
        let mixed = eu.add(&ec.sub(&eu)?.scale(scale)?)?;
        let eps = Tensor::concat(&[&mixed, &mixed], 0)?;
        Ok(Tensor::concat(&[&eps, &out.narrow(1, c, c)?], 1)?)
    }

    /// The head bound to conditions `z` `[N, D]` (`cond_embed` computed once), as the
    /// [`DenoiseModel`] the samplers drive. For guidance, `z` is `[2B, D]`: `[cond; uncond]`.
    pub fn condition(&self, z: &Tensor) -> Result<ConditionedHead<'_>> {
        Ok(ConditionedHead {
            head: self,
            c_emb: self.embed_condition(z)?,
        })
    }

    /// MAR's `DiffLoss.sample`: draws one token per condition. `z` is `[B, D]` without
    /// guidance, `[2B, D]` (`[cond; uncond]`) with `guidance = Some(cfg)`; the result is the
    /// `[B, C]` tokens of the conditional rows (what MAR keeps), on the head's device.
    ///
    /// `z` lives on the head's device; `noise` may hand out host tensors (a [`SeededRng`], a
    /// [`RecordedNoise`]): each draw is uploaded there ([`OnDevice`]), so a seed gives the same
    /// draws on every device.
    ///
    /// Errors: [`HeadError::Shape`] for a mis-shaped or odd-row (guided) `z`; the sampler's.
    ///
    /// [`SeededRng`]: arvis_core::SeededRng
    /// [`RecordedNoise`]: crate::RecordedNoise
    pub fn sample(
        &self,
        z: &Tensor,
        guidance: Option<f32>,
        sampler: &DiffusionSampler,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        self.check_rows("sample", z, self.cfg.z_channels)?;
        let rows = z.shape()[0];
        let batch = match guidance {
            Some(_) if !rows.is_multiple_of(2) => {
                return Err(HeadError::shape(
                    "sample",
                    "[2B, D] conditions [cond; uncond] with guidance",
                    z.shape(),
                ));
            }
            Some(_) => rows / 2,
            None => rows,
        };
        let model = self.condition(z)?;
        // The draws are made on the host (device-independent); the chain runs where the
        // weights are.
        let mut noise = OnDevice::new(noise, self.device);
        sampler.sample(&model, batch, self.cfg.token_channels, guidance, &mut noise)
    }

    fn check_rows(&self, op: &'static str, t: &Tensor, cols: usize) -> Result<()> {
        if t.rank() != 2 || t.shape()[1] != cols {
            return Err(HeadError::shape(op, format!("[N, {cols}]"), t.shape()));
        }
        Ok(())
    }
}

/// A [`DiffusionHead`] with its conditions embedded: the [`DenoiseModel`] of one sampling call.
#[derive(Clone, Debug)]
pub struct ConditionedHead<'a> {
    head: &'a DiffusionHead,
    c_emb: Tensor,
}

impl DenoiseModel for ConditionedHead<'_> {
    fn predict(&self, x: &Tensor, timestep: usize) -> Result<Tensor> {
        // One time-embedding row broadcast over the batch: every row has the same timestep.
        let t_emb = self.head.embed_time(&[timestep as f32])?;
        self.head.forward_embedded(x, &t_emb, &self.c_emb)
    }
}
