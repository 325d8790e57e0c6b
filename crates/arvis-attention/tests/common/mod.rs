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
