//! Sampling and replay: the official `MAR.sample_tokens` loop.
//!
//! Per AR iteration `k` of `K` (every iteration re-runs the whole encoder and decoder: the
//! attention is bidirectional, so there is no KV cache):
//! ```text
//! z          = decoder(encoder(tokens, mask))                [N, S, Dd], N = 2B with guidance
//! mask_len   = max(1, min(#masked − 1, ⌊S·cos(π/2·(k+1)/K)⌋))
//! mask_next  = the first mask_len positions of each sample's order
//! predict    = mask XOR mask_next   (the last iteration: every masked position)
//! cfg_k      = 1 + (cfg − 1)·(S − mask_len)/S   (linear; constant: cfg)
//! tokens[predict] = diffusion head on z[predict] (all samples' positions in one batch)
//! ```
//! `mask_len` and `cfg_k` are computed in `f32` as the reference's tensors (the cosine in
//! `f64`, as numpy). The last iteration's `mask_len` (used by the linear schedule) is 1, a quirk
//! of the reference kept here.
//!
//! **Devices.** The loop runs where the model's weights are: the tokens, the conditions `z`
//! and the head's chain stay on that device across iterations, and the sampled tokens are
//! written into the sequence by a gather, not on the host. The host computes only what does
//! not depend on computed values (orders, masks, `mask_len`, row indices) and the seeded noise,
//! which is drawn on the host on every device (same seed, same draws) and uploaded per use.
//! Nothing is read back: the latents come out on the model's device.

use arvis_core::{SeededRng, Tensor};
use arvis_heads::{DiffusionSampler, RecordedNoise, StepAnnealing};

use crate::error::{ModelError, Result};
use crate::mar::model::{Mar, Masks};

/// The [`SeededRng::fork`] stream of a seed that MAR sampling draws from.
pub const MAR_SAMPLING_STREAM: u64 = 0x3A2_0D1F;

/// How the guidance scale grows over the AR iterations (official `cfg_schedule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CfgSchedule {
    /// `1 + (cfg − 1)·(revealed after this iteration)/S` (Muse; MAR's evaluation setting).
    Linear,
    /// `cfg` at every iteration (the official demo).
    Constant,
}

/// Diffusion-head steps per AR iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadSteps {
    /// The same number of DDPM steps at every iteration (MAR: 100).
    Fixed(usize),
    /// DiSA: annealed from `upper` at the first iteration to `lower` at the last.
    Annealed(StepAnnealing),
}

impl HeadSteps {
    /// The steps of iteration `k` of `total`.
    pub fn at(&self, k: usize, total: usize) -> Result<usize> {
        match self {
            HeadSteps::Fixed(n) => Ok(*n),
            HeadSteps::Annealed(a) => Ok(a.steps(k, total)?),
        }
    }
}

/// A MAR generation request.
#[derive(Clone, Debug, PartialEq)]
pub struct MarRequest {
    /// One image per entry: a class, or `None` for an unconditional row (the learned
    /// `fake_latent`, as the reference's `labels=None`).
    pub labels: Vec<Option<u32>>,
    /// AR iterations `K` (1..=S; the demo uses 64, the paper's FID 256).
    pub num_iter: usize,
    /// Guidance scale; `1` runs the conditional batch alone (anything else doubles it with
    /// `fake_latent` rows, as the reference's `if not cfg == 1.0`).
    pub cfg: f32,
    /// How the scale grows over the iterations.
    pub cfg_schedule: CfgSchedule,
    /// Temperature of the head's noise.
    pub temperature: f32,
    /// Diffusion steps per iteration.
    pub head_steps: HeadSteps,
    /// Seed of every draw (orders, then head noise).
    pub seed: u64,
}

impl MarRequest {
    /// The official demo's settings (64 iterations, cfg 4 constant, temperature 1, 100 head
    /// steps) for class `labels` and `seed`.
    pub fn new(labels: Vec<u32>, seed: u64) -> Self {
        MarRequest {
            labels: labels.into_iter().map(Some).collect(),
            num_iter: 64,
            cfg: 4.0,
            cfg_schedule: CfgSchedule::Constant,
            temperature: 1.0,
            head_steps: HeadSteps::Fixed(100),
            seed,
        }
    }
}

