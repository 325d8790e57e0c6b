//! [`MultiScaleVq`]: VAR's multi-scale residual quantiser (official `VectorQuantizer2`,
//! inference paths only).

use arvis_core::{Tensor, WeightsScope};

use crate::config::VqVaeConfig;
use crate::error::{Result, TokenizerError};
use crate::params::{Backend, Init, Params};
use crate::phi::{Phi, PhiSet};

/// The codebook, the residual Phis and the scale schedule.
///
/// Every scale `si` with patch number `pn` contributes `phi_k(si)(up(E[idx_si]))` to the
/// latent `f_hat` `[B, Cvae, P, P]` (`P` = last patch number), where `up` is a bicubic resize
/// to `P×P` (`align_corners=False`), skipped at the last scale.
#[derive(Clone, Debug)]
pub struct MultiScaleVq {
    /// `[V, Cvae]`.
    embedding: Tensor,
    /// `Σ_c E[v, c]²` per code `[V]`, for the L2 nearest neighbour.
    embedding_sq: Tensor,
    /// `E` with rows L2-normalised, for the cosine nearest neighbour (`using_znorm`).
    embedding_unit: Option<Tensor>,
    phis: PhiSet,
    patch_nums: Vec<usize>,
}

impl MultiScaleVq {
    pub(crate) fn build(p: &Params<'_, '_>, cfg: &VqVaeConfig) -> Result<Self> {
        let (v, c) = (cfg.vocab_size, cfg.z_channels);
        let embedding = p
            .scope("embedding")
            .get("weight", &[v, c], Init::Embedding)?;
        let count = if cfg.default_qresi_counts > 0 {
            cfg.default_qresi_counts
        } else {
            cfg.patch_nums.len()
        };
        let phis = PhiSet::build(
            &p.scope("quant_resi"),
            c,
            cfg.quant_resi,
            cfg.share_quant_resi,
            count,
        )?;
        Self::assemble(embedding, phis, cfg.patch_nums.clone(), cfg.using_znorm)
    }

    fn assemble(
        embedding: Tensor,
        phis: PhiSet,
        patch_nums: Vec<usize>,
        using_znorm: bool,
    ) -> Result<Self> {
        let embedding_sq = row_sq_norms(&embedding)?;
        let embedding_unit = if using_znorm {
            Some(embedding.l2_normalize(1, 1e-12)?)
        } else {
            None
        };
        Ok(MultiScaleVq {
            embedding,
            embedding_sq,
            embedding_unit,
            phis,
            patch_nums,
        })
    }

    /// Loads the quantiser from `scope` (positioned at `vae.quantize`): `embedding.weight`
    /// `[V, Cvae]` and the Phis under `quant_resi`.
    pub fn load(scope: &WeightsScope<'_>, cfg: &VqVaeConfig) -> Result<Self> {
        cfg.validate()?;
        let backend = Backend::Weights(scope.clone());
        Self::build(&Params::new(&backend), cfg)
    }

    /// A quantiser with a given codebook `[V, C]`, a single list of Phis (indexed by the
    /// general rule, or [`crate::VAR_PHI_TABLE`] for 4 Phis and 10 scales) and patch numbers.
    /// Meant for tests and experiments; L2 nearest neighbour.
    pub fn from_parts(embedding: Tensor, phis: Vec<Phi>, patch_nums: Vec<usize>) -> Result<Self> {
        if embedding.rank() != 2 {
            return Err(TokenizerError::shape(
                "MultiScaleVq",
                "embedding [V, C]",
                embedding.shape(),
            ));
        }
        if patch_nums.is_empty() || phis.is_empty() {
            return Err(TokenizerError::Config(
                "MultiScaleVq needs at least one scale and one Phi".into(),
            ));
        }
        let phis = if phis.len() == 1 {
            PhiSet::Shared(Box::new(
                phis.into_iter().next().unwrap_or_else(Phi::identity),
            ))
        } else {
            PhiSet::PartiallyShared(phis)
        };
        Self::assemble(embedding, phis, patch_nums, false)
    }

    /// Token-map side per scale, small to large.
    pub fn patch_nums(&self) -> &[usize] {
        &self.patch_nums
    }

    /// Whether codes are chosen by cosine similarity (`using_znorm`) rather than L2 distance.
    pub fn using_znorm(&self) -> bool {
        self.embedding_unit.is_some()
    }

    /// Number of scales.
    pub fn num_scales(&self) -> usize {
        self.patch_nums.len()
    }

    /// Side `P` of `f_hat` (the last patch number).
    pub fn latent_size(&self) -> usize {
        self.patch_nums.last().copied().unwrap_or(0)
    }

    /// Codebook size `V`.
    pub fn vocab_size(&self) -> usize {
        self.embedding.shape()[0]
    }

    /// Latent channels `Cvae`.
    pub fn channels(&self) -> usize {
        self.embedding.shape()[1]
    }

