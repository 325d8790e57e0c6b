//! Sampling and replay: the official `generate` loop (prefill the class token, then one token
//! per step with the KV cache) with classifier-free guidance on a doubled batch.

use arvis_core::sampling::{CfgForm, SamplingConfig, cfg_mix_stacked, sample_rows};
use arvis_core::{SeededRng, Tensor};

use crate::error::{ModelError, Result};
use crate::llamagen::model::LlamaGen;

/// The [`SeededRng::fork`] stream of a seed that LlamaGen sampling draws from.
pub const LLAMAGEN_SAMPLING_STREAM: u64 = 0x11A3_A6E7;

/// The per-step record of a replayed or sampled run.
#[derive(Clone, Debug)]
pub struct LlamaGenRun {
    /// Tokens per sample, `B` rows of `block_size` in generation (raster) order.
    pub tokens: Vec<Vec<u32>>,
    /// Per step: the logits the sampler saw, `[B, V]` (CFG-mixed when `cfg > 1`). Empty from
    /// [`LlamaGen::generate`], which does not keep them (`256 × B × V` floats).
    pub logits: Vec<Tensor>,
    /// Per step: the conditional logits `[B, V]` (the model's output for the real labels).
    /// Empty from [`LlamaGen::generate`].
    pub cond_logits: Vec<Tensor>,
}

/// Classifier-free guidance of a LlamaGen run, as the official `generate(cfg_scale, cfg_interval)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LlamaGenGuidance {
    /// The scale `s` of `u + (c − u)·s`; `≤ 1` runs the conditional batch alone.
    pub scale: f32,
    /// The official `cfg_interval`: `Some(k)` guides the prefill and decode steps `0..=k`
    /// (generation steps `0..=k + 1`) and then samples from the conditional logits alone — the
    /// batch stays doubled, as in the official loop. `None` (the official `-1`) guides every step.
    pub interval: Option<usize>,
}

impl LlamaGenGuidance {
    /// Guidance `scale` at every step.
    pub fn new(scale: f32) -> Self {
        LlamaGenGuidance {
            scale,
            interval: None,
        }
    }

    /// Whether generation step `step` (0 = the prefill) mixes in the unconditional logits.
    pub fn mixes_at(&self, step: usize) -> bool {
        self.scale > 1.0 && self.interval.is_none_or(|k| step <= k + 1)
    }
}

enum Source<'a> {
    Replay(&'a [Vec<u32>]),
    Sample {
        rng: Box<SeededRng>,
        sampling: SamplingConfig,
    },
}

impl LlamaGen {
    /// Samples `B = labels.len()` token maps (raster order) with guidance scale `cfg` (`> 1`
    /// doubles the batch with the null class, as the official `generate`; `≤ 1` runs the
    /// conditional batch alone) and `sampling` (use [`SamplingConfig::llamagen`]).
    ///
    /// **Randomness:** every draw comes from `SeededRng::new(seed).fork(`
    /// [`LLAMAGEN_SAMPLING_STREAM`]`)`: one [`SeededRng::uniform_f64`] per token, step 0 first,
    /// sample 0 first within a step ([`sample_rows`] on the `[B, V]` logits).
    pub fn generate(
        &self,
        labels: &[u32],
        cfg: f32,
        sampling: &SamplingConfig,
        seed: u64,
    ) -> Result<LlamaGenRun> {
        self.generate_guided(
            labels,
            LlamaGenGuidance::new(cfg),
            sampling,
            seed,
            &mut |_| {},
        )
    }

    /// [`generate`](Self::generate) that calls `progress(t)` after each sampled step `t`
    /// (`1..=block_size`, tokens per image so far): same draws, same tokens.
    pub fn generate_with_progress(
        &self,
        labels: &[u32],
        cfg: f32,
        sampling: &SamplingConfig,
        seed: u64,
        progress: &mut dyn FnMut(usize),
    ) -> Result<LlamaGenRun> {
        self.generate_guided(labels, LlamaGenGuidance::new(cfg), sampling, seed, progress)
    }

    /// [`generate_with_progress`](Self::generate_with_progress) with full [`LlamaGenGuidance`]
    /// (the official `cfg_interval`): same draws as `generate` for the same seed.
    pub fn generate_guided(
        &self,
        labels: &[u32],
        guidance: LlamaGenGuidance,
        sampling: &SamplingConfig,
        seed: u64,
        progress: &mut dyn FnMut(usize),
    ) -> Result<LlamaGenRun> {
        self.sample_run(labels, guidance, sampling, seed, false, progress)
    }

    /// [`generate`](Self::generate), also keeping every step's logits in the run (as
    /// [`generate_with_indices`](Self::generate_with_indices) does): same draws, same tokens.
    pub fn generate_with_logits(
        &self,
        labels: &[u32],
        cfg: f32,
        sampling: &SamplingConfig,
        seed: u64,
    ) -> Result<LlamaGenRun> {
        self.sample_run(
            labels,
            LlamaGenGuidance::new(cfg),
            sampling,
            seed,
            true,
            &mut |_| {},
        )
    }