/// What one AR iteration did (kept by [`Mar::replay`] and [`Mar::generate_recorded`]).
#[derive(Clone, Debug)]
pub struct MarIteration {
    /// Per sample, the positions predicted (ascending).
    pub positions: Vec<Vec<usize>>,
    /// The head's conditions `[n, Dd]` (`[2n, Dd]` = `[cond; uncond]` with guidance), the
    /// positions of sample 0 first; `None` when nothing was predicted.
    pub z: Option<Tensor>,
    /// The guidance scale of this iteration.
    pub cfg: f32,
    /// Diffusion steps run.
    pub head_steps: usize,
    /// The sampled tokens `[n, T]` (on the model's device), in the order of `z`; `None` when
    /// nothing was predicted.
    pub tokens: Option<Tensor>,
}

/// A generated batch.
#[derive(Clone, Debug)]
pub struct MarRun {
    /// The latents `[B, vae_embed_dim, side·p, side·p]` (official `unpatchify(tokens)`), on the
    /// model's device, to be decoded with `KlVae::decode_tokens`.
    pub latents: Tensor,
    /// Each sample's generation order (a permutation of `0..S`).
    pub orders: Vec<Vec<usize>>,
    /// Per iteration; empty from [`Mar::generate`].
    pub iterations: Vec<MarIteration>,
}

/// Where the head's noise comes from.
enum Noise {
    Seeded(Box<SeededRng>),
    Recorded(std::vec::IntoIter<RecordedNoise>),
}

impl Mar {
    /// Samples `B = request.labels.len()` latent maps.
    ///
    /// **Randomness:** every draw comes from `SeededRng::new(seed).fork(`
    /// [`MAR_SAMPLING_STREAM`]`)`: first each sample's order (a [`SeededRng::shuffle`] of
    /// `0..S`, sample 0 first), then, per iteration with predictions, the head's noise in the
    /// sampler's order (initial `[n, T]`, then `[n, T]` per noisy step).
    pub fn generate(&self, request: &MarRequest) -> Result<MarRun> {
        self.generate_with_progress(request, &mut |_| {})
    }

    /// [`generate`](Self::generate) calling `progress(k)` after iteration `k` (`1..=K`).
    pub fn generate_with_progress(
        &self,
        request: &MarRequest,
        progress: &mut dyn FnMut(usize),
    ) -> Result<MarRun> {
        let (orders, rng) = self.seeded_orders(request)?;
        self.run_loop(request, orders, Noise::Seeded(rng), false, None, progress)
    }

    /// [`generate`](Self::generate), keeping every iteration's record: same draws, same
    /// latents.
    pub fn generate_recorded(&self, request: &MarRequest) -> Result<MarRun> {
        let (orders, rng) = self.seeded_orders(request)?;
        self.run_loop(request, orders, Noise::Seeded(rng), true, None, &mut |_| {})
    }

    /// Replays recorded draws (the reference's `np.random.shuffle` orders and the head's
    /// `torch.randn` noise, one [`RecordedNoise`] per iteration that predicts something, indexed
    /// by respaced step): golden tests. `request.seed` is unused.
    ///
    /// With `teacher` (one `[n, T]` tensor per iteration that predicts something, in the order
    /// of [`MarIteration::tokens`]), the recorded tokens are written into the sequence instead of
    /// the sampled ones (the sampled ones are still reported): every iteration's `z` is then
    /// computed from the reference's tokens, without the drift a free run accumulates.
    pub fn replay(
        &self,
        request: &MarRequest,
        orders: Vec<Vec<usize>>,
        noise: Vec<RecordedNoise>,
        teacher: Option<Vec<Tensor>>,
    ) -> Result<MarRun> {
        let s = self.config().seq_len();
        if orders.len() != request.labels.len() {
            return Err(ModelError::request(format!(
                "{} orders for {} samples",
                orders.len(),
                request.labels.len()
            )));
        }
        for (i, o) in orders.iter().enumerate() {
            let mut seen = vec![false; s];
            for &p in o {
                if p >= s || std::mem::replace(&mut seen[p], true) {
                    return Err(ModelError::request(format!(
                        "order {i} is not a permutation of 0..{s}"
                    )));
                }
            }
            if o.len() != s {
                return Err(ModelError::request(format!(
                    "order {i} has {} positions, expected {s}",
                    o.len()
                )));
            }
        }
        self.run_loop(
            request,
            orders,
            Noise::Recorded(noise.into_iter()),
            true,
            teacher.map(Vec::into_iter),
            &mut |_| {},
        )
    }

