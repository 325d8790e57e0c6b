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

/// ACDiT's rule written out from (block, noisy) per position.
fn skip_rule(pos: &[(usize, bool)], q: usize, k: usize) -> bool {
    let ((bq, nq), (bk, nk)) = (pos[q], pos[k]);
    if nq {
        (!nk && bk < bq) || (nk && bk == bq)
    } else {
        !nk && bk <= bq
    }
}

#[test]
fn skip_causal_matches_its_definition() {
    use arvis_attention::{BlockCopy, SkipCausalMask};
    let lens = [2, 1, 3];
    for (layout, mask) in [
        ("clean-then-noisy", SkipCausalMask::clean_then_noisy(&lens)),
        ("interleaved", SkipCausalMask::interleaved(&lens)),
    ] {
        let mut pos = Vec::new();
        let order: Vec<(usize, bool)> = if layout == "interleaved" {
            (0..3).flat_map(|b| [(b, false), (b, true)]).collect()
        } else {
            (0..3)
                .map(|b| (b, false))
                .chain((0..3).map(|b| (b, true)))
                .collect()
        };
        for (b, noisy) in order {
            pos.extend(std::iter::repeat_n((b, noisy), lens[b]));
        }
        assert_eq!(mask.len(), 12);
        let am = AttentionMask::SkipCausal(mask.clone());
        for q in 0..12 {
            let want_pos = (
                pos[q].0,
                if pos[q].1 {
                    BlockCopy::Noisy
                } else {
                    BlockCopy::Clean
                },
            );
            assert_eq!(mask.position(q), Some(want_pos));
            for k in 0..12 {
                assert_eq!(
                    am.allows(q, k),
                    skip_rule(&pos, q, k),
                    "{layout} q {q} k {k}"
                );
            }
            assert!(!am.allows(q, 12) && !am.allows(12, q));
        }
    }
    // Noisy block i sees clean blocks < i and itself, never its own clean copy.
    let m = AttentionMask::SkipCausal(SkipCausalMask::interleaved(&[1, 1]));
    // Positions: c0 = 0, n0 = 1, c1 = 2, n1 = 3.
    let sees = |q: usize| (0..4).filter(|&k| m.allows(q, k)).collect::<Vec<_>>();
    assert_eq!(sees(0), [0]);
    assert_eq!(sees(1), [1]);
    assert_eq!(sees(2), [0, 2]);
    assert_eq!(sees(3), [0, 3]);
}

/// NAR's `setup_proximity_mask` with `cls_token_num` condition tokens, translated line by line:
/// a lower-triangular mask whose grid×grid block is replaced by "diagonals so far".
fn nar_proximity(prefix: usize, h: usize, w: usize) -> Vec<bool> {
    let n = prefix + h * w;
    let mut m: Vec<bool> = (0..n * n).map(|i| i % n <= i / n).collect();
    for q in prefix..n {
        for k in prefix..n {
            m[q * n + k] = false;
        }
    }
    let mut previous = Vec::new();
    for c in 0..h + w - 1 {
        let mut cur = Vec::new();
        for r in 0..h {
            if c >= r && c - r < w {
                let id = r * w + (c - r);
                cur.push(id);
                previous.push(id);
            }
        }
        for &id in &cur {
            for &p in &previous {
                m[(prefix + id) * n + prefix + p] = true;
            }
        }
    }
    m
}

#[test]
fn neighbor_mask_matches_the_nar_code() {
    use arvis_attention::{Diagonal, NeighborMask};
    for (prefix, h, w) in [(1, 4, 4), (0, 3, 5), (2, 5, 2), (1, 1, 1)] {
        let want = nar_proximity(prefix, h, w);
        let nb = NeighborMask::new(prefix, h, w);
        let n = nb.len();
        let m = AttentionMask::Neighbor(nb.clone());
        let strict = AttentionMask::Neighbor(NeighborMask {
            diagonal: Diagonal::SelfOnly,
            ..nb.clone()
        });
        for q in 0..n {
            for k in 0..n {
                assert_eq!(
                    m.allows(q, k),
                    want[q * n + k],
                    "{prefix},{h},{w}: q {q} k {k}"
                );
                // SelfOnly: strictly earlier diagonals (and condition tokens) plus itself.
                let (gq, gk) = (nb.group(q).expect("covered"), nb.group(k).expect("covered"));
                assert_eq!(strict.allows(q, k), gk < gq || k == q);
                if strict.allows(q, k) {
                    assert!(m.allows(q, k));
                }
            }
        }
    }
}

