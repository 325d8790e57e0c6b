//! LlamaGen as an [`arvis_spec::SpecModel`]: the target (or draft) of the speculative samplers.
//!
//! [`LlamaGenSpec`] decodes `B` images with its own per-layer KV caches. With guidance
//! (`cfg > 1`) it runs `2B` transformer rows (the `B` labels, then `B` null-class rows), feeds
//! every token to both halves, mixes the logits with [`CfgForm::LlamaGen`] and hands the
//! samplers the processed distributions ([`Dists::from_logits`]: temperature, top-k, top-p) —
//! exactly what [`LlamaGen::generate`] draws from. A window of `w` tokens per row is one
//! transformer pass (causal within the window, attending to the whole cache; 2D RoPE rows
//! `cls + position`, consecutive in raster order); rollback truncates every layer's cache.

use arvis_attention::KvCache;
use arvis_core::Tensor;
use arvis_core::sampling::{CfgForm, SamplingConfig, cfg_mix_stacked};
use arvis_spec::{Dists, Embeddings, SpecError, SpecModel};
use arvis_tokenizer::LlamaGenVq;

use crate::error::{ModelError, Result};
use crate::llamagen::model::LlamaGen;

/// A LlamaGen GPT decoding `B` class-conditional images for the speculative samplers.
///
/// Positions count image tokens from 0 (raster order); the class token sits before position 0
/// in the cache. With the sampling stream of [`LlamaGen::generate`]
/// (`SeededRng::new(seed).fork(`[`LLAMAGEN_SAMPLING_STREAM`](crate::llamagen::LLAMAGEN_SAMPLING_STREAM)`)`),
/// [`arvis_spec::plain_decode_with`] on this model reproduces `generate`'s tokens.
#[derive(Clone, Debug)]
pub struct LlamaGenSpec<'m> {
    gpt: &'m LlamaGen,
    /// The class rows fed to the transformer: the labels, then (guided) one null class each.
    class_rows: Vec<u32>,
    /// Images `B`.
    images: usize,
    cfg: f32,
    sampling: SamplingConfig,
    caches: Vec<KvCache>,
    /// Image tokens whose keys/values are cached.
    cached: usize,
    started: bool,
}

impl LlamaGen {
    /// The model as an [`arvis_spec::SpecModel`] for `labels` with guidance `cfg` (`> 1` doubles
    /// the batch with the null class, as [`LlamaGen::generate`]) and `sampling` (use
    /// [`SamplingConfig::llamagen`]; temperature `≤ 0` gives greedy one-hot distributions, see
    /// [`arvis_spec::probs_from_logits`]).
    pub fn spec_model(
        &self,
        labels: &[u32],
        cfg: f32,
        sampling: &SamplingConfig,
    ) -> Result<LlamaGenSpec<'_>> {
        self.check_labels(labels)?;
        if !cfg.is_finite() {
            return Err(ModelError::request(format!("cfg {cfg} must be finite")));
        }
        sampling.validate()?;
        let images = labels.len();
        let mut class_rows = labels.to_vec();
        if cfg > 1.0 {
            let null = self.config().num_classes as u32;
            class_rows.extend(std::iter::repeat_n(null, images));
        }
        Ok(LlamaGenSpec {
            gpt: self,
            caches: self.new_caches(class_rows.len()),
            class_rows,
            images,
            cfg,
            sampling: *sampling,
            cached: 0,
            started: false,
        })
    }

    /// The negative log-likelihood (nats) of each sequence of `tokens` (one row per label, in
    /// generation order, `block_size` tokens) under this model's guided distribution with
    /// `cfg` at temperature 1 and **no** top-k / top-p: `−Σ_t ln p(x_t | x_<t)`, from one
    /// teacher-forced pass. Filters are left out so that every token has a finite score — a
    /// lossy sampler may emit a token a top-k filter would have removed — which makes this the
    /// quality proxy the speculative samplers are compared with.
    ///
    /// Errors: [`ModelError::Request`] for a row count other than `labels.len()`, a row of the
    /// wrong length or a token outside the vocabulary; the model's errors.
    pub fn sequence_nll(&self, labels: &[u32], cfg: f32, tokens: &[Vec<u32>]) -> Result<Vec<f64>> {
        let n = self.config().block_size;
        let vocab = self.config().vocab_size;
        if tokens.len() != labels.len() {
            return Err(ModelError::request(format!(
                "{} token rows for {} labels",
                tokens.len(),
                labels.len()
            )));
        }
        if let Some((i, row)) = tokens.iter().enumerate().find(|(_, r)| r.len() != n) {
            return Err(ModelError::request(format!(
                "token row {i} has {} tokens, the model makes {n}",
                row.len()
            )));
        }
        if let Some(&x) = tokens.iter().flatten().find(|&&x| x as usize >= vocab) {
            return Err(ModelError::request(format!(
                "token {x} is outside the vocabulary of {vocab}"
            )));
        }
        let unfiltered = SamplingConfig::llamagen(1.0, 0, 1.0);
        let mut model = self.spec_model(labels, cfg, &unfiltered)?;
        let spec = |e: SpecError| ModelError::request(format!("teacher-forced pass: {e}"));
        let first = model.start().map_err(spec)?;
        let feed: Vec<u32> = tokens
            .iter()
            .flat_map(|r| r[..n - 1].iter().copied())
            .collect();
        let rest = if n > 1 {
            Some(model.forward(&feed, n - 1).map_err(spec)?)
        } else {
            None
        };
        Ok(tokens
            .iter()
            .enumerate()
            .map(|(b, row)| {
                let mut nll = -first.get(b, 0)[row[0] as usize].ln();
                if let Some(rest) = &rest {
                    for (t, &x) in row.iter().enumerate().skip(1) {
                        nll -= rest.get(b, t - 1)[x as usize].ln();
                    }
                }
                nll
            })
            .collect())
    }
}