    fn seeded_orders(&self, request: &MarRequest) -> Result<(Vec<Vec<usize>>, Box<SeededRng>)> {
        let mut rng = Box::new(SeededRng::new(request.seed).fork(MAR_SAMPLING_STREAM));
        let s = self.config().seq_len();
        let orders = (0..request.labels.len())
            .map(|_| {
                let mut o: Vec<usize> = (0..s).collect();
                rng.shuffle(&mut o);
                o
            })
            .collect();
        Ok((orders, rng))
    }

    fn check_request(&self, request: &MarRequest) -> Result<Vec<u32>> {
        let s = self.config().seq_len();
        if request.labels.is_empty() {
            return Err(ModelError::request("no labels: the batch is empty"));
        }
        if request.num_iter == 0 || request.num_iter > s {
            return Err(ModelError::request(format!(
                "num_iter {} must be in 1..={s} (one token per iteration at least)",
                request.num_iter
            )));
        }
        if !request.cfg.is_finite() || !request.temperature.is_finite() {
            return Err(ModelError::request(format!(
                "cfg {} and temperature {} must be finite",
                request.cfg, request.temperature
            )));
        }
        if let HeadSteps::Fixed(0) = request.head_steps {
            return Err(ModelError::request("head steps must be >= 1"));
        }
        request
            .labels
            .iter()
            .enumerate()
            .map(|(i, &l)| self.class_row(l, i))
            .collect()
    }

