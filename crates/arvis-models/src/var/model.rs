//! [`Var`]: the loaded model (transformer + VQ-VAE) and its shared pieces.

use arvis_attention::{AttentionMask, BlockCausalMask, KvCache};
use arvis_core::ops::WeightStorage;
use arvis_core::weights::{META_CONFIG, META_FAMILY};
use arvis_core::{Device, Tensor, Weights, WeightsScope};
use arvis_tokenizer::{VqVae, VqVaeConfig};
use serde::{Deserialize, Serialize};

use super::VarConfig;
use super::layers::{Block, BlockModulation, Head, HeadModulation, Linear};
use crate::error::{ModelError, Result};

/// The `arvis.family` value of VAR weights files.
pub const VAR_FAMILY: &str = "var";

/// The whole `arvis.config` object of a VAR weights file: `{"var": {..}, "vae": {..}}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VarFileConfig {
    /// The transformer.
    pub var: VarConfig,
    /// The VQ-VAE tokenizer (stored under the `vae.` prefix).
    pub vae: VqVaeConfig,
}

/// How [`Var::load_on_with`] / [`Var::from_parts_with`] build the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Storage of every linear layer's weight (`word_embed`, the blocks' `ada_lin`, `mat_qkv`,
    /// `proj`, `fc1`, `fc2`, `shared_ada_lin`, the head's): [`WeightStorage::F16`] rounds them
    /// to half precision once. On the GPU the halves are stored and read (half the weight
    /// bytes per product); on the CPU the rounded values are used in f32 (the same numbers,
    /// no speed-up). Biases, embeddings, norms and activations stay f32, and so does all
    /// arithmetic. Default: [`WeightStorage::F32`].
    pub weight_storage: WeightStorage,
}

/// A VAR model: the next-scale-prediction transformer and its multi-scale VQ-VAE.
///
/// Build it with [`Var::load`] from a converted weights file, with [`Var::from_parts`] from a
/// weights scope and an already-loaded tokenizer, or with [`Var::random`] for tests, demos and
/// benchmarks. Sampling is [`Var::generate`]; see the [module docs](super) for the algorithm.
pub struct Var {
    pub(crate) config: VarConfig,
    pub(crate) vae: VqVae,
    /// `class_emb.weight`, `[num_classes + 1, C]` (last row: the null class).
    pub(crate) class_emb: Tensor,
    /// `pos_start`, `[first_l, C]`.
    pub(crate) pos_start: Tensor,
    /// `lvl_embed(lvl_1L) + pos_1LC`, `[L, C]`, precomputed once.
    pub(crate) lvl_pos: Tensor,
    pub(crate) word_embed: Linear,
    /// `shared_ada_lin.1` when `shared_aln`.
    pub(crate) shared_ada_lin: Option<Linear>,
    pub(crate) blocks: Vec<Block>,
    pub(crate) head: Head,
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Var")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Everything that depends only on the batch's labels, computed once per request: the
/// conditions and every block's and the head's AdaLN vectors.
pub(crate) struct Conditioning {
    /// `class_emb(labels)`, `[N, C]`.
    pub(crate) cond: Tensor,
    pub(crate) blocks: Vec<BlockModulation>,
    pub(crate) head: HeadModulation,
}

/// Top-level modules of the VAR transformer's state dict.
const TRANSFORMER_MODULES: [&str; 9] = [
    "class_emb",
    "pos_start",
    "pos_1LC",
    "lvl_embed",
    "word_embed",
    "shared_ada_lin",
    "blocks",
    "head_nm",
    "head",
];

/// Non-learned buffers of the official state dict: converters drop them, but a file that keeps
/// them is still accepted (they are recomputed, never read).
fn is_dropped_buffer(name: &str) -> bool {
    name == "lvl_1L" || name == "attn_bias_for_masking" || name.ends_with(".attn.zero_k_bias")
}

/// Rejects tensors under the transformer's modules that `config` has no place for, so a file
/// whose `arvis.config` understates its depth, or disagrees on `shared_aln` / `attn_l2_norm`,
/// is an error rather than a silently truncated model. Other namespaces (`vae.`, extra data
/// such as test fixtures) are left alone.
fn check_no_stray_tensors(
    weights: &WeightsScope<'_>,
    config: &VarConfig,
    vocab: usize,
    cvae: usize,
) -> Result<()> {
    let expected: std::collections::HashSet<String> =
        super::random::var_tensor_specs(config, vocab, cvae)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
    for name in weights.names() {
        let module = name.split('.').next().unwrap_or(name);
        if TRANSFORMER_MODULES.contains(&module)
            && !expected.contains(name)
            && !is_dropped_buffer(name)
        {
            return Err(ModelError::UnexpectedTensor {
                path: weights.weights().path().to_path_buf(),
                name: weights.full_name(name),
                why: format!(
                    "depth {}, shared_aln {}, attn_l2_norm {}",
                    config.depth, config.shared_aln, config.attn_l2_norm
                ),
            });
        }
    }
    Ok(())
}

impl Var {
    /// Loads a converted VAR weights file: checks `arvis.family` is `"var"`, reads the
    /// configuration from `arvis.config` (`{"var": {..}, "vae": {..}}`), loads the VQ-VAE from
    /// the `vae.` prefix and every transformer tensor with its expected shape (a missing or
    /// mis-shaped tensor is an error naming it; so is a transformer tensor the configuration
    /// has no place for, such as `blocks.16.*` in a depth-16 file).
    pub fn load(weights: &Weights) -> Result<Var> {
        Self::load_on(weights, Device::Cpu)
    }

