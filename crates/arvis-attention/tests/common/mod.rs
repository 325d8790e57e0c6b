//! Shared helpers for the attention tests.
#![allow(dead_code, missing_docs)]

use arvis_attention::{AttentionMask, BlockCausalMask};
use arvis_core::{SeededRng, Tensor};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// VAR's patch numbers (256×256 images): 10 scales, 680 positions.
pub const VAR_PATCH_NUMS: [usize; 10] = [1, 2, 3, 4, 5, 6, 8, 10, 13, 16];

pub fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, &mut SeededRng::new(seed))
}

/// Random `q, k, v` for `[b, h, lq|lk, d]`.
pub fn qkv(b: usize, h: usize, lq: usize, lk: usize, d: usize, seed: u64) -> [Tensor; 3] {
    [
        randn(&[b, h, lq, d], seed),
        randn(&[b, h, lk, d], seed + 1),
        randn(&[b, h, lk, d], seed + 2),
    ]
}

/// Random block lengths summing to `total`, zero-length blocks included.
pub fn random_blocks(total: usize, seed: u64) -> Vec<usize> {
    let mut rng = SeededRng::new(seed);
    let mut lens = Vec::new();
    let mut left = total;
    while left > 0 {
        let len = ((rng.uniform_f32() * 12.0) as usize).min(left);
        lens.push(len);
        left -= len;
    }
    lens
}

/// `None`, `Causal`, and two block-causal masks over `lk` positions (random blocks; one block
/// per position when `lk` is small, which equals causal).
pub fn masks_for(lk: usize, seed: u64) -> Vec<(&'static str, AttentionMask)> {
    vec![
        ("none", AttentionMask::None),
        ("causal", AttentionMask::Causal),
        (
            "block-random",
            AttentionMask::BlockCausal(BlockCausalMask::new(&random_blocks(lk, seed))),
        ),
        ("block-single", AttentionMask::block_causal(&[lk])),
    ]
}

/// Whether tests on `device` can run ([`arvis_core::gpu::ready_for_tests`]: a missing adapter
/// skips with a message, except under `CI=true`).
pub fn device_ready(device: arvis_core::Device) -> Result<bool, Box<dyn std::error::Error>> {
    Ok(arvis_core::gpu::ready_for_tests(device)?)
}

#[allow(unused_imports)]
pub(crate) use arvis_core::device_tests;

/// The largest divisor of `n` that is at most `√n` (1 for primes): a grid `h × (n / h)`.
pub fn grid_of(n: usize) -> (usize, usize) {
    let h = (1..=n.max(1))
        .take_while(|h| h * h <= n)
        .filter(|h| n.is_multiple_of(*h))
        .last()
        .unwrap_or(1);
    (h, n / h.max(1))
}

/// Every mask kind over `lk` positions: the prefix masks of [`masks_for`], skip-causal (both
/// layouts), NAR's neighbor mask (both diagonal rules), axial row/column (plain and causal) and
/// an explicit random mask with some empty rows.
pub fn all_masks(lk: usize, seed: u64) -> Vec<(&'static str, AttentionMask)> {
    use arvis_attention::{
        AxialMask, BlockCopy, Diagonal, ExplicitMask, NeighborMask, SkipCausalMask,
    };
    let mut m = masks_for(lk, seed);
    let half = random_blocks(lk / 2, seed + 1);
    let mut segs: Vec<(usize, BlockCopy, usize)> = half
        .iter()
        .enumerate()
        .flat_map(|(b, &l)| [(b, BlockCopy::Clean, l), (b, BlockCopy::Noisy, l)])
        .collect();
    segs.push((half.len(), BlockCopy::Noisy, lk % 2));
    m.push((
        "skip-interleaved",
        AttentionMask::SkipCausal(SkipCausalMask::from_segments(&segs)),
    ));
    let mut tn = SkipCausalMask::clean_then_noisy(&half);
    if lk % 2 == 1 {
        tn = SkipCausalMask::from_segments(&[(0, BlockCopy::Clean, lk)]);
    }
    m.push(("skip-clean-then-noisy", AttentionMask::SkipCausal(tn)));
    let w = 4.min(lk.max(1));
    let h = lk / w;
    let nb = NeighborMask::new(lk - h * w, h, w);
    m.push(("neighbor", AttentionMask::Neighbor(nb.clone())));
    m.push((
        "neighbor-self-only",
        AttentionMask::Neighbor(NeighborMask {
            diagonal: Diagonal::SelfOnly,
            ..nb
        }),
    ));
    let (gh, gw) = grid_of(lk);
    m.push(("axial-row", AttentionMask::Axial(AxialMask::row(gh, gw))));
    m.push((
        "axial-col-causal",
        AttentionMask::Axial(AxialMask::column(gh, gw).causal()),
    ));
    m.push(("axial-col", AttentionMask::Axial(AxialMask::column(gh, gw))));
    let mut rng = SeededRng::new(seed + 7);
    let bits: Vec<bool> = (0..lk * lk).map(|_| rng.uniform_f32() < 0.3).collect();
    m.push((
        "explicit",
        AttentionMask::Explicit(ExplicitMask::from_fn(lk, |q, k| {
            q % 3 != 1 && bits[q * lk + k]
        })),
    ));
    m
}