impl<'m> LlamaGenSpec<'m> {
    /// The wrapped GPT.
    pub fn gpt(&self) -> &'m LlamaGen {
        self.gpt
    }

    fn guided(&self) -> bool {
        self.class_rows.len() > self.images
    }

    /// Guidance on `[N, L, V]` transformer logits: `[B, L, V]`.
    fn mix(&self, logits: Tensor) -> Result<Tensor> {
        if !self.guided() {
            return Ok(logits);
        }
        let (n, l, v) = (logits.shape()[0], logits.shape()[1], logits.shape()[2]);
        // [2B, L, V] → [2B·L, V]: the conditional rows are still the first half.
        let mixed = cfg_mix_stacked(&logits.reshape(&[n * l, v])?, self.cfg, CfgForm::LlamaGen)?;
        Ok(mixed.reshape(&[n / 2, l, v])?)
    }

    /// Clears the caches and runs the class token: the guided logits of token 0, `[B, 1, V]`.
    pub fn start_logits(&mut self) -> Result<Tensor> {
        for c in &mut self.caches {
            c.clear();
        }
        self.cached = 0;
        self.started = false;
        let h = self.gpt.embed_classes(&self.class_rows)?;
        let logits = self.gpt.run(h, 0, Some(&mut self.caches))?;
        // One class token (the config rejects others): its output predicts token 0.
        let cls = logits.shape()[1];
        let last = logits.narrow(1, cls - 1, 1)?;
        self.started = true;
        self.mix(last)
    }

    /// Appends `tokens` (`[B, w]` row-major, positions `cached() .. cached() + w`) in one
    /// transformer pass and returns the guided logits `[B, w, V]` (slot `j` predicts position
    /// `cached_before + j + 1`).
    pub fn forward_logits(&mut self, tokens: &[u32], width: usize) -> Result<Tensor> {
        let cfg = self.gpt.config();
        let b = self.images;
        if !self.started {
            return Err(ModelError::request(
                "LlamaGenSpec::forward before start".to_owned(),
            ));
        }
        if width == 0 || tokens.len() != b * width {
            return Err(ModelError::request(format!(
                "{} tokens for a window of {width} over {b} images",
                tokens.len()
            )));
        }
        if self.cached + width > cfg.block_size {
            return Err(ModelError::request(format!(
                "window of {width} after {} cached tokens passes the {} image tokens",
                self.cached, cfg.block_size
            )));
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= cfg.vocab_size) {
            return Err(ModelError::request(format!(
                "token {t} out of range for a vocabulary of {}",
                cfg.vocab_size
            )));
        }
        let feed: Vec<u32> = if self.guided() {
            tokens.iter().chain(tokens).copied().collect()
        } else {
            tokens.to_vec()
        };
        let h = self.gpt.embed_tokens(&feed, self.class_rows.len())?;
        // Raster order: image position p sits at RoPE table row `cls + p`.
        let start = cfg.cls_token_num + self.cached;
        let logits = self.gpt.run(h, start, Some(&mut self.caches))?;
        self.cached += width;
        self.mix(logits)
    }

    fn dists(&self, logits: &Tensor) -> arvis_spec::Result<Dists> {
        let s = logits.shape();
        Dists::from_logits(&logits.to_vec(), s[0], s[1], s[2], &self.sampling)
    }
}

impl SpecModel for LlamaGenSpec<'_> {
    fn rows(&self) -> usize {
        self.images
    }

    fn vocab(&self) -> usize {
        self.gpt.config().vocab_size
    }

    fn seq_len(&self) -> usize {
        self.gpt.config().block_size
    }

    fn cached(&self) -> usize {
        self.cached
    }

    fn start(&mut self) -> arvis_spec::Result<Dists> {
        let logits = self.start_logits().map_err(SpecError::model)?;
        self.dists(&logits)
    }

    fn forward(&mut self, tokens: &[u32], width: usize) -> arvis_spec::Result<Dists> {
        let logits = self
            .forward_logits(tokens, width)
            .map_err(SpecError::model)?;
        self.dists(&logits)
    }

    fn rollback(&mut self, len: usize) -> arvis_spec::Result<()> {
        if len > self.cached {
            return Err(SpecError::arg(
                "LlamaGenSpec::rollback",
                format!("to {len} tokens with {} cached", self.cached),
            ));
        }
        let keep = self.gpt.config().cls_token_num + len;
        for c in &mut self.caches {
            c.truncate(keep)
                .map_err(|e| SpecError::model(ModelError::from(e)))?;
        }
        self.cached = len;
        Ok(())
    }
}

/// The VQ's codebook as the lossy samplers' token embeddings: `[V, D]`, L2-normalised as the
/// tokenizer looks codes up (GSD's distance filter, LANTERN's neighbour table).
pub fn codebook_embeddings(vq: &LlamaGenVq) -> Result<Embeddings> {
    let table = vq.codebook().table();
    let (v, d) = (table.shape()[0], table.shape()[1]);
    Embeddings::new(v, d, table.to_vec()).map_err(|e| ModelError::config(format!("codebook: {e}")))
}