#[test]
fn axial_masks_see_their_line() {
    use arvis_attention::AxialMask;
    let (h, w) = (3, 5);
    for causal in [false, true] {
        let mut row = AxialMask::row(h, w);
        let mut col = AxialMask::column(h, w);
        if causal {
            row = row.causal();
            col = col.causal();
        }
        let (row, col) = (AttentionMask::Axial(row), AttentionMask::Axial(col));
        for q in 0..h * w {
            for k in 0..h * w {
                let (qr, qc, kr, kc) = (q / w, q % w, k / w, k % w);
                assert_eq!(row.allows(q, k), qr == kr && (!causal || kc <= qc));
                assert_eq!(col.allows(q, k), qc == kc && (!causal || kr <= qr));
            }
        }
    }
}

#[test]
fn key_ranges_are_exact_for_every_mask() {
    for lk in [1, 6, 23] {
        for (name, mask) in all_masks(lk, 5) {
            for q in 0..lk {
                let r = mask.key_range(q, lk);
                let visible: Vec<usize> = (0..lk).filter(|&k| mask.allows(q, k)).collect();
                match (visible.first(), visible.last()) {
                    (Some(&lo), Some(&hi)) => assert_eq!(r, lo..hi + 1, "{name} q {q}"),
                    _ => assert!(r.is_empty(), "{name} q {q}"),
                }
                assert!(mask.visible_prefix(q, lk) >= r.end);
                if mask.is_prefix() {
                    assert_eq!(visible.len(), mask.visible_prefix(q, lk), "{name}");
                }
            }
        }
    }
}

#[test]
fn fixed_extent_masks_must_cover_the_keys() -> TestResult {
    use arvis_attention::{AttentionError, AxialMask};
    let [q, k, v] = qkv(1, 1, 2, 6, 4, 1);
    let mask = AttentionMask::Axial(AxialMask::row(2, 2));
    let err = sdpa(&q, &k, &v, &mask, 1.0).expect_err("4 positions for 6 keys");
    assert!(
        matches!(
            err,
            AttentionError::MaskLength {
                covered: 4,
                lk: 6,
                ..
            }
        ),
        "{err}"
    );
    Ok(())
}

/// With `q = 0` every visible key gets the same weight and `v = I` reads the weights back, for
/// every mask kind, on each device.
fn irregular_outputs_case(device: arvis_core::Device) -> TestResult {
    let lk = 12;
    let eye: Vec<f32> = (0..lk * lk)
        .map(|x| if x / lk == x % lk { 1.0 } else { 0.0 })
        .collect();
    let v = Tensor::from_vec(eye, &[1, 1, lk, lk])?.to_device(device)?;
    let k = randn(&[1, 1, lk, lk], 4).to_device(device)?;
    for lq in [lk, 5, 1] {
        let q = Tensor::zeros(&[1, 1, lq, lk]).to_device(device)?;
        for (name, mask) in all_masks(lk, 9) {
            let out = sdpa(&q, &k, &v, &mask, 1.0)?.try_to_vec()?;
            for r in 0..lq {
                let pos = lk - lq + r;
                let count = (0..lk).filter(|&j| mask.allows(pos, j)).count();
                let want: Vec<f32> = (0..lk)
                    .map(|j| {
                        if mask.allows(pos, j) {
                            1.0 / count as f32
                        } else {
                            0.0
                        }
                    })
                    .collect();
                Tolerance::MATMUL
                    .check(&out[r * lk..][..lk], &want)
                    .map_err(|e| format!("{device:?} {name} Lq={lq} row {r}: {e}"))?;
            }
        }
    }
    Ok(())
}

device_tests! {
    every_mask_attends_exactly_its_visible_keys: irregular_outputs_case;
}
