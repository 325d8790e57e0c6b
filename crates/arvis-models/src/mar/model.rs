//! [`Mar`]: MAR's masked encoder–decoder (official `MAR.forward_mae_encoder` /
//! `forward_mae_decoder`) with its diffusion head, and their loading.

use arvis_core::ops::WeightStorage;
use arvis_core::weights::{META_CONFIG, META_FAMILY};
use arvis_core::{Device, Tensor, Weights, WeightsScope};
use arvis_heads::DiffusionHead;
use serde::Deserialize;

use crate::error::{ModelError, Result};
use crate::mar::config::MarConfig;
use crate::mar::layers::{LayerNorm, VitBlock};
use crate::var::layers::Linear;

/// `arvis.family` of MAR files.
pub const MAR_FAMILY: &str = "mar";

/// Epsilon of `z_proj_ln` (hard-coded in the reference, whatever `norm_layer` is).
const Z_PROJ_LN_EPS: f32 = 1e-6;

/// MAR: class embedding (plus the learned `fake_latent` of unconditional rows), the token
/// projection, the encoder over the unmasked tokens and the 64 buffer tokens, the decoder over
/// all positions (mask tokens at the masked ones), and the per-token diffusion head.
#[derive(Clone, Debug)]
pub struct Mar {
    cfg: MarConfig,
    /// `[class_num + 1, De]`: the class table with `fake_latent` appended as row `class_num`.
    cls_table: Tensor,
    z_proj: Linear,
    z_proj_ln: LayerNorm,
    /// `[1, buffer + S, De]`.
    encoder_pos: Tensor,
    encoder_blocks: Vec<VitBlock>,
    encoder_norm: LayerNorm,
    decoder_embed: Linear,
    /// `[1, Dd]`.
    mask_token: Tensor,
    /// `[1, buffer + S, Dd]`.
    decoder_pos: Tensor,
    decoder_blocks: Vec<VitBlock>,
    decoder_norm: LayerNorm,
    /// `[1, S, Dd]`.
    diffusion_pos: Tensor,
    head: DiffusionHead,
    device: Device,
}

#[derive(Deserialize)]
struct FileConfig {
    mar: MarConfig,
}

/// Which tokens each row of a pass sees: `masked[b][p]` for the `B` samples (rows `b` and
/// `b + B` of a guided pass share sample `b`'s mask). Every sample has the same number of
/// masked tokens, as in the reference (one `mask_len` for the batch).
pub(crate) struct Masks<'a> {
    pub(crate) masked: &'a [Vec<bool>],
}

impl Masks<'_> {
    fn row(&self, r: usize) -> &[bool] {
        &self.masked[r % self.masked.len()]
    }
}