    /// The codebook `[V, Cvae]`.
    pub fn embedding(&self) -> &Tensor {
        &self.embedding
    }

    /// Number of distinct Phis.
    pub fn num_phis(&self) -> usize {
        self.phis.len()
    }

    /// Which Phi scale `si` uses: [`crate::VAR_PHI_TABLE`] for 4 partially shared Phis over 10
    /// scales, [`crate::phi_index_rule`] otherwise (0 for a fully shared Phi). `si` must be a
    /// valid scale index.
    pub fn phi_index(&self, si: usize) -> usize {
        self.phis.index(si, self.num_scales())
    }

    /// The Phi applied at scale `si`.
    pub fn phi(&self, si: usize) -> Result<&Phi> {
        self.check_scale(si)?;
        Ok(self.phis.get(self.phi_index(si)))
    }

    fn check_scale(&self, si: usize) -> Result<()> {
        if si >= self.num_scales() {
            return Err(TokenizerError::ScaleIndex {
                si,
                num_scales: self.num_scales(),
            });
        }
        Ok(())
    }

    /// Checks that `idx` holds `batch·pn²` codes below `V`.
    fn check_indices(&self, idx: &[u32], batch: usize, pn: usize) -> Result<()> {
        let expected = batch * pn * pn;
        if idx.len() != expected {
            return Err(TokenizerError::IndexCount {
                pn,
                batch,
                expected,
                found: idx.len(),
            });
        }
        let v = self.vocab_size();
        if let Some((position, &index)) = idx.iter().enumerate().find(|(_, i)| **i as usize >= v) {
            return Err(TokenizerError::IndexOutOfRange {
                pn,
                position,
                index,
                vocab_size: v,
            });
        }
        Ok(())
    }

    /// Codebook lookup of a `B·pn·pn` row-major token map → `[B, Cvae, pn, pn]`.
    pub fn embed(&self, idx: &[u32], batch: usize, pn: usize) -> Result<Tensor> {
        self.check_indices(idx, batch, pn)?;
        let c = self.channels();
        Ok(self
            .embedding
            .embedding(idx)?
            .reshape(&[batch, pn, pn, c])?
            .permute(&[0, 3, 1, 2])?)
    }

    /// Checks `f_hat` is `[B, Cvae, P, P]` and returns `B`.
    fn check_fhat(&self, op: &'static str, f_hat: &Tensor) -> Result<usize> {
        let (c, p) = (self.channels(), self.latent_size());
        let s = f_hat.shape();
        if s.len() != 4 || s[1] != c || s[2] != p || s[3] != p {
            return Err(TokenizerError::shape(
                op,
                format!("f_hat [B, {c}, {p}, {p}]"),
                s,
            ));
        }
        Ok(s[0])
    }

    /// `phi_k(si)(up(h))`: scale `si`'s contribution to `f_hat` from its embedded token map
    /// `h` `[B, Cvae, pn, pn]` (bicubic to `P×P` except at the last scale).
    pub fn contribution(&self, si: usize, h: &Tensor) -> Result<Tensor> {
        self.check_scale(si)?;
        let (c, pn, p) = (self.channels(), self.patch_nums[si], self.latent_size());
        let s = h.shape();
        if s.len() != 4 || s[1] != c || s[2] != pn || s[3] != pn {
            return Err(TokenizerError::shape(
                "MultiScaleVq::contribution",
                format!("h [B, {c}, {pn}, {pn}] for scale {si}"),
                s,
            ));
        }
        let up = if si + 1 != self.num_scales() {
            h.resize_bicubic(p, p)?
        } else {
            h.clone()
        };
        self.phi(si)?.forward(&up)
    }

    /// VAR's inference update (official `get_next_autoregressive_input`): adds scale `si`'s
    /// contribution (from its embedded token map `h` `[B, Cvae, pn_si, pn_si]`) to `f_hat`
    /// `[B, Cvae, P, P]`, and returns the new `f_hat` with the next scale's input: the area
    /// downsample of the new `f_hat` to `pn_{si+1}`, or the new `f_hat` itself at the last scale.
    pub fn next_autoregressive_input(
        &self,
        si: usize,
        f_hat: &Tensor,
        h: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let b = self.check_fhat("next_autoregressive_input", f_hat)?;
        if h.shape().first() != Some(&b) {
            return Err(TokenizerError::shape(
                "next_autoregressive_input",
                format!("h with batch {b} (as f_hat)"),
                h.shape(),
            ));
        }
        let f_hat = f_hat.add(&self.contribution(si, h)?)?;
        if si + 1 != self.num_scales() {
            let pn = self.patch_nums[si + 1];
            let next = f_hat.resize_area(pn, pn)?;
            Ok((f_hat, next))
        } else {
            Ok((f_hat.clone(), f_hat))
        }
    }