    /// [`Var::load`] with every tensor placed on `device` (uploaded as it is read); the model
    /// then runs there, with the same numbers as on the CPU within the kernels' tolerances.
    ///
    /// Errors: as [`Var::load`], and the device's ([`arvis_core::Error::Gpu`]) when no adapter
    /// exists or an upload fails.
    pub fn load_on(weights: &Weights, device: Device) -> Result<Var> {
        Self::load_on_with(weights, device, LoadOptions::default())
    }

    /// [`Var::load_on`] with `options` (f16 weight storage: [`LoadOptions::weight_storage`]).
    /// With f16 storage on the GPU each linear weight is uploaded, read back once to be rounded
    /// on the host (bit-identical to the CPU's rounding) and stored as halves.
    ///
    /// Errors: as [`Var::load_on`].
    pub fn load_on_with(weights: &Weights, device: Device, options: LoadOptions) -> Result<Var> {
        let family = weights.metadata_str(META_FAMILY)?;
        if family != VAR_FAMILY {
            return Err(ModelError::Family {
                path: weights.path().to_path_buf(),
                expected: VAR_FAMILY,
                found: family.to_owned(),
            });
        }
        let json = weights.metadata_json(META_CONFIG)?;
        let file_cfg: VarFileConfig = serde_json::from_value(json).map_err(|e| {
            ModelError::config(format!(
                "{}: `{META_CONFIG}` does not describe a VAR model: {e}",
                weights.path().display()
            ))
        })?;
        let vae = VqVae::load(&weights.scope_on("vae", device), &file_cfg.vae)?;
        Var::from_parts_with(file_cfg.var, &weights.scope_on("", device), vae, options)
    }

    /// Builds the transformer from `weights` (names as in the official state dict, relative to
    /// the scope) around an already-loaded tokenizer. The tokenizer's patch numbers must equal
    /// the transformer's; its vocabulary and latent width fix the head and `word_embed` shapes.
    pub fn from_parts(config: VarConfig, weights: &WeightsScope<'_>, vae: VqVae) -> Result<Var> {
        Self::from_parts_with(config, weights, vae, LoadOptions::default())
    }