    fn sample_run(
        &self,
        labels: &[u32],
        guidance: LlamaGenGuidance,
        sampling: &SamplingConfig,
        seed: u64,
        record: bool,
        progress: &mut dyn FnMut(usize),
    ) -> Result<LlamaGenRun> {
        sampling.validate()?;
        let rng = Box::new(SeededRng::new(seed).fork(LLAMAGEN_SAMPLING_STREAM));
        let source = Source::Sample {
            rng,
            sampling: *sampling,
        };
        self.run_loop(labels, guidance, source, record, progress)
    }

    /// Replays given tokens (`B` rows of `block_size`) through the cached loop with guidance
    /// `cfg` and returns every step's logits: what the model computed before each token was
    /// chosen (golden tests, speculative decoding).
    pub fn generate_with_indices(
        &self,
        labels: &[u32],
        cfg: f32,
        tokens: &[Vec<u32>],
    ) -> Result<LlamaGenRun> {
        self.check_labels(labels)?;
        self.check_tokens(tokens, labels.len(), self.config().block_size)?;
        self.run_loop(
            labels,
            LlamaGenGuidance::new(cfg),
            Source::Replay(tokens),
            true,
            &mut |_| {},
        )
    }

    /// The raster grid position of generation step `t` ([`LlamaGen::token_order`]).
    fn grid_position(&self, t: usize) -> Result<usize> {
        let g = self.config().grid();
        self.token_order()
            .position(t, g, g)
            .ok_or_else(|| ModelError::request(format!("step {t} is past the {g}×{g} grid")))
    }

    fn run_loop(
        &self,
        labels: &[u32],
        guidance: LlamaGenGuidance,
        mut source: Source<'_>,
        record: bool,
        progress: &mut dyn FnMut(usize),
    ) -> Result<LlamaGenRun> {
        self.check_labels(labels)?;
        let cfg = guidance.scale;
        if !cfg.is_finite() {
            return Err(ModelError::request(format!("cfg {cfg} must be finite")));
        }
        let b = labels.len();
        let guided = cfg > 1.0;
        let rows: Vec<u32> = if guided {
            let null = self.config().num_classes as u32;
            labels
                .iter()
                .copied()
                .chain(std::iter::repeat_n(null, b))
                .collect()
        } else {
            labels.to_vec()
        };
        let n = rows.len();
        let steps = self.config().block_size;
        let mut caches = self.new_caches(n);
        let mut out = LlamaGenRun {
            tokens: vec![Vec::with_capacity(steps); b],
            logits: Vec::new(),
            cond_logits: Vec::new(),
        };
        // The class token first (prefill), then each step's tokens (both halves with guidance).
        let mut h = self.embed_classes(&rows)?;
        let mut step = 0;
        loop {
            // The class token sits at table row 0; the token fed at step s (s ≥ 1) is the one
            // generated at step s − 1, at row `cls + its grid position` in the token order.
            let row = match step {
                0 => 0,
                s => self.config().cls_token_num + self.grid_position(s - 1)?,
            };
            let logits = self.run(h, row, Some(&mut caches))?; // [N, 1, V]
            let v = logits.shape()[2];
            let logits = logits.reshape(&[n, v])?;
            let (cond, mixed) = match (guided, record) {
                (true, true) => {
                    let cond = logits.narrow(0, 0, b)?;
                    let mixed = if guidance.mixes_at(step) {
                        cfg_mix_stacked(&logits, cfg, CfgForm::LlamaGen)?
                    } else {
                        cond.clone()
                    };
                    (Some(cond), mixed)
                }
                (true, false) if guidance.mixes_at(step) => {
                    (None, cfg_mix_stacked(&logits, cfg, CfgForm::LlamaGen)?)
                }
                (true, false) => (None, logits.narrow(0, 0, b)?),
                (false, true) => (Some(logits.clone()), logits),
                (false, false) => (None, logits),
            };
            let next: Vec<u32> = match &mut source {
                Source::Replay(tokens) => tokens.iter().map(|r| r[step]).collect(),
                Source::Sample { rng, sampling } => sample_rows(&mixed, sampling, rng)?,
            };
            if let Some(cond) = cond {
                out.logits.push(mixed);
                out.cond_logits.push(cond);
            }
            for (row, &t) in out.tokens.iter_mut().zip(&next) {
                row.push(t);
            }
            step += 1;
            progress(step);
            if step == steps {
                break;
            }
            let feed: Vec<u32> = if guided {
                next.iter().chain(next.iter()).copied().collect()
            } else {
                next
            };
            h = self.embed_tokens(&feed, n)?;
        }
        Ok(out)
    }
}
