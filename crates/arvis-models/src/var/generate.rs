//! Class-conditional sampling with classifier-free guidance (`VAR.autoregressive_infer_cfg`),
//! its replay with recorded indices, and the teacher-forced forward (`VAR.forward`).

use arvis_attention::AttentionMask;
use arvis_core::sampling::{CfgForm, SamplingConfig, cfg_mix_stacked, sample_rows};
use arvis_core::{SeededRng, Tensor};

use super::model::Var;
use crate::error::{ModelError, Result};

/// The [`SeededRng::fork`] stream of a request's seed that sampling draws from.
pub const SAMPLING_STREAM: u64 = 1;

/// A sampling request: one image per label.
#[derive(Clone, Debug, PartialEq)]
pub struct VarRequest {
    /// Class of every image (`< num_classes`); the batch size `B` is `labels.len()`.
    pub labels: Vec<u32>,
    /// Seed of every random draw (see [`Var::generate`] for the order).
    pub seed: u64,
    /// Guidance strength: at scale `si` the logits are `(1+t)·cond − t·uncond` with
    /// `t = cfg · si / (num_scales − 1)`. Must be finite; `0` disables guidance.
    pub cfg: f32,
    /// Keep the `top_k` largest logits (ties survive); `0` = off.
    pub top_k: usize,
    /// VAR nucleus mass in `(0, 1]`; `1` = off. (The reference spells "off" as `0.0`.)
    pub top_p: f32,
}

impl VarRequest {
    /// A request with the reference's FID settings: `cfg 1.5`, `top_k 900`, `top_p 0.96`.
    pub fn new(labels: Vec<u32>, seed: u64) -> Self {
        VarRequest {
            labels,
            seed,
            cfg: 1.5,
            top_k: 900,
            top_p: 0.96,
        }
    }

    /// The token sampler of this request (VAR top-k/top-p semantics, no temperature).
    pub fn sampling(&self) -> SamplingConfig {
        SamplingConfig::var(self.top_k, self.top_p)
    }

    fn validate(&self, var: &Var) -> Result<()> {
        var.check_labels(&self.labels, false)?;
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(ModelError::request(format!(
                "top_p must be in (0, 1] (1 = off), got {}",
                self.top_p
            )));
        }
        check_cfg(self.cfg)
    }
}

fn check_cfg(cfg: f32) -> Result<()> {
    if cfg.is_finite() {
        Ok(())
    } else {
        Err(ModelError::request(format!(
            "cfg must be finite, got {cfg}"
        )))
    }
}

/// Generated images and the tokens they came from.
#[derive(Clone, Debug)]
pub struct VarOutput {
    /// `[B, 3, H, W]` in `[0, 1]`.
    pub images: Tensor,
    /// Sampled codebook indices per scale; scale `si` holds `B·pn²` entries, image-major, each
    /// image's `pn × pn` map row-major.
    pub indices: Vec<Vec<u32>>,
}

/// The transformer loop's result before decoding: the tokens and the VQ-VAE latent.
#[derive(Clone, Debug)]
pub struct VarSample {
    /// Codebook indices per scale (layout as [`VarOutput::indices`]).
    pub indices: Vec<Vec<u32>>,
    /// The accumulated latent `f̂`, `[B, Cvae, pn_last, pn_last]`.
    pub f_hat: Tensor,
}

/// The loop replayed with given indices ([`Var::generate_with_indices`]).
#[derive(Clone, Debug)]
pub struct VarReplay {
    /// Per scale, the transformer's logits `[2B, pn², V]`: the `B` conditional rows, then the
    /// `B` unconditional (null-class) rows.
    pub raw_logits: Vec<Tensor>,
    /// Per scale, the guided logits `[B, pn², V]` that sampling draws from.
    pub logits: Vec<Tensor>,
    /// The latent `f̂` after the last scale, `[B, Cvae, pn_last, pn_last]`.
    pub f_hat: Tensor,
}

/// Progress of a generation, reported through the callback of [`Var::generate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// Scale `scale` (0-based) of `num_scales` has been sampled.
    Scale {
        /// The scale just finished.
        scale: usize,
        /// Number of scales.
        num_scales: usize,
        /// Its side, `pn` (`pn²` tokens per image).
        patch_num: usize,
        /// Tokens per image generated so far (all finished scales).
        tokens_done: usize,
        /// Tokens per image in total (`Σ pn²`).
        tokens_total: usize,
    },
    /// All tokens are sampled; the VQ-VAE decoder starts.
    Decoding,
}

