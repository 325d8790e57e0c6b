//! The fused kernel against the naive f64 reference, on random inputs with odd sizes and every
//! mask.

mod common;

use arvis_attention::{AttentionMask, BlockCausalMask, sdpa, sdpa_reference};
use arvis_core::{Tensor, Tolerance};
use common::*;

const TOL: Tolerance = Tolerance::MATMUL;

/// Fused vs reference for one case, every mask.
fn check_case(
    b: usize,
    h: usize,
    lq: usize,
    lk: usize,
    d: usize,
    scale: f32,
    seed: u64,
) -> TestResult {
    let [q, k, v] = qkv(b, h, lq, lk, d, seed);
    for (name, mask) in masks_for(lk, seed) {
        let got = sdpa(&q, &k, &v, &mask, scale)?;
        let want = sdpa_reference(&q, &k, &v, &mask, scale)?;
        assert_eq!(got.shape(), &[b, h, lq, d]);
        assert_eq!(want.shape(), &[b, h, lq, d]);
        TOL.check(&got.to_vec(), &want.to_vec()).map_err(|e| {
            format!("B={b} H={h} Lq={lq} Lk={lk} D={d} scale={scale} mask {name}: {e}")
        })?;
    }
    Ok(())
}

#[test]
fn matches_reference_on_odd_sizes() -> TestResult {
    // (B, H, Lq, Lk, D)
    let cases: &[(usize, usize, usize, usize, usize)] = &[
        (1, 1, 1, 1, 1),
        (1, 1, 1, 1, 64),
        (1, 1, 1, 7, 1),
        (1, 1, 3, 3, 5),
        (2, 3, 1, 1, 128),
        (1, 1, 33, 33, 7),    // one micro-tile row past a query block
        (1, 1, 1, 300, 64),   // one query against many keys (decode step)
        (1, 1, 17, 129, 33),  // cache step, Lk one past a key tile, D not a lane multiple
        (3, 5, 9, 9, 64),     // many heads
        (2, 2, 70, 70, 128),  // several query blocks per head
        (1, 1, 200, 257, 64), // B·H = 1: parallel over query blocks only
        (2, 1, 40, 130, 96),  // Lk crosses the 128-key softmax step by 2
        (1, 2, 255, 256, 65),
    ];
    for (i, &(b, h, lq, lk, d)) in cases.iter().enumerate() {
        let scale = 1.0 / (d as f32).sqrt();
        check_case(b, h, lq, lk, d, scale, 100 + 10 * i as u64)?;
    }
    Ok(())
}

#[test]
fn large_scores_exercise_the_online_rescale() -> TestResult {
    // Scores of tens of units: the running maximum grows across key tiles and the
    // accumulator is rescaled many times; exp must neither overflow nor lose the peak.
    check_case(1, 2, 50, 300, 32, 3.0, 7)?;
    check_case(1, 1, 20, 260, 64, 0.0, 8)?; // scale 0: uniform weights
    // Increasing scores along the keys: a new maximum in every tile.
    let (lq, lk, d) = (4, 400, 1);
    let q = Tensor::full(&[1, 1, lq, d], 1.0);
    let k = Tensor::arange(lk).reshape(&[1, 1, lk, d])?.scale(0.2)?;
    let v = randn(&[1, 1, lk, d], 9);
    for mask in [AttentionMask::None, AttentionMask::Causal] {
        let got = sdpa(&q, &k, &v, &mask, 1.0)?;
        let want = sdpa_reference(&q, &k, &v, &mask, 1.0)?;
        TOL.check(&got.to_vec(), &want.to_vec())?;
    }
    Ok(())
}

#[test]
fn var_block_causal_full_forward() -> TestResult {
    let mask = AttentionMask::BlockCausal(BlockCausalMask::from_patch_nums(&VAR_PATCH_NUMS));
    let [q, k, v] = qkv(1, 2, 680, 680, 64, 42);
    let got = sdpa(&q, &k, &v, &mask, 0.125)?;
    let want = sdpa_reference(&q, &k, &v, &mask, 0.125)?;
    TOL.check(&got.to_vec(), &want.to_vec())?;
    Ok(())
}

#[test]
fn empty_shapes_give_empty_outputs() -> TestResult {
    let cases: &[([usize; 4], [usize; 4])] = &[
        ([0, 2, 3, 4], [0, 2, 5, 4]),
        ([1, 0, 3, 4], [1, 0, 5, 4]),
        ([1, 2, 0, 4], [1, 2, 5, 4]),
        ([1, 2, 0, 4], [1, 2, 0, 4]),
        ([1, 2, 3, 0], [1, 2, 5, 0]),
    ];
    for (qs, ks) in cases {
        let (q, k) = (randn(qs, 1), randn(ks, 2));
        for mask in [AttentionMask::None, AttentionMask::Causal] {
            let got = sdpa(&q, &k, &k, &mask, 1.0)?;
            assert_eq!(got.shape(), qs);
            let want = sdpa_reference(&q, &k, &k, &mask, 1.0)?;
            assert_eq!(want.shape(), qs);
        }
    }
    Ok(())
}

#[test]
fn zero_length_blocks_are_harmless() -> TestResult {
    let mask = AttentionMask::block_causal(&[0, 2, 0, 3]);
    let [q, k, v] = qkv(1, 1, 5, 5, 3, 5);
    let got = sdpa(&q, &k, &v, &mask, 0.5)?;
    assert!(got.to_vec().iter().all(|x| x.is_finite()));
    let want = sdpa_reference(&q, &k, &v, &mask, 0.5)?;
    TOL.check(&got.to_vec(), &want.to_vec())?;
    Ok(())
}
