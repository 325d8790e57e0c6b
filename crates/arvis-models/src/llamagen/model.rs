//! [`LlamaGen`]: the class-conditional GPT (official `Transformer` of `gpt.py`) and its loading.

use arvis_attention::{KvCache, RopeTable};
use arvis_core::weights::{META_CONFIG, META_FAMILY};
use arvis_core::{Device, Tensor, Weights, WeightsScope};
use serde::Deserialize;

use crate::error::{ModelError, Result};
use crate::llamagen::config::LlamaGenConfig;
use crate::llamagen::layers::{Attend, Block};
use crate::var::LoadOptions;
use crate::var::layers::Linear;

/// `arvis.family` of LlamaGen files.
pub const LLAMAGEN_FAMILY: &str = "llamagen";

/// The GPT of LlamaGen: class embedding (with the null class `num_classes`), token embedding,
/// RMSNorm/SwiGLU blocks with 2D RoPE, final RMSNorm and the output projection.
#[derive(Clone, Debug)]
pub struct LlamaGen {
    cfg: LlamaGenConfig,
    /// `[num_classes + 1, C]`.
    cls_table: Tensor,
    /// `[vocab, C]`.
    tok_table: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    output: Linear,
    rope: RopeTable,
    device: Device,
}

#[derive(Deserialize)]
struct FileConfig {
    gpt: LlamaGenConfig,
}

impl LlamaGen {
    /// Loads the GPT from `scope` (names as in the official `ckpt["model"]`:
    /// `cls_embedding.embedding_table.weight`, `tok_embeddings.weight`,
    /// `layers.{i}.attention.wqkv.weight`, ..., `norm.weight`, `output.weight`), checking every
    /// shape against `cfg`. The model lives on the scope's device
    /// ([`Weights::scope_on`]).
    pub fn load(scope: &WeightsScope<'_>, cfg: &LlamaGenConfig) -> Result<Self> {
        Self::load_with(scope, cfg, LoadOptions::default())
    }

    /// [`LlamaGen::load`] with `options`: [`LoadOptions::weight_storage`] `F16` keeps every
    /// linear weight (the blocks' and `output`) in f16 — half the bytes a decode step streams,
    /// at f16 rounding of the weights (exact for weights that are f16 values already); the
    /// embeddings and norms stay f32.
    pub fn load_with(
        scope: &WeightsScope<'_>,
        cfg: &LlamaGenConfig,
        options: LoadOptions,
    ) -> Result<Self> {
        cfg.validate()?;
        let c = cfg.dim;
        let storage = options.weight_storage;
        let blocks = (0..cfg.n_layer)
            .map(|i| Block::load(&scope.scope(&format!("layers.{i}")), cfg, storage))
            .collect::<Result<Vec<_>>>()?;
        let cls_table = scope.get(
            "cls_embedding.embedding_table.weight",
            &[cfg.num_classes + 1, c],
        )?;
        let device = cls_table.device();
        let rope =
            RopeTable::llamagen(cfg.grid(), cfg.head_dim(), cfg.rope_base, cfg.cls_token_num)?
                .to_device(device)?;
        Ok(LlamaGen {
            cls_table,
            tok_table: scope.get("tok_embeddings.weight", &[cfg.vocab_size, c])?,
            blocks,
            norm: scope.get("norm.weight", &[c])?,
            output: Linear::load(&scope.scope("output"), cfg.vocab_size, c, false, storage)?,
            rope,
            device,
            cfg: cfg.clone(),
        })
    }

    /// Loads the GPT of an arvis LlamaGen file (`arvis.family` = `"llamagen"`, the config
    /// under `"gpt"` in `arvis.config`, tensors under `gpt.`) onto `device`.
    pub fn load_on(weights: &Weights, device: Device) -> Result<Self> {
        Self::load_on_with(weights, device, LoadOptions::default())
    }

    /// [`LlamaGen::load_on`] with `options` (f16 weight storage: [`LlamaGen::load_with`]).
    pub fn load_on_with(weights: &Weights, device: Device, options: LoadOptions) -> Result<Self> {
        let family = weights.metadata_str(META_FAMILY)?;
        if family != LLAMAGEN_FAMILY {
            return Err(ModelError::Family {
                path: weights.path().to_path_buf(),
                expected: LLAMAGEN_FAMILY,
                found: family.to_owned(),
            });
        }
        let json = weights.metadata_json(META_CONFIG)?;
        let file: FileConfig = serde_json::from_value(json).map_err(|e| {
            ModelError::config(format!(
                "{}: `{META_CONFIG}` does not describe a LlamaGen GPT: {e}",
                weights.path().display()
            ))
        })?;
        Self::load_with(&weights.scope_on("gpt", device), &file.gpt, options)
    }

