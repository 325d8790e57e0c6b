//! LANTERN-style relaxed acceptance (Jang et al., ICLR 2025, `jadohu/LANTERN`). **Lossy.**
//!
//! For a draft `x` with target `p` and draft distribution `q`, with `N(x)` the codebook
//! neighbours of `x` nearest first ([`NeighbourTable`]):
//! - `c_j = Σ_{m ≤ j} p(N(x)_m)` over the first `k` neighbours; `A(x)` is the longest prefix
//!   with `c_j ≤ δ`;
//! - `p̃(x) = p(x) + c_{|A|}` (the mass of `x` and its latent neighbourhood);
//! - accept with `min(1, p̃(x)/q(x))`;
//! - on rejection, if the neighbourhood was non-empty, `q'` is `q` with the first `k + 1`
//!   neighbours of `x` zeroed (not `x` itself, not renormalised), as the reference's
//!   `evaluate_posterior` does, and the token is drawn from `norm((p − q')₊)`; otherwise from
//!   `norm((p − q)₊)`.
//!
//! The reference's relative threshold (`δ > 1` meaning `c_j ≤ (δ − 1)·p(x)`, LANTERN++'s λ) is
//! not implemented. `TV(p, p̃) ≤ δ` bounds the bias per position against the relaxed target;
//! the output is not distributed as `p`, and the tests show the exactness test rejecting it.

use std::sync::Arc;

use crate::dist::DraftQ;
use crate::embedding::NeighbourTable;
use crate::residual::{ratio_prob, residual_weights};

/// LANTERN's relaxation: `k` neighbours, total added mass at most `delta`.
#[derive(Clone, Debug)]
pub struct LanternRule {
    /// Neighbours considered, `k` (reference default 1000; clamped to the table width).
    pub k: usize,
    /// Largest neighbourhood mass added to `p(x)`, `δ` (reference default 0.1).
    pub delta: f64,
    /// The codebook neighbour table.
    pub neighbours: Arc<NeighbourTable>,
}

impl LanternRule {
    /// The reference defaults `k = 1000`, `δ = 0.1` over `neighbours`.
    pub fn new(neighbours: Arc<NeighbourTable>) -> Self {
        LanternRule {
            k: 1000,
            delta: 0.1,
            neighbours,
        }
    }

    /// `(p̃(x), |A(x)|)`: the relaxed probability of `x` and the size of its neighbourhood.
    pub fn relaxed_prob(&self, p: &[f64], x: usize) -> (f64, usize) {
        let px = p.get(x).copied().unwrap_or(0.0);
        let mut cum = 0.0;
        let mut added = 0.0;
        let mut size = 0;
        for (j, &y) in self.neighbours.of(x).iter().take(self.k).enumerate() {
            cum += p.get(y as usize).copied().unwrap_or(0.0);
            if cum <= self.delta {
                added = cum;
                size = j + 1;
            } else {
                break;
            }
        }
        (px + added, size)
    }

    /// `min(1, p̃(x)/q(x))`.
    pub fn accept_prob(&self, p: &[f64], q: &DraftQ, x: usize) -> f64 {
        ratio_prob(self.relaxed_prob(p, x).0, q.prob(x, x))
    }

    /// The unnormalised residual after rejecting `x` (see the module docs).
    pub fn residual(&self, p: &[f64], q: &DraftQ, x: usize) -> Vec<f64> {
        let (_, size) = self.relaxed_prob(p, x);
        match q {
            DraftQ::Dense(qv) if size > 0 => {
                let mut q2 = qv.clone();
                for &y in self.neighbours.of(x).iter().take(self.k + 1) {
                    if let Some(v) = q2.get_mut(y as usize) {
                        *v = 0.0;
                    }
                }
                residual_weights(p, &DraftQ::Dense(q2), x)
            }
            // A one-hot q has no mass on the neighbours: zeroing them changes nothing.
            _ => residual_weights(p, q, x),
        }
    }
}