impl Mar {
    /// Loads MAR from `scope` (the official `state_dict` names: `class_emb.weight`,
    /// `fake_latent`, `z_proj.*`, `encoder_blocks.{i}.attn.qkv.weight`, …, and the head under
    /// `diffloss.net.`), checking every shape against `cfg`. The model lives on the scope's
    /// device.
    pub fn load(scope: &WeightsScope<'_>, cfg: &MarConfig) -> Result<Self> {
        cfg.validate()?;
        let (de, dd) = (cfg.encoder_embed_dim, cfg.decoder_embed_dim);
        let (s, buf, t) = (cfg.seq_len(), cfg.buffer_size, cfg.token_embed_dim());
        let eps = cfg.norm_eps;
        let blocks = |prefix: &str, depth: usize, c: usize, heads: usize| {
            let n = (0..depth)
                .map(|i| {
                    VitBlock::load(
                        &scope.scope(&format!("{prefix}.{i}")),
                        c,
                        heads,
                        cfg.mlp_hidden(c),
                        eps,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            if scope.contains(&format!("{prefix}.{depth}.norm1.weight")) {
                return Err(ModelError::config(format!(
                    "{}: `{prefix}` has more than the configured {depth} blocks",
                    scope.weights().path().display()
                )));
            }
            Ok(n)
        };
        let class_emb = scope.get("class_emb.weight", &[cfg.class_num, de])?;
        let fake = scope.get("fake_latent", &[1, de])?;
        let device = class_emb.device();
        let head = DiffusionHead::load_inferred(&scope.scope("diffloss.net"))?;
        let hc = head.config();
        if hc.token_channels != t || hc.z_channels != dd {
            return Err(ModelError::config(format!(
                "the diffusion head takes {}-channel tokens and {}-wide conditions, the model \
                 has {t}-channel tokens and decoder width {dd}",
                hc.token_channels, hc.z_channels
            )));
        }
        Ok(Mar {
            cls_table: Tensor::concat(&[&class_emb, &fake], 0)?,
            z_proj: Linear::load(&scope.scope("z_proj"), de, t, true, WeightStorage::F32)?,
            z_proj_ln: LayerNorm::load(&scope.scope("z_proj_ln"), de, Z_PROJ_LN_EPS)?,
            encoder_pos: scope.get("encoder_pos_embed_learned", &[1, buf + s, de])?,
            encoder_blocks: blocks(
                "encoder_blocks",
                cfg.encoder_depth,
                de,
                cfg.encoder_num_heads,
            )?,
            encoder_norm: LayerNorm::load(&scope.scope("encoder_norm"), de, eps)?,
            decoder_embed: Linear::load(
                &scope.scope("decoder_embed"),
                dd,
                de,
                true,
                WeightStorage::F32,
            )?,
            mask_token: scope.get("mask_token", &[1, 1, dd])?.reshape(&[1, dd])?,
            decoder_pos: scope.get("decoder_pos_embed_learned", &[1, buf + s, dd])?,
            decoder_blocks: blocks(
                "decoder_blocks",
                cfg.decoder_depth,
                dd,
                cfg.decoder_num_heads,
            )?,
            decoder_norm: LayerNorm::load(&scope.scope("decoder_norm"), dd, eps)?,
            diffusion_pos: scope.get("diffusion_pos_embed_learned", &[1, s, dd])?,
            head,
            device,
            cfg: cfg.clone(),
        })
    }

    /// Loads MAR from an arvis MAR file (`arvis.family` = `"mar"`, the config under `"mar"`
    /// in `arvis.config`, MAR's tensors unprefixed as in the official `state_dict`, the head
    /// under `diffloss.net.`) onto `device`. The VAE (under `vae.`) is loaded separately with
    /// `arvis_tokenizer::KlVae`.
    pub fn load_on(weights: &Weights, device: Device) -> Result<Self> {
        let family = weights.metadata_str(META_FAMILY)?;
        if family != MAR_FAMILY {
            return Err(ModelError::Family {
                path: weights.path().to_path_buf(),
                expected: MAR_FAMILY,
                found: family.to_owned(),
            });
        }
        let json = weights.metadata_json(META_CONFIG)?;
        let file: FileConfig = serde_json::from_value(json).map_err(|e| {
            ModelError::config(format!(
                "{}: `{META_CONFIG}` does not describe a MAR model: {e}",
                weights.path().display()
            ))
        })?;
        Self::load(&weights.scope_on("", device), &file.mar)
    }

    /// The configuration.
    pub fn config(&self) -> &MarConfig {
        &self.cfg
    }

    /// The diffusion head.
    pub fn head(&self) -> &DiffusionHead {
        &self.head
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The row of the class table for an optional label: `None` is `fake_latent`.
    pub(crate) fn class_row(&self, label: Option<u32>, position: usize) -> Result<u32> {
        match label {
            None => Ok(self.cfg.class_num as u32),
            Some(l) if (l as usize) < self.cfg.class_num => Ok(l),
            Some(label) => Err(ModelError::Label {
                label,
                position,
                num_classes: self.cfg.class_num,
            }),
        }
    }

    /// One pass of the encoder and decoder: `tokens` `[N, S, T]` (masked ones are ignored),
    /// `class_rows` the `N` rows of the class table (`class_num` = `fake_latent`), `masks`
    /// the per-sample masks. Returns the conditions `z` `[N, S, Dd]` for every position
    /// (`decoder output + diffusion_pos_embed_learned`).
    pub(crate) fn forward_z(
        &self,
        tokens: &Tensor,
        class_rows: &[u32],
        masks: &Masks<'_>,
    ) -> Result<Tensor> {
        let (s, buf) = (self.cfg.seq_len(), self.cfg.buffer_size);
        let (de, dd) = (self.cfg.encoder_embed_dim, self.cfg.decoder_embed_dim);
        let n = class_rows.len();
        let len = buf + s;
        // Kept positions (buffer + unmasked), row-major: the reference's `nonzero` order.
        let kept_per_row = buf + masks.row(0).iter().filter(|&&m| !m).count();
        let mut keep = Vec::with_capacity(n * kept_per_row);
        for r in 0..n {
            let row = masks.row(r);
            if buf + row.iter().filter(|&&m| !m).count() != kept_per_row {
                return Err(ModelError::request(
                    "every sample must have the same number of masked tokens",
                ));
            }
            keep.extend(
                (0..len)
                    .filter(|&p| p < buf || !row[p - buf])
                    .map(|p| (r * len + p) as u32),
            );
        }

        // Encoder: [class × buffer, z_proj(tokens)] + pos, LayerNorm, drop the masked.
        let cls_ids: Vec<u32> = class_rows
            .iter()
            .flat_map(|&c| std::iter::repeat_n(c, buf))
            .collect();
        let cls = self.cls_table.embedding(&cls_ids)?.reshape(&[n, buf, de])?;
        let x = Tensor::concat(&[&cls, &self.z_proj.forward(tokens)?], 1)?;
        let x = self.z_proj_ln.forward(&x.add(&self.encoder_pos)?)?;
        let mut x = x
            .reshape(&[n * len, de])?
            .embedding(&keep)?
            .reshape(&[n, kept_per_row, de])?;
        for block in &self.encoder_blocks {
            x = block.forward(&x)?;
        }
        let x = self.encoder_norm.forward(&x)?;

        // Decoder: the encoded tokens back at their positions, mask tokens elsewhere.
        let x = self
            .decoder_embed
            .forward(&x)?
            .reshape(&[n * kept_per_row, dd])?;
        let table = Tensor::concat(&[&x, &self.mask_token], 0)?;
        let mask_row = (n * kept_per_row) as u32;
        let mut ids = vec![mask_row; n * len];
        for (k, &flat) in keep.iter().enumerate() {
            ids[flat as usize] = k as u32;
        }
        let mut x = table
            .embedding(&ids)?
            .reshape(&[n, len, dd])?
            .add(&self.decoder_pos)?;
        for block in &self.decoder_blocks {
            x = block.forward(&x)?;
        }
        let x = self.decoder_norm.forward(&x)?;
        Ok(x.narrow(1, buf, s)?.add(&self.diffusion_pos)?)
    }
}