    /// [`Var::from_parts`] with `options`.
    pub fn from_parts_with(
        config: VarConfig,
        weights: &WeightsScope<'_>,
        vae: VqVae,
        options: LoadOptions,
    ) -> Result<Var> {
        let storage = options.weight_storage;
        config.validate()?;
        let q = vae.quantizer();
        if q.patch_nums() != config.patch_nums.as_slice() {
            return Err(ModelError::config(format!(
                "transformer patch_nums {:?} differ from the VQ-VAE's {:?}",
                config.patch_nums,
                q.patch_nums()
            )));
        }
        let (vocab, cvae) = (q.vocab_size(), q.channels());
        check_no_stray_tensors(weights, &config, vocab, cvae)?;
        let c = config.embed_dim;
        let (l, first_l, scales) = (config.seq_len(), config.scale_len(0), config.num_scales());

        let class_emb = weights.get("class_emb.weight", &[config.num_classes + 1, c])?;
        let pos_start = weights
            .get("pos_start", &[1, first_l, c])?
            .reshape(&[first_l, c])?;
        let pos_1lc = weights.get("pos_1LC", &[1, l, c])?.reshape(&[l, c])?;
        let lvl_embed = weights.get("lvl_embed.weight", &[scales, c])?;
        // `lvl_1L` (a buffer, recomputed): the scale index of every token.
        let lvl_1l: Vec<u32> = (0..scales)
            .flat_map(|si| std::iter::repeat_n(si as u32, config.scale_len(si)))
            .collect();
        let lvl_pos = lvl_embed.embedding(&lvl_1l)?.add(&pos_1lc)?;
        let word_embed = Linear::load(&weights.scope("word_embed"), c, cvae, true, storage)?;
        let shared_ada_lin = if config.shared_aln {
            Some(Linear::load(
                &weights.scope("shared_ada_lin.1"),
                6 * c,
                c,
                true,
                storage,
            )?)
        } else {
            None
        };
        let blocks = (0..config.depth)
            .map(|i| Block::load(&weights.scope(&format!("blocks.{i}")), &config, storage))
            .collect::<Result<Vec<_>>>()?;
        let head = Head::load(weights, &config, vocab, storage)?;
        Ok(Var {
            config,
            vae,
            class_emb,
            pos_start,
            lvl_pos,
            word_embed,
            shared_ada_lin,
            blocks,
            head,
        })
    }

    /// The transformer's configuration.
    pub fn config(&self) -> &VarConfig {
        &self.config
    }

    /// The VQ-VAE tokenizer.
    pub fn vae(&self) -> &VqVae {
        &self.vae
    }

    /// Codebook size `V` (the logits' last dim).
    pub fn vocab_size(&self) -> usize {
        self.vae.quantizer().vocab_size()
    }

    /// Latent width `Cvae` of the VQ-VAE (the `word_embed` input).
    pub fn cvae(&self) -> usize {
        self.vae.quantizer().channels()
    }

    /// Checks the batch is not empty and every label is a real class (`< num_classes`), or also
    /// the null class `num_classes` when `allow_null`.
    pub(crate) fn check_labels(&self, labels: &[u32], allow_null: bool) -> Result<()> {
        if labels.is_empty() {
            return Err(ModelError::request("the batch is empty (no labels)"));
        }
        let nc = self.config.num_classes;
        let limit = if allow_null { nc + 1 } else { nc };
        match labels.iter().position(|&y| y as usize >= limit) {
            Some(position) => Err(ModelError::Label {
                label: labels[position],
                position,
                num_classes: nc,
            }),
            None => Ok(()),
        }
    }

    /// Checks caller-supplied indices: one vector per scale, `B·pn²` entries each, all `< V`.
    pub(crate) fn check_indices(&self, indices: &[Vec<u32>], batch: usize) -> Result<()> {
        let scales = self.config.num_scales();
        if indices.len() != scales {
            return Err(ModelError::Indices {
                scale: indices.len().min(scales),
                msg: format!("expected {scales} scales, got {}", indices.len()),
            });
        }
        let v = self.vocab_size();
        for (si, idx) in indices.iter().enumerate() {
            let want = batch * self.config.scale_len(si);
            if idx.len() != want {
                return Err(ModelError::Indices {
                    scale: si,
                    msg: format!(
                        "expected {want} indices ({batch} images × {}²), got {}",
                        self.config.patch_nums[si],
                        idx.len()
                    ),
                });
            }
            if let Some(&bad) = idx.iter().find(|&&i| i as usize >= v) {
                return Err(ModelError::Indices {
                    scale: si,
                    msg: format!("index {bad} is outside the codebook of {v} entries"),
                });
            }
        }
        Ok(())
    }