    fn run_loop(
        &self,
        request: &MarRequest,
        orders: Vec<Vec<usize>>,
        mut noise: Noise,
        record: bool,
        mut teacher: Option<std::vec::IntoIter<Tensor>>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<MarRun> {
        let mut class_rows = self.check_request(request)?;
        let cfg = self.config();
        let (s, t, dd) = (cfg.seq_len(), cfg.token_embed_dim(), cfg.decoder_embed_dim);
        let b = request.labels.len();
        let k_total = request.num_iter;
        let guided = request.cfg != 1.0;
        if guided {
            class_rows.extend(std::iter::repeat_n(cfg.class_num as u32, b));
        }
        let n = class_rows.len();
        let mut masked = vec![vec![true; s]; b];
        // `[B·S, T]` on the model's device for the whole loop: each iteration's tokens are
        // written in by a gather (below), so nothing is read back until the caller asks.
        let mut tokens = Tensor::zeros(&[b * s, t]).to_device(self.device())?;
        let mut samplers: Vec<(usize, DiffusionSampler)> = Vec::new();
        let mut iterations = Vec::new();
        for step in 0..k_total {
            let feed = if guided {
                Tensor::concat(&[&tokens, &tokens], 0)?
            } else {
                tokens.clone()
            };
            let feed = feed.reshape(&[n, s, t])?;
            let z = self.forward_z(&feed, &class_rows, &Masks { masked: &masked })?;

            let ratio = (std::f64::consts::FRAC_PI_2 * (step + 1) as f64 / k_total as f64).cos();
            let remaining = masked[0].iter().filter(|&&m| m).count() as f32;
            let mask_len = 1f32.max((remaining - 1.0).min((s as f64 * ratio).floor() as f32));
            let next: Vec<Vec<bool>> = orders
                .iter()
                .map(|o| {
                    let mut m = vec![false; s];
                    for &p in &o[..mask_len as usize] {
                        m[p] = true;
                    }
                    m
                })
                .collect();
            let last = step + 1 == k_total;
            let positions: Vec<Vec<usize>> = (0..b)
                .map(|r| {
                    (0..s)
                        .filter(|&p| masked[r][p] && (last || !next[r][p]))
                        .collect()
                })
                .collect();
            masked = next;
            let cfg_k = match request.cfg_schedule {
                CfgSchedule::Linear => {
                    1.0 + ((request.cfg - 1.0) * (s as f32 - mask_len)) / s as f32
                }
                CfgSchedule::Constant => request.cfg,
            };
            let head_steps = request.head_steps.at(step, k_total)?;
            let mut ids: Vec<u32> = Vec::new();
            for half in 0..(if guided { 2 } else { 1 }) {
                for (r, pos) in positions.iter().enumerate() {
                    ids.extend(pos.iter().map(|&p| ((half * b + r) * s + p) as u32));
                }
            }
            let mut it = MarIteration {
                positions,
                z: None,
                cfg: cfg_k,
                head_steps,
                tokens: None,
            };
            if !ids.is_empty() {
                let zp = z.reshape(&[n * s, dd])?.embedding(&ids)?;
                let sampler = match samplers.iter().find(|(k, _)| *k == head_steps) {
                    Some((_, smp)) => smp.clone(),
                    None => {
                        let smp = DiffusionSampler::ddpm(head_steps)?
                            .with_temperature(request.temperature);
                        samplers.push((head_steps, smp.clone()));
                        smp
                    }
                };
                let guidance = guided.then_some(cfg_k);
                let sampled = match &mut noise {
                    Noise::Seeded(rng) => {
                        self.head().sample(&zp, guidance, &sampler, &mut **rng)?
                    }
                    Noise::Recorded(iter) => {
                        let mut rec = iter.next().ok_or_else(|| {
                            ModelError::request(format!("no recorded noise for iteration {step}"))
                        })?;
                        self.head().sample(&zp, guidance, &sampler, &mut rec)?
                    }
                };
                let written = match teacher.as_mut() {
                    None => sampled.clone(),
                    Some(iter) => {
                        let forced = iter.next().ok_or_else(|| {
                            ModelError::request(format!("no teacher tokens for iteration {step}"))
                        })?;
                        if forced.shape() != sampled.shape() {
                            return Err(ModelError::request(format!(
                                "teacher tokens of iteration {step} have shape {:?}, expected {:?}",
                                forced.shape(),
                                sampled.shape()
                            )));
                        }
                        forced.to_device(self.device())?
                    }
                };
                tokens = scatter_rows(&tokens, &written, &it.positions, s)?;
                if record {
                    it.z = Some(zp);
                    it.tokens = Some(sampled);
                }
            }
            if record {
                iterations.push(it);
            }
            progress(step + 1);
        }
        Ok(MarRun {
            latents: self.config().unpatchify(&tokens.reshape(&[b, s, t])?)?,
            orders,
            iterations,
        })
    }
}

/// `tokens` `[B·S, T]` with row `r·S + p` replaced, for each `(r, p)` of `positions` in
/// order, by the next row of `rows` `[n, T]`. A gather from `[tokens; rows]` (exact copies),
/// so the tokens stay on their device: the host only computes the indices.
fn scatter_rows(
    tokens: &Tensor,
    rows: &Tensor,
    positions: &[Vec<usize>],
    s: usize,
) -> Result<Tensor> {
    let base = tokens.shape()[0];
    let mut ids: Vec<u32> = (0..base as u32).collect();
    let mut k = base as u32;
    for (r, pos) in positions.iter().enumerate() {
        for &p in pos {
            ids[r * s + p] = k;
            k += 1;
        }
    }
    Ok(Tensor::concat(&[tokens, rows], 0)?.embedding(&ids)?)
}