    /// Sums every scale's contribution (official `embed_to_fhat(all_to_max_scale=True,
    /// last_one=True)` on the embedded `idx`): `[B, Cvae, P, P]`. `idx[si]` holds `B·pn²` codes.
    pub fn indices_to_fhat(&self, idx: &[Vec<u32>], batch: usize) -> Result<Tensor> {
        self.check_scale_count(idx.len())?;
        let (c, p) = (self.channels(), self.latent_size());
        let mut f_hat = self.embedding.new_zeros(&[batch, c, p, p])?;
        for (si, (ids, &pn)) in idx.iter().zip(&self.patch_nums).enumerate() {
            let h = self.embed(ids, batch, pn)?;
            f_hat = f_hat.add(&self.contribution(si, &h)?)?;
        }
        Ok(f_hat)
    }

    fn check_scale_count(&self, found: usize) -> Result<()> {
        if found != self.num_scales() {
            return Err(TokenizerError::ScaleCount {
                expected: self.num_scales(),
                found,
                patch_nums: self.patch_nums.clone(),
            });
        }
        Ok(())
    }

    /// Nearest code of each row of `z` `[N, Cvae]`: `argmin_v ‖z − E_v‖²`, computed like the
    /// official `(Σz² + ΣE²) − 2·z·Eᵀ` (first index on ties); with `using_znorm`, the largest
    /// cosine similarity.
    pub fn nearest(&self, z: &Tensor) -> Result<Vec<u32>> {
        let c = self.channels();
        let s = z.shape();
        if s.len() != 2 || s[1] != c {
            return Err(TokenizerError::shape(
                "MultiScaleVq::nearest",
                format!("z [N, {c}]"),
                s,
            ));
        }
        if let Some(unit) = &self.embedding_unit {
            let zn = z.l2_normalize(1, 1e-12)?;
            return Ok(zn.matmul_t(unit, false, true)?.argmax(-1)?);
        }
        l2_nearest(z, &self.embedding, &self.embedding_sq)
    }

    /// Residual quantisation of a latent `f` `[B, Cvae, P, P]` (official
    /// `f_to_idxBl_or_fhat`): for each scale, area-downsample the residual to `pn` (not at the
    /// last scale), take the nearest codes, subtract their contribution. Returns the codes per
    /// scale (`B·pn²`, row-major) and the final `f_hat`.
    pub fn quantize(&self, f: &Tensor) -> Result<(Vec<Vec<u32>>, Tensor)> {
        let b = self.check_fhat("MultiScaleVq::quantize", f)?;
        let c = self.channels();
        let last = self.num_scales() - 1;
        let mut f_rest = f.clone();
        let mut f_hat = f.new_zeros(f.shape())?;
        let mut out = Vec::with_capacity(self.num_scales());
        for (si, &pn) in self.patch_nums.iter().enumerate() {
            let z = if si != last {
                f_rest.resize_area(pn, pn)?
            } else {
                f_rest.clone()
            };
            let z = z.permute(&[0, 2, 3, 1])?.reshape(&[b * pn * pn, c])?;
            let idx = self.nearest(&z)?;
            let h = self.contribution(si, &self.embed(&idx, b, pn)?)?;
            f_hat = f_hat.add(&h)?;
            f_rest = f_rest.sub(&h)?;
            out.push(idx);
        }
        Ok((out, f_hat))
    }
}

/// `Σ_c E[v, c]²` per row of `E` `[V, C]` → `[V]`, through a GEMV `(E∘E)·1` (device-neutral).
pub(crate) fn row_sq_norms(embedding: &Tensor) -> Result<Tensor> {
    let s = embedding.shape();
    if s.len() != 2 {
        return Err(TokenizerError::shape("codebook", "[V, C]", s));
    }
    Ok(embedding
        .mul(embedding)?
        .matmul(&embedding.new_full(&[s[1], 1], 1.0)?)?
        .reshape(&[s[0]])?)
}

/// Nearest row of `embedding` `[V, C]` for each row of `z` `[N, C]`: `argmin_v ‖z − E_v‖²`
/// computed like the official `(Σz² + ΣE²) − 2·z·Eᵀ` (first index on ties); `embedding_sq` is
/// [`row_sq_norms`] of `embedding`.
pub(crate) fn l2_nearest(
    z: &Tensor,
    embedding: &Tensor,
    embedding_sq: &Tensor,
) -> Result<Vec<u32>> {
    let c = z.shape()[1];
    let zz = z.mul(z)?.matmul(&z.new_full(&[c, 1], 1.0)?)?; // [N, 1]
    let d0 = zz.add(embedding_sq)?; // [N, V]
    let dot = z.matmul_t(embedding, false, true)?; // [N, V]
    // argmin(d0 − 2·dot) == argmax(2·dot − d0): negation is exact, ties keep the first index.
    Ok(dot.scale(2.0)?.sub(&d0)?.argmax(-1)?)
}
