//! [`NormalizedCodebook`]: LlamaGen's single-scale quantiser (official `VectorQuantizer`,
//! inference paths only).

use arvis_core::Tensor;

use crate::error::{Result, TokenizerError};
use crate::llamagen::config::{L2_NORM_EPS, LlamaGenVqConfig};
use crate::params::{Init, Params};
use crate::quant::{l2_nearest, row_sq_norms};

/// The codebook `[V, D]`, L2-normalised (when the config says so, as in every release) once at
/// load — the official code normalises it at every look-up, with the same result.
#[derive(Clone, Debug)]
pub struct NormalizedCodebook {
    /// The look-up table: `F.normalize(E, dim=-1)` or `E`.
    table: Tensor,
    /// `Σ_d table[v, d]²` `[V]`.
    table_sq: Tensor,
    l2_norm: bool,
}

impl NormalizedCodebook {
    pub(crate) fn build(p: &Params<'_, '_>, cfg: &LlamaGenVqConfig) -> Result<Self> {
        let raw = p.scope("embedding").get(
            "weight",
            &[cfg.codebook_size, cfg.codebook_embed_dim],
            Init::Embedding,
        )?;
        Self::from_embedding(raw, cfg.codebook_l2_norm)
    }

    /// A codebook from the raw `embedding.weight` `[V, D]`.
    pub fn from_embedding(embedding: Tensor, l2_norm: bool) -> Result<Self> {
        let table = if l2_norm {
            embedding.l2_normalize(1, L2_NORM_EPS)?
        } else {
            embedding
        };
        Ok(NormalizedCodebook {
            table_sq: row_sq_norms(&table)?,
            table,
            l2_norm,
        })
    }

    /// Codebook size `V`.
    pub fn size(&self) -> usize {
        self.table.shape()[0]
    }

    /// Code dimension `D`.
    pub fn dim(&self) -> usize {
        self.table.shape()[1]
    }

    /// The (normalised) look-up table `[V, D]`.
    pub fn table(&self) -> &Tensor {
        &self.table
    }

    /// Nearest code of each row of `z` `[N, D]`: `z` is L2-normalised first (with `l2_norm`),
    /// then `argmin_v (Σz² + ΣE_v²) − 2·z·E_v` as the official code computes it (first index
    /// on ties).
    pub fn nearest(&self, z: &Tensor) -> Result<Vec<u32>> {
        let d = self.dim();
        let s = z.shape();
        if s.len() != 2 || s[1] != d {
            return Err(TokenizerError::shape(
                "NormalizedCodebook::nearest",
                format!("z [N, {d}]"),
                s,
            ));
        }
        if self.l2_norm {
            l2_nearest(
                &z.l2_normalize(1, L2_NORM_EPS)?,
                &self.table,
                &self.table_sq,
            )
        } else {
            l2_nearest(z, &self.table, &self.table_sq)
        }
    }

    /// The latent `[B, D, h, w]` of raster codes `indices` (`B·h·w`, row-major over
    /// `(b, y, x)`; official `get_codebook_entry(indices, (b, D, h, w), channel_first=True)`).
    pub fn embed(&self, indices: &[u32], b: usize, h: usize, w: usize) -> Result<Tensor> {
        if indices.len() != b * h * w {
            return Err(TokenizerError::IndexCount {
                pn: h.max(w),
                batch: b,
                expected: b * h * w,
                found: indices.len(),
            });
        }
        if let Some((position, &index)) = indices
            .iter()
            .enumerate()
            .find(|&(_, &i)| i as usize >= self.size())
        {
            return Err(TokenizerError::IndexOutOfRange {
                pn: h.max(w),
                position,
                index,
                vocab_size: self.size(),
            });
        }
        Ok(self
            .table
            .embedding(indices)?
            .reshape(&[b, h, w, self.dim()])?
            .permute(&[0, 3, 1, 2])?)
    }
}
