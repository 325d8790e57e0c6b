//! Mask semantics against explicit enumeration, and through the kernel's output.

mod common;

use arvis_attention::{AttentionMask, BlockCausalMask, sdpa, sdpa_reference};
use arvis_core::{Tensor, Tolerance};
use common::*;

/// Block index of every position, written out the long way.
fn enumerate_blocks(lens: &[usize]) -> Vec<usize> {
    let mut ids = Vec::new();
    for (b, &len) in lens.iter().enumerate() {
        for _ in 0..len {
            ids.push(b);
        }
    }
    ids
}

#[test]
fn block_causal_matches_enumeration() -> TestResult {
    let mut cases: Vec<Vec<usize>> = vec![
        VAR_PATCH_NUMS.iter().map(|p| p * p).collect(),
        vec![1],
        vec![3],
        vec![1, 1, 1, 1],
        vec![0, 2, 0, 0, 3, 1, 0],
    ];
    cases.extend((0..5).map(|s| random_blocks(40 + s as usize, s)));
    for lens in cases {
        let ids = enumerate_blocks(&lens);
        let n = ids.len();
        let mask = AttentionMask::block_causal(&lens);
        let AttentionMask::BlockCausal(bc) = &mask else {
            unreachable!()
        };
        assert_eq!(bc.total_len(), n);
        assert_eq!(bc.block_lens(), &lens[..]);
        for i in 0..n {
            assert_eq!(bc.block_of(i), Some(ids[i]), "{lens:?} pos {i}");
            let mut count = 0;
            for j in 0..n {
                let want = ids[j] <= ids[i];
                assert_eq!(mask.allows(i, j), want, "{lens:?}: q {i}, k {j}");
                count += usize::from(want);
                // The visible keys are a prefix.
                assert_eq!(
                    want,
                    j < mask.visible_prefix(i, n),
                    "{lens:?}: q {i}, k {j}"
                );
            }
            assert_eq!(mask.visible_prefix(i, n), count);
        }
        assert_eq!(bc.block_of(n), None);
        assert!(!mask.allows(n, 0));
    }
    Ok(())
}

#[test]
fn var_mask_has_680_positions_and_prefixes() {
    let m = BlockCausalMask::from_patch_nums(&VAR_PATCH_NUMS);
    assert_eq!(m.total_len(), 680);
    assert_eq!(m.num_blocks(), 10);
    assert_eq!(m.block_end(0), Some(1));
    assert_eq!(m.block_end(1), Some(5));
    assert_eq!(m.block_end(679), Some(680));
    assert_eq!(m.block_of(424), Some(9)); // 1+4+9+16+25+36+64+100+169 = 424: the last scale
    assert_eq!(m.block_of(423), Some(8));
    assert_eq!(m.prefix(3).total_len(), 14);
    assert_eq!(m.prefix(99), m);
    assert_eq!(BlockCausalMask::new(&[]).total_len(), 0);
}

#[test]
fn causal_and_none_rules() {
    let (c, n) = (AttentionMask::Causal, AttentionMask::None);
    for i in 0..10 {
        for j in 0..10 {
            assert_eq!(c.allows(i, j), j <= i);
            assert!(n.allows(i, j));
        }
        assert_eq!(c.visible_prefix(i, 10), i + 1);
        assert_eq!(c.visible_prefix(i, 3), 3.min(i + 1));
        assert_eq!(n.visible_prefix(i, 10), 10);
    }
    assert_eq!(AttentionMask::default(), AttentionMask::None);
}

/// Whether query position `i` sees key `j`, given the block ids.
type Rule = fn(&[usize], usize, usize) -> bool;

/// With `q = 0` every visible key gets the same weight and `v = I` reads the weights back:
/// output row `i` is `1/count` on exactly the keys query `i` may see. Checked for the fused
/// kernel and the reference, full forwards and cache steps (queries are the last `Lq`).
#[test]
fn outputs_attend_exactly_the_visible_keys() -> TestResult {
    let lk = 30;
    let lens = random_blocks(lk, 3);
    let ids = enumerate_blocks(&lens);
    let eye: Vec<f32> = (0..lk * lk)
        .map(|x| if x / lk == x % lk { 1.0 } else { 0.0 })
        .collect();
    let v = Tensor::from_vec(eye, &[1, 1, lk, lk])?;
    let k = randn(&[1, 1, lk, lk], 4);
    let masks: [(AttentionMask, Rule); 3] = [
        (AttentionMask::None, |_, _, _| true),
        (AttentionMask::Causal, |_, i, j| j <= i),
        (AttentionMask::block_causal(&lens), |ids, i, j| {
            ids[j] <= ids[i]
        }),
    ];
    for lq in [lk, 7, 1] {
        let q = Tensor::zeros(&[1, 1, lq, lk]);
        for (mask, rule) in &masks {
            for out in [
                sdpa(&q, &k, &v, mask, 1.0)?,
                sdpa_reference(&q, &k, &v, mask, 1.0)?,
            ] {
                let out = out.to_vec();
                for r in 0..lq {
                    let pos = lk - lq + r;
                    let count = (0..lk).filter(|&j| rule(&ids, pos, j)).count();
                    let want: Vec<f32> = (0..lk)
                        .map(|j| {
                            if rule(&ids, pos, j) {
                                1.0 / count as f32
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    Tolerance::MATMUL
                        .check(&out[r * lk..][..lk], &want)
                        .map_err(|e| format!("{mask:?} Lq={lq} row {r}: {e}"))?;
                }
            }
        }
    }
    Ok(())
}
