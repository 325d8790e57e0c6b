//! Nearest-neighbour diversity: are the generated samples as spread out as real ones, and are
//! there near-copies of each other?
//!
//! Definitions (Euclidean distances between 128-d classifier features):
//! - the generated features are cut into consecutive groups of `K = min(M, R)` samples (`M`
//!   generated, `R` real reference rows; a partial last group is left out); within its group,
//!   each sample's **NN distance** is the distance to its nearest *other* sample of the group;
//! - `nn_generated` is the mean NN distance over all grouped generated samples, `nn_real` the
//!   same on the first `K` real reference features (one group). Distances between nearest
//!   neighbours shrink as the set grows, so both sides use the same `K`; the generated and the
//!   reference features are both class-interleaved (`i mod 10`), so every group is balanced;
//! - `ratio = nn_generated / nn_real`: about 1 when the model is as diverse as the data, well
//!   below 1 when it collapses onto a few modes;
//! - a sample is a **near-duplicate** when its NN distance is below
//!   [`NEAR_DUPLICATE_FACTOR`]` · nn_real`; `near_duplicate_fraction` is the share of grouped
//!   generated samples that are, `real_near_duplicate_fraction` the same on the reference
//!   (normally 0).

use arvis_core::Tensor;

use super::frechet::{arg_err, shape_err};
use crate::error::Result;

/// A sample whose nearest neighbour is closer than this fraction of the real mean NN distance
/// counts as a near-duplicate.
pub const NEAR_DUPLICATE_FACTOR: f64 = 0.25;

/// The nearest-neighbour diversity numbers (see the module docs for the definitions).
#[derive(Clone, Debug, PartialEq)]
pub struct Diversity {
    /// Group size `K = min(M, R)`.
    pub group_size: usize,
    /// Number of full groups of generated samples.
    pub groups: usize,
    /// Mean NN distance of the generated samples (within their groups).
    pub nn_generated: f64,
    /// Mean NN distance of `K` real reference samples.
    pub nn_real: f64,
    /// `nn_generated / nn_real`.
    pub ratio: f64,
    /// The near-duplicate distance threshold, `NEAR_DUPLICATE_FACTOR · nn_real`.
    pub duplicate_threshold: f64,
    /// Fraction of grouped generated samples whose NN distance is below the threshold.
    pub near_duplicate_fraction: f64,
    /// The same fraction on the `K` real samples.
    pub real_near_duplicate_fraction: f64,
}

/// Computes [`Diversity`] of `generated` `[M, D]` against `reference` `[R, D]` (`M, R ≥ 2`).
pub fn nn_diversity(generated: &Tensor, reference: &Tensor) -> Result<Diversity> {
    const OP: &str = "nn_diversity";
    let (gs, rs) = (generated.shape(), reference.shape());
    if gs.len() != 2 || rs.len() != 2 || gs[1] != rs[1] || gs[1] == 0 {
        return Err(shape_err(
            OP,
            "generated [M, D] and reference [R, D], D >= 1",
            gs,
        ));
    }
    let (m, r, d) = (gs[0], rs[0], gs[1]);
    if m < 2 || r < 2 {
        return Err(arg_err(
            OP,
            format!("needs at least 2 generated and 2 reference samples, got {m} and {r}"),
        ));
    }
    let k = m.min(r);
    let real = nn_distances(&reference.to_vec()[..k * d], d);
    let nn_real = mean(&real);
    if nn_real <= 0.0 {
        return Err(arg_err(OP, "the reference features are all identical"));
    }
    let threshold = NEAR_DUPLICATE_FACTOR * nn_real;
    let gen_data = generated.to_vec();
    let groups = m / k;
    let gen_nn: Vec<f64> = gen_data
        .chunks_exact(k * d)
        .take(groups)
        .flat_map(|g| nn_distances(g, d))
        .collect();
    let below = |v: &[f64]| v.iter().filter(|&&x| x < threshold).count() as f64 / v.len() as f64;
    let nn_generated = mean(&gen_nn);
    Ok(Diversity {
        group_size: k,
        groups,
        nn_generated,
        nn_real,
        ratio: nn_generated / nn_real,
        duplicate_threshold: threshold,
        near_duplicate_fraction: below(&gen_nn),
        real_near_duplicate_fraction: below(&real),
    })
}

/// For each row of `x` (`[n, d]` flat, a partial last row ignored), the Euclidean distance to
/// its nearest other row (`∞` for a single row; empty for `d = 0`).
pub fn nn_distances(x: &[f32], d: usize) -> Vec<f64> {
    if d == 0 {
        return Vec::new();
    }
    let n = x.len() / d;
    let mut best = vec![f64::INFINITY; n];
    for i in 0..n {
        let a = &x[i * d..(i + 1) * d];
        for j in i + 1..n {
            let b = &x[j * d..(j + 1) * d];
            let d2: f64 = a
                .iter()
                .zip(b)
                .map(|(&p, &q)| {
                    let t = f64::from(p) - f64::from(q);
                    t * t
                })
                .sum();
            best[i] = best[i].min(d2);
            best[j] = best[j].min(d2);
        }
    }
    best.into_iter().map(f64::sqrt).collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}
