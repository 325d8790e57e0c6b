//! The acceptance test and residual of exact speculative sampling, on one position.
//!
//! With target `p`, draft distribution `q` and draft `x ~ q`: accept with probability
//! `min(1, p(x)/q(x))`; on rejection draw from `norm((p − q)₊)`. The output is distributed as
//! `p` because `Σ (p − q)₊ = 1 − Σ min(p, q)`:
//! `P(out = y) = min(p(y), q(y)) + (1 − Σ min(p, q)) · (p − q)₊(y) / Σ (p − q)₊ = p(y)`.
//! The tests check this identity to `1e-12` on random and edge-case pairs.

use crate::dist::DraftQ;

/// `min(1, p(x)/q(x))`, the probability of accepting the draft `x` drawn from `q`.
///
/// `q(x) = 0` cannot happen for a draft truly drawn from `q`; it is answered with 1 if
/// `p(x) > 0` (the ratio is infinite) and 0 otherwise.
pub fn accept_prob(p: &[f64], q: &DraftQ, x: usize) -> f64 {
    let px = p.get(x).copied().unwrap_or(0.0);
    ratio_prob(px, q.prob(x, x))
}

/// `min(1, num/den)` with the conventions of [`accept_prob`] for a zero denominator.
pub fn ratio_prob(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        (num / den).min(1.0)
    } else if num > 0.0 {
        1.0
    } else {
        0.0
    }
}

/// The unnormalised residual `(p − q)₊` for a rejected draft `x` (`q` one-hot means `p`
/// without `x`).
///
/// If it has no mass (possible only when `p = q` up to rounding, where a rejection has
/// probability ~0), `p` itself is returned so the draw stays defined.
pub fn residual_weights(p: &[f64], q: &DraftQ, x: usize) -> Vec<f64> {
    let mut r: Vec<f64> = match q {
        DraftQ::OneHot => {
            let mut r = p.to_vec();
            if let Some(v) = r.get_mut(x) {
                *v = (*v - 1.0).max(0.0);
            }
            r
        }
        DraftQ::Dense(q) => p
            .iter()
            .enumerate()
            .map(|(i, &pi)| (pi - q.get(i).copied().unwrap_or(0.0)).max(0.0))
            .collect(),
    };
    let total: f64 = r.iter().sum();
    if total <= 0.0 || !total.is_finite() {
        r = p.to_vec();
    }
    r
}

/// `Σ min(p, q) = 1 − TV(p, q)`: the probability that a draft from `q` is accepted.
pub fn acceptance_rate(p: &[f64], q: &[f64]) -> f64 {
    p.iter().zip(q).map(|(&a, &b)| a.min(b)).sum()
}