/// Where each scale's indices come from.
enum TokenSource<'a> {
    /// Drawn from the guided logits.
    Sample {
        rng: Box<SeededRng>,
        sampling: SamplingConfig,
    },
    /// Given by the caller.
    Given(&'a [Vec<u32>]),
}

/// The loop's outputs.
struct LoopOut {
    indices: Vec<Vec<u32>>,
    f_hat: Tensor,
    raw_logits: Vec<Tensor>,
    logits: Vec<Tensor>,
}

impl Var {
    /// Samples `req.labels.len()` images (`autoregressive_infer_cfg` of the reference).
    ///
    /// The batch runs as `2B` rows: the `B` labels, then `B` copies of the null class. Each
    /// scale's token map goes through every block with a KV cache (so it attends to all earlier
    /// scales and to itself), the head gives logits `[2B, pn², V]`, guidance mixes them into
    /// `[B, pn², V]`, one index per token is sampled and fed to both halves, and the
    /// quantizer's `next_autoregressive_input` updates `f̂` and gives the next scale's input.
    /// The final image is `fhat_to_img(f̂)·0.5 + 0.5`, in `[0, 1]`.
    ///
    /// **Randomness:** every draw comes from `SeededRng::new(req.seed).fork(`
    /// [`SAMPLING_STREAM`]`)`: one [`SeededRng::uniform_f64`] per token, scale 0 first; within
    /// a scale image 0's `pn²` tokens (row-major) come first, then image 1's, and so on
    /// ([`sample_rows`] on the `[B, pn², V]` guided logits). The same seed and request give the
    /// same indices and images on every run and thread count.
    ///
    /// `progress` is called after every scale and once before decoding.
    ///
    /// Errors: [`ModelError::Label`] for a label `≥ num_classes`, [`ModelError::Request`] for
    /// an empty batch, `top_p` outside `(0, 1]` or a non-finite `cfg`.
    pub fn generate(
        &self,
        req: &VarRequest,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<VarOutput> {
        let sample = self.sample(req, progress)?;
        progress(Progress::Decoding);
        let images = self.decode(&sample.f_hat)?;
        Ok(VarOutput {
            images,
            indices: sample.indices,
        })
    }

    /// The transformer loop of [`Var::generate`] without the final decode: the indices and the
    /// latent `f̂`. Draws exactly as [`Var::generate`] does.
    pub fn sample(
        &self,
        req: &VarRequest,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<VarSample> {
        req.validate(self)?;
        let source = TokenSource::Sample {
            rng: Box::new(SeededRng::new(req.seed).fork(SAMPLING_STREAM)),
            sampling: req.sampling(),
        };
        let out = self.run_loop(&req.labels, req.cfg, source, false, progress)?;
        Ok(VarSample {
            indices: out.indices,
            f_hat: out.f_hat,
        })
    }

    /// Decodes a latent `f̂` `[B, Cvae, h, w]` to images in `[0, 1]`:
    /// `fhat_to_img(f̂)·0.5 + 0.5` (the VQ-VAE output is clamped to `[−1, 1]`).
    pub fn decode(&self, f_hat: &Tensor) -> Result<Tensor> {
        Ok(self.vae.fhat_to_img(f_hat)?.add_scalar(1.0)?.scale(0.5)?)
    }

    /// Replays the sampling loop with the caller's indices instead of drawing them (golden
    /// tests, speculative decoding, evaluation): returns every scale's raw and guided logits and
    /// the final `f̂` (decode it with [`Var::decode`]). `indices` has one vector per scale laid
    /// out as [`VarOutput::indices`]. No randomness is involved.
    ///
    /// Errors: as [`Var::generate`] for `labels` and `cfg`, and [`ModelError::Indices`] if the
    /// indices have the wrong count or exceed the codebook.
    pub fn generate_with_indices(
        &self,
        labels: &[u32],
        cfg: f32,
        indices: &[Vec<u32>],
    ) -> Result<VarReplay> {
        self.check_labels(labels, false)?;
        check_cfg(cfg)?;
        self.check_indices(indices, labels.len())?;
        let out = self.run_loop(labels, cfg, TokenSource::Given(indices), true, &mut |_| {})?;
        Ok(VarReplay {
            raw_logits: out.raw_logits,
            logits: out.logits,
            f_hat: out.f_hat,
        })
    }

    /// Teacher-forced forward over all scales at once (`VAR.forward` with no label dropout):
    /// the input is the first-scale start token followed by the next-scale inputs that
    /// `indices` produce, the attention mask is block-causal over scales, and the result is
    /// the logits `[B, L, V]` (`L = Σ pn²`). Row `b` equals the conditional half of the KV-cached
    /// loop replayed with the same indices.
    ///
    /// `labels` may include the null class `num_classes` (unconditional logits).
    pub fn forward_teacher(&self, labels: &[u32], indices: &[Vec<u32>]) -> Result<Tensor> {
        self.check_labels(labels, true)?;
        self.check_indices(indices, labels.len())?;
        let b = labels.len();
        let cond = self.conditioning(labels)?;
        let q = self.vae.quantizer();
        let scales = self.config.num_scales();
        let mut parts = Vec::with_capacity(scales);
        parts.push(self.first_tokens(&cond.cond)?);
        let mut f_hat = self.zero_fhat(b)?;
        for (si, (idx, &pn)) in indices.iter().zip(&self.config.patch_nums).enumerate() {
            if si + 1 == scales {
                break;
            }
            let h = q.embed(idx, b, pn)?;
            let (f, next) = q.next_autoregressive_input(si, &f_hat, &h)?;
            f_hat = f;
            parts.push(self.embed_scale(&next, si + 1)?);
        }
        let refs: Vec<&Tensor> = parts.iter().collect();
        let x = Tensor::concat(&refs, 1)?;
        let mask = self.block_causal_mask();
        self.transformer(&x, &cond, None, &mask)
    }

    fn zero_fhat(&self, b: usize) -> Result<Tensor> {
        let last = self.config.patch_nums[self.config.num_scales() - 1];
        Ok(self.class_emb.new_zeros(&[b, self.cvae(), last, last])?)
    }

    /// The shared loop of [`Var::sample`] and [`Var::generate_with_indices`]. Inputs are
    /// validated by the callers.
    fn run_loop(
        &self,
        labels: &[u32],
        cfg: f32,
        mut source: TokenSource<'_>,
        record_logits: bool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<LoopOut> {
        let config = &self.config;
        let (b, scales) = (labels.len(), config.num_scales());
        let null = config.num_classes as u32;
        let rows: Vec<u32> = labels
            .iter()
            .copied()
            .chain(std::iter::repeat_n(null, b))
            .collect();
        let cond = self.conditioning(&rows)?;
        let mut caches = self.new_caches(2 * b);
        let q = self.vae.quantizer();

        let mut x = self.first_tokens(&cond.cond)?;
        let mut f_hat = self.zero_fhat(b)?;
        let mut indices = Vec::with_capacity(scales);
        let (mut raw_logits, mut logits) = (Vec::new(), Vec::new());
        let tokens_total = config.seq_len();
        let mut tokens_done = 0;
        for si in 0..scales {
            let pn = config.patch_nums[si];
            // Every block over this scale's 2B·pn² tokens; the cache holds earlier scales, so
            // no mask is needed (a scale sees all earlier scales and itself).
            let raw = self.transformer(&x, &cond, Some(&mut caches), &AttentionMask::None)?;
            let t = config.cfg_strength(cfg, si) as f32;
            let mixed = cfg_mix_stacked(&raw, t, CfgForm::Var)?;
            let idx = match &mut source {
                TokenSource::Sample { rng, sampling } => sample_rows(&mixed, sampling, rng)?,
                TokenSource::Given(all) => all[si].clone(),
            };
            let h = q.embed(&idx, b, pn)?;
            let (f, next) = q.next_autoregressive_input(si, &f_hat, &h)?;
            f_hat = f;
            if si + 1 < scales {
                let half = self.embed_scale(&next, si + 1)?;
                // The same tokens feed the conditional and the unconditional rows.
                x = Tensor::concat(&[&half, &half], 0)?;
            }
            if record_logits {
                raw_logits.push(raw);
                logits.push(mixed);
            }
            indices.push(idx);
            tokens_done += pn * pn;
            progress(Progress::Scale {
                scale: si,
                num_scales: scales,
                patch_num: pn,
                tokens_done,
                tokens_total,
            });
        }
        Ok(LoopOut {
            indices,
            f_hat,
            raw_logits,
            logits,
        })
    }
}