    /// Conditions and AdaLN vectors of the rows `rows` (class ids, null class included): one
    /// small GEMM per block and one for the head, shared by every scale of a request.
    pub(crate) fn conditioning(&self, rows: &[u32]) -> Result<Conditioning> {
        let cond = self.class_emb.embedding(rows)?;
        let silu = cond.silu()?;
        let n = rows.len();
        let shared = match &self.shared_ada_lin {
            Some(lin) => Some(
                lin.forward(&silu)?
                    .reshape(&[n, 6, self.config.embed_dim])?,
            ),
            None => None,
        };
        let blocks = self
            .blocks
            .iter()
            .map(|b| b.modulation(&silu, shared.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let head = self.head.modulation(&silu)?;
        Ok(Conditioning { cond, blocks, head })
    }

    /// Runs every block then the head on `x` `[N, l, C]`, returning logits `[N, l, V]`.
    pub(crate) fn transformer(
        &self,
        x: &Tensor,
        cond: &Conditioning,
        mut caches: Option<&mut [KvCache]>,
        mask: &AttentionMask,
    ) -> Result<Tensor> {
        let mut x = x.clone();
        for (i, (block, m)) in self.blocks.iter().zip(&cond.blocks).enumerate() {
            let cache = match caches.as_deref_mut() {
                Some(c) => c.get_mut(i),
                None => None,
            };
            x = block.forward(&x, m, cache, mask)?;
        }
        self.head.forward(&x, &cond.head)
    }

    /// Token map of the first scale for every row: `cond + pos_start + lvl_pos[..first_l]`,
    /// `[N, first_l, C]`.
    pub(crate) fn first_tokens(&self, cond: &Tensor) -> Result<Tensor> {
        let (n, c) = (cond.shape()[0], self.config.embed_dim);
        let first_l = self.config.scale_len(0);
        // The reference adds `sos + pos_start` first, then `lvl_pos`; keep its order.
        let x = cond.reshape(&[n, 1, c])?.add(&self.pos_start)?;
        Ok(x.add(&self.lvl_pos.narrow(0, 0, first_l)?)?)
    }

    /// Embeds the next scale's input `[B, Cvae, pn, pn]` as tokens `word_embed(·) +
    /// lvl_pos[begin..end]`, `[B, pn², C]`.
    pub(crate) fn embed_scale(&self, next: &Tensor, si: usize) -> Result<Tensor> {
        let s = next.shape();
        let (b, cv) = (s[0], s[1]);
        let (begin, end) = self.config.begin_ends()[si];
        let tokens = next.reshape(&[b, cv, end - begin])?.transpose(1, 2)?;
        let x = self.word_embed.forward(&tokens)?;
        Ok(x.add(&self.lvl_pos.narrow(0, begin, end - begin)?)?)
    }

    /// One KV cache per block, for `n` rows and the whole sequence.
    pub(crate) fn new_caches(&self, n: usize) -> Vec<KvCache> {
        let cfg = &self.config;
        (0..cfg.depth)
            .map(|_| KvCache::new(n, cfg.num_heads, cfg.head_dim(), cfg.seq_len()))
            .collect()
    }

    /// The block-causal mask of the whole sequence (scale `j` sees scales `≤ j`).
    pub(crate) fn block_causal_mask(&self) -> AttentionMask {
        AttentionMask::BlockCausal(BlockCausalMask::from_patch_nums(&self.config.patch_nums))
    }
}