    /// The configuration.
    pub fn config(&self) -> &LlamaGenConfig {
        &self.cfg
    }

    /// The order the generated tokens come in (and the run's `tokens` are listed in): raster.
    pub fn token_order(&self) -> arvis_tokenizer::TokenOrder {
        arvis_tokenizer::TokenOrder::Raster
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Empty KV caches (one per block) for `rows` sequences.
    pub(crate) fn new_caches(&self, rows: usize) -> Vec<KvCache> {
        let cap = self.cfg.cls_token_num + self.cfg.block_size;
        (0..self.cfg.n_layer)
            .map(|_| KvCache::new(rows, self.cfg.n_head, self.cfg.head_dim(), cap))
            .collect()
    }

    /// Class embeddings `[N, 1, C]` of `labels` (the null class is `num_classes`).
    pub(crate) fn embed_classes(&self, labels: &[u32]) -> Result<Tensor> {
        let c = self.cfg.dim;
        Ok(self
            .cls_table
            .embedding(labels)?
            .reshape(&[labels.len(), 1, c])?)
    }

    /// Token embeddings `[N, L, C]` of `tokens` (`N·L`, row-major).
    pub(crate) fn embed_tokens(&self, tokens: &[u32], n: usize) -> Result<Tensor> {
        let l = tokens.len() / n.max(1);
        Ok(self
            .tok_table
            .embedding(tokens)?
            .reshape(&[n, l, self.cfg.dim])?)
    }

    /// The blocks, final norm and output on `h` `[N, L, C]` starting at sequence position
    /// `start`; with `caches`, appends to them, else causal over `h` alone. Logits `[N, L, V]`.
    pub(crate) fn run(
        &self,
        h: Tensor,
        start: usize,
        caches: Option<&mut [KvCache]>,
    ) -> Result<Tensor> {
        let mut h = h;
        match caches {
            Some(caches) => {
                for (block, cache) in self.blocks.iter().zip(caches.iter_mut()) {
                    h = block.forward(&h, &self.rope, start, Attend::Cached(cache))?;
                }
            }
            None => {
                for block in &self.blocks {
                    h = block.forward(&h, &self.rope, start, Attend::Causal)?;
                }
            }
        }
        let h = h.rms_norm(Some(&self.norm), self.cfg.norm_eps)?;
        self.output.forward(&h)
    }

    /// Checks labels against the real classes.
    pub(crate) fn check_labels(&self, labels: &[u32]) -> Result<()> {
        if labels.is_empty() {
            return Err(ModelError::request("no labels: the batch is empty"));
        }
        for (position, &label) in labels.iter().enumerate() {
            if label as usize >= self.cfg.num_classes {
                return Err(ModelError::Label {
                    label,
                    position,
                    num_classes: self.cfg.num_classes,
                });
            }
        }
        Ok(())
    }

    /// Checks `B` rows of `len` tokens each against the vocabulary.
    pub(crate) fn check_tokens(&self, tokens: &[Vec<u32>], b: usize, len: usize) -> Result<()> {
        if tokens.len() != b {
            return Err(ModelError::request(format!(
                "{} token rows for {b} labels",
                tokens.len()
            )));
        }
        for (r, row) in tokens.iter().enumerate() {
            if row.len() != len {
                return Err(ModelError::request(format!(
                    "token row {r} has {} tokens, expected {len}",
                    row.len()
                )));
            }
            if let Some(&t) = row.iter().find(|&&t| t as usize >= self.cfg.vocab_size) {
                return Err(ModelError::request(format!(
                    "token row {r}: token {t} out of range for a vocabulary of {}",
                    self.cfg.vocab_size
                )));
            }
        }
        Ok(())
    }

    /// Full-sequence causal forward (teacher forcing, the official forward with both `idx` and
    /// `cond_idx`): the class token of `labels` then `tokens[b][..block_size − 1]`; returns the
    /// logits `[B, block_size, V]`, row `t` predicting token `t`. Equal (within rounding) to the
    /// conditional logits of the cached loop.
    pub fn forward_teacher(&self, labels: &[u32], tokens: &[Vec<u32>]) -> Result<Tensor> {
        self.check_labels(labels)?;
        let (b, n) = (labels.len(), self.cfg.block_size);
        self.check_tokens(tokens, b, n)?;
        let flat: Vec<u32> = tokens
            .iter()
            .flat_map(|r| r[..n - 1].iter().copied())
            .collect();
        let h = Tensor::concat(
            &[&self.embed_classes(labels)?, &self.embed_tokens(&flat, b)?],
            1,
        )?;
        self.run(h, 0, None)
    }
}
