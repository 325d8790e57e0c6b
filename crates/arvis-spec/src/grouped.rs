//! Grouped speculative decoding (GSD; So et al., ICCV 2025, `junhyukso/GSD`): SJD's loop with
//! the acceptance ratio taken over a dynamic group of tokens around the draft. **Lossy.**
//!
//! For a draft `x` at a position with target `p` and draft distribution `q`:
//! 1. rank the vocabulary by `p` ascending (ties by index) and take the window of ranks
//!    `[rank(x) − G/2, rank(x) + G − G/2)` — the reference's `sort(...)[i−7 : i+7]` for
//!    `G = 14` — **clamped** to the vocabulary (the reference's negative slice start gives an
//!    empty group and a rejection; we intersect instead);
//! 2. keep `y` if `|p(y) − p(x)| < δ_p` and, when embeddings are given, `‖e_y − e_x‖² < d`
//!    (the reference uses the LLM input embeddings of the first 10000 ids and skips the filter
//!    above; here the table covers the whole vocabulary);
//! 3. accept with `min(1, Σ_G p / Σ_G q)`;
//! 4. on rejection draw from `norm((p − q)₊)` over the full vocabulary, as exact SD does.
//!
//! The accepted `x` is kept as is (not resampled within its group), so the output is not
//! distributed as `p`; the tests show the exactness test rejecting it.

use std::sync::Arc;

use crate::dist::DraftQ;
use crate::embedding::Embeddings;
use crate::residual::ratio_prob;

/// GSD's group rule. [`Default`] is the reference's: `G = 14`, `δ_p = 0.15`, `d = 0.5`, no
/// embeddings (set them with [`GroupedRule::with_embeddings`] to enable the distance filter).
#[derive(Clone, Debug)]
pub struct GroupedRule {
    /// Window of ranks `G` around the draft (the draft included).
    pub group: usize,
    /// Keep a token only if its target probability is within this of the draft's.
    pub p_threshold: f64,
    /// Keep a token only if its squared embedding distance to the draft is below this.
    pub dist_threshold: f64,
    /// The embedding table for the distance filter (`None` skips that filter).
    pub embeddings: Option<Arc<Embeddings>>,
}

impl Default for GroupedRule {
    fn default() -> Self {
        GroupedRule {
            group: 14,
            p_threshold: 0.15,
            dist_threshold: 0.5,
            embeddings: None,
        }
    }
}

impl GroupedRule {
    /// The same rule with the distance filter over `emb`.
    pub fn with_embeddings(mut self, emb: Arc<Embeddings>) -> Self {
        self.embeddings = Some(emb);
        self
    }

    /// The group of `x` under target `p`: token ids (including `x`), in no particular order.
    /// `O(V)` (two partial selections, no full sort).
    pub fn group_of(&self, p: &[f64], x: usize) -> Vec<usize> {
        let Some(&px) = p.get(x) else {
            return Vec::new();
        };
        let below_n = self.group / 2;
        let above_n = self.group.saturating_sub(below_n + 1);
        // Rank order: (p, index) ascending.
        let key_lt = |a: usize, b: usize| p[a] < p[b] || (p[a] == p[b] && a < b);
        let mut below: Vec<usize> = (0..p.len()).filter(|&y| key_lt(y, x)).collect();
        let mut above: Vec<usize> = (0..p.len()).filter(|&y| key_lt(x, y)).collect();
        let cmp = |a: &usize, b: &usize| p[*a].total_cmp(&p[*b]).then(a.cmp(b));
        if below.len() > below_n {
            let cut = below.len() - below_n;
            below.select_nth_unstable_by(cut, cmp);
            below.drain(..cut);
        }
        if above.len() > above_n {
            if above_n > 0 {
                above.select_nth_unstable_by(above_n - 1, cmp);
            }
            above.truncate(above_n);
        }
        let mut group = Vec::with_capacity(below.len() + above.len() + 1);
        group.push(x);
        group.extend(below);
        group.extend(above);
        group.retain(|&y| {
            (p[y] - px).abs() < self.p_threshold
                && self.embeddings.as_ref().is_none_or(|e| {
                    y >= e.vocab() || x >= e.vocab() || e.sq_dist(x, y) < self.dist_threshold
                })
        });
        // `x` always passes its own filters (|Δp| = 0, distance 0) unless a threshold is ≤ 0.
        if !group.contains(&x) {
            group.push(x);
        }
        group
    }

    /// `min(1, Σ_G p / Σ_G q)` for the draft `x`; falls back to the plain ratio if the group's
    /// draft mass is 0 (as the reference does when its group computation fails).
    pub fn accept_prob(&self, p: &[f64], q: &DraftQ, x: usize) -> f64 {
        let group = self.group_of(p, x);
        let sp: f64 = group.iter().map(|&y| p[y]).sum();
        let sq: f64 = group.iter().map(|&y| q.prob(y, x)).sum();
        if sq > 0.0 {
            ratio_prob(sp, sq)
        } else {
            ratio_prob(p.get(x).copied().unwrap_or(0.0), q.prob(x, x))
        }
    }
}
