//! The quantiser's residual convs `phi` and which one each scale uses (official `Phi`,
//! `PhiShared`, `PhiPartiallyShared`, `PhiNonShared` in `models/quant.py`).

use arvis_core::Tensor;

use crate::blocks::Conv2d;
use crate::error::Result;
use crate::params::Params;

/// The shared-Phi table of the released VAR tokenizer: 10 scales, 4 Phis.
///
/// Scales 2 and 7 are exact ties in real arithmetic (`|1/12 − 2/9| = |13/36 − 2/9|`); numpy's
/// float64 rounding breaks them towards the *upper* Phi. [`phi_index_rule`] reproduces that
/// rounding (and so this table) bit for bit, but the table is hard-coded so that the released
/// model never depends on it.
pub const VAR_PHI_TABLE: [usize; 10] = [0, 0, 1, 1, 1, 2, 2, 3, 3, 3];

/// The ticks of `K` Phis on `[0, 1]`: `np.linspace(1/3/K, 1 − 1/3/K, K)` when `K == 4`, else
/// `np.linspace(1/2/K, 1 − 1/2/K, K)`, computed with numpy's float64 operations (`i·step + start`,
/// last tick set to `stop` exactly).
pub fn phi_ticks(k: usize) -> Vec<f64> {
    if k == 0 {
        return Vec::new();
    }
    let kf = k as f64;
    let (start, stop) = if k == 4 {
        (1.0 / 3.0 / kf, 1.0 - 1.0 / 3.0 / kf)
    } else {
        (1.0 / 2.0 / kf, 1.0 - 1.0 / 2.0 / kf)
    };
    if k == 1 {
        return vec![start];
    }
    let step = (stop - start) / (kf - 1.0);
    let mut ticks: Vec<f64> = (0..k).map(|i| i as f64 * step + start).collect();
    ticks[k - 1] = stop;
    ticks
}

/// The general rule of the official code: scale `si` of `num_scales` uses Phi
/// `argmin_k |ticks[k] − si/(num_scales − 1)|` (first index on exact float ties), in float64 as
/// numpy computes it. With a single scale the official code divides by zero; we use position 0.
/// Returns 0 when `num_phis` is 0 or 1.
pub fn phi_index_rule(si: usize, num_scales: usize, num_phis: usize) -> usize {
    let ticks = phi_ticks(num_phis);
    let at = if num_scales > 1 {
        si as f64 / (num_scales - 1) as f64
    } else {
        0.0
    };
    let mut best = 0;
    let mut best_d = f64::INFINITY;
    for (k, t) in ticks.iter().enumerate() {
        let d = (t - at).abs();
        if d < best_d {
            best = k;
            best_d = d;
        }
    }
    best
}

/// One `phi(h) = (1 − r)·h + r·conv3×3(h)` with `r = |quant_resi|`, or the identity when
/// `|quant_resi| ≤ 1e-6` (then the checkpoint has no weights for it).
#[derive(Clone, Debug)]
pub struct Phi {
    conv: Option<Conv2d>,
    ratio: f32,
}

impl Phi {
    pub(crate) fn build(p: &Params<'_, '_>, c: usize, quant_resi: f64) -> Result<Self> {
        if quant_resi.abs() <= 1e-6 {
            return Ok(Phi::identity());
        }
        Ok(Phi {
            conv: Some(Conv2d::build_same(p, c, c, 3)?),
            ratio: quant_resi.abs() as f32,
        })
    }

    /// The identity Phi.
    pub fn identity() -> Self {
        Phi {
            conv: None,
            ratio: 0.0,
        }
    }

    /// A Phi from its conv (`[C, C, 3, 3]`, padding 1) and ratio `r`.
    pub fn new(conv: Conv2d, ratio: f32) -> Self {
        Phi {
            conv: Some(conv),
            ratio: ratio.abs(),
        }
    }

    /// `h·(1 − r) + conv(h)·r`, each product rounded to f32 before the sum as in PyTorch.
    pub fn forward(&self, h: &Tensor) -> Result<Tensor> {
        match &self.conv {
            None => Ok(h.clone()),
            Some(conv) => {
                let c = conv.forward(h)?.scale(self.ratio)?;
                Ok(h.scale(1.0 - self.ratio)?.add(&c)?)
            }
        }
    }
}

/// How the Phis are stored and shared (`share_quant_resi`).
#[derive(Clone, Debug)]
pub(crate) enum PhiSet {
    /// `quant_resi.{k}` — one per scale (or `default_qresi_counts`), chosen by tick.
    NonShared(Vec<Phi>),
    /// `quant_resi.qresi` — a single Phi for every scale.
    Shared(Box<Phi>),
    /// `quant_resi.qresi_ls.{k}` — `K` Phis chosen by tick.
    PartiallyShared(Vec<Phi>),
}

impl PhiSet {
    pub(crate) fn build(
        p: &Params<'_, '_>,
        c: usize,
        quant_resi: f64,
        share: usize,
        count: usize,
    ) -> Result<Self> {
        Ok(match share {
            0 => PhiSet::NonShared(
                (0..count)
                    .map(|k| Phi::build(&p.scope(k), c, quant_resi))
                    .collect::<Result<_>>()?,
            ),
            1 => PhiSet::Shared(Box::new(Phi::build(&p.scope("qresi"), c, quant_resi)?)),
            k => PhiSet::PartiallyShared(
                (0..k)
                    .map(|i| Phi::build(&p.scope(format!("qresi_ls.{i}")), c, quant_resi))
                    .collect::<Result<_>>()?,
            ),
        })
    }

    /// Number of Phis (1 for the shared variant).
    pub(crate) fn len(&self) -> usize {
        match self {
            PhiSet::NonShared(v) | PhiSet::PartiallyShared(v) => v.len(),
            PhiSet::Shared(_) => 1,
        }
    }

    /// Which Phi scale `si` of `num_scales` uses.
    pub(crate) fn index(&self, si: usize, num_scales: usize) -> usize {
        match self {
            PhiSet::Shared(_) => 0,
            PhiSet::PartiallyShared(v)
                if v.len() == 4 && num_scales == VAR_PHI_TABLE.len() && si < num_scales =>
            {
                VAR_PHI_TABLE[si]
            }
            PhiSet::NonShared(v) | PhiSet::PartiallyShared(v) => {
                phi_index_rule(si, num_scales, v.len())
            }
        }
    }

    /// Phi `k`, clamped to the last one (callers pass indices from [`PhiSet::index`]).
    pub(crate) fn get(&self, k: usize) -> &Phi {
        match self {
            PhiSet::Shared(phi) => phi,
            PhiSet::NonShared(v) | PhiSet::PartiallyShared(v) => &v[k.min(v.len() - 1)],
        }
    }
}
