//! The multi-scale quantiser: the Phi index rule, Phi itself, and the encode / decode chains
//! against an explicit f64 re-implementation of the official `VectorQuantizer2` paths.

mod common;

use arvis_core::ops::Conv2dParams;
use arvis_core::{Tensor, Tolerance};
use arvis_tokenizer::blocks::Conv2d;
use arvis_tokenizer::{
    MultiScaleVq, Phi, TokenizerError, VAR_PHI_TABLE, phi_index_rule, phi_ticks,
};
use common::*;

const VAR_PNS: [usize; 10] = [1, 2, 3, 4, 5, 6, 8, 10, 13, 16];

#[test]
fn general_rule_reproduces_the_var_table() {
    let rule: Vec<usize> = (0..10).map(|si| phi_index_rule(si, 10, 4)).collect();
    assert_eq!(rule, VAR_PHI_TABLE);
}

/// numpy's `argmin(|linspace(..) − si/(SN−1)|)` for other counts, recorded with numpy 2 (see
/// the generator comment in the crate README's "Phi sharing" section).
#[test]
fn general_rule_matches_numpy_for_other_counts() {
    let cases: &[(usize, usize, &[usize])] = &[
        (10, 10, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        (10, 1, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        (10, 2, &[0, 0, 0, 0, 0, 1, 1, 1, 1, 1]),
        (10, 3, &[0, 0, 0, 0, 1, 1, 1, 2, 2, 2]),
        (10, 5, &[0, 0, 1, 1, 2, 2, 3, 3, 4, 4]),
        (10, 6, &[0, 0, 1, 1, 2, 3, 3, 4, 5, 5]),
        (4, 4, &[0, 1, 2, 3]),
        (6, 3, &[0, 0, 1, 1, 2, 2]),
        (13, 4, &[0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3]),
        (16, 5, &[0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]),
        (7, 4, &[0, 0, 1, 2, 2, 3, 3]),
        (5, 2, &[0, 0, 0, 1, 1]),
        (12, 4, &[0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]),
        (2, 4, &[0, 3]),
    ];
    for &(sn, k, want) in cases {
        let got: Vec<usize> = (0..sn).map(|si| phi_index_rule(si, sn, k)).collect();
        assert_eq!(got, want, "SN={sn} K={k}");
    }
}

/// The documented exception: in exact arithmetic scales 2 and 7 of the 10/4 table are ties
/// (first index would win: 0 and 2); only float64 rounding gives the official 1 and 3.
#[test]
fn var_table_has_two_exact_ties() {
    // ticks = 1/12 + k·5/18 → in 36ths: 3, 13, 23, 33; si/9 → 4·si 36ths.
    let ticks36 = [3i64, 13, 23, 33];
    let mut ties = Vec::new();
    let mut exact = Vec::new();
    for si in 0..10i64 {
        let d: Vec<i64> = ticks36.iter().map(|t| (t - 4 * si).abs()).collect();
        let m = *d.iter().min().unwrap_or(&0);
        exact.push(d.iter().position(|&v| v == m).unwrap_or(0));
        if d.iter().filter(|&&v| v == m).count() > 1 {
            ties.push(si as usize);
        }
    }
    assert_eq!(ties, [2, 7]);
    assert_eq!(exact, [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]);
    for si in 0..10 {
        if !ties.contains(&si) {
            assert_eq!(exact[si], VAR_PHI_TABLE[si]);
        }
    }
    let t = phi_ticks(4);
    assert_eq!(t[0], 1.0 / 3.0 / 4.0);
    assert_eq!(t[3], 1.0 - 1.0 / 3.0 / 4.0);
}

fn random_phi(c: usize, seed: u64, ratio: f32) -> (Phi, Tensor, Tensor) {
    let w = randn(&[c, c, 3, 3], seed)
        .scale(1.0 / (9.0 * c as f32).sqrt())
        .expect("CPU scale");
    let b = randn(&[c], seed + 1).scale(0.1).expect("CPU scale");
    let conv = Conv2d::from_tensors(w.clone(), b.clone(), Conv2dParams::new(1, 1));
    (Phi::new(conv, ratio), w, b)
}

#[test]
fn phi_is_the_residual_mix() -> TestResult {
    let (phi, w, b) = random_phi(4, 1, 0.5);
    let h = randn(&[2, 4, 5, 5], 3);
    let got = phi.forward(&h)?;
    let ht = T4::from(&h);
    let conv = conv_same(&ht, &w, &b);
    let want: Vec<f64> =
        ht.d.iter()
            .zip(&conv.d)
            .map(|(h, c)| 0.5 * h + 0.5 * c)
            .collect();
    check(Tolerance::MATMUL, "phi", &got.to_vec(), &want)?;
    // A negative ratio acts as |r| (official `abs(quant_resi)`); the identity copies.
    let (phi_neg, _, _) = random_phi(4, 1, -0.5);
    assert_eq!(phi_neg.forward(&h)?.to_vec(), got.to_vec());
    assert_eq!(Phi::identity().forward(&h)?.to_vec(), h.to_vec());
    Ok(())
}

/// A quantiser over the real VAR scales with 4 random Phis.
fn var_like_vq(
    c: usize,
    v: usize,
    seed: u64,
) -> Result<(MultiScaleVq, Vec<(Tensor, Tensor)>), TokenizerError> {
    let emb = randn(&[v, c], seed);
    let mut phis = Vec::new();
    let mut raw = Vec::new();
    for k in 0..4 {
        let (p, w, b) = random_phi(c, seed + 10 + 2 * k, 0.5);
        phis.push(p);
        raw.push((w, b));
    }
    Ok((MultiScaleVq::from_parts(emb, phis, VAR_PNS.to_vec())?, raw))
}

/// Explicit f64 re-implementation of `f_to_idxBl_or_fhat` (L2, not znorm).
fn naive_quantize(
    f: &T4,
    emb: &[f64],
    c: usize,
    v: usize,
    raw: &[(Tensor, Tensor)],
) -> (Vec<Vec<u32>>, T4) {
    let p = f.h;
    let mut rest = f.clone();
    let mut f_hat = T4::zeros(f.n, c, p, p);
    let mut all = Vec::new();
    for (si, &pn) in VAR_PNS.iter().enumerate() {
        let last = si == VAR_PNS.len() - 1;
        let z = if last {
            rest.clone()
        } else {
            area(&rest, pn, pn)
        };
        let mut idx = Vec::new();
        let mut h = T4::zeros(f.n, c, pn, pn);
        for n in 0..f.n {
            for y in 0..pn {
                for x in 0..pn {
                    let best = (0..v)
                        .map(|k| {
                            let d: f64 = (0..c)
                                .map(|ch| (z.at(n, ch, y, x) - emb[k * c + ch]).powi(2))
                                .sum();
                            (k, d)
                        })
                        .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
                        .0;
                    idx.push(best as u32);
                    for ch in 0..c {
                        *h.at_mut(n, ch, y, x) = emb[best * c + ch];
                    }
                }
            }
        }
        let up = if last { h } else { bicubic(&h, p, p) };
        let (w, b) = &raw[VAR_PHI_TABLE[si]];
        let conv = conv_same(&up, w, b);
        let mut contrib = up.clone();
        contrib
            .d
            .iter_mut()
            .zip(&conv.d)
            .for_each(|(u, cv)| *u = 0.5 * *u + 0.5 * cv);
        f_hat = f_hat.add(&contrib);
        rest = rest.add(&contrib.map(|x| -x));
        all.push(idx);
    }
    (all, f_hat)
}

#[test]
fn quantize_matches_explicit_chain() -> TestResult {
    let (c, v) = (4, 32);
    let (vq, raw) = var_like_vq(c, v, 21)?;
    let f = randn(&[2, c, 16, 16], 22);
    let (idx, f_hat) = vq.quantize(&f)?;
    let emb = f64s(vq.embedding());
    let (want_idx, want_fhat) = naive_quantize(&T4::from(&f), &emb, c, v, &raw);
    assert_eq!(idx, want_idx);
    check(Tolerance::MATMUL, "f_hat", &f_hat.to_vec(), &want_fhat.d)?;
    // Decoding the codes rebuilds the same f_hat (official `embed_to_fhat`).
    let again = vq.indices_to_fhat(&idx, 2)?;
    check(
        Tolerance::ELEMENTWISE,
        "indices_to_fhat",
        &again.to_vec(),
        &f64s(&f_hat),
    )?;
    Ok(())
}

#[test]
fn next_autoregressive_input_chain() -> TestResult {
    let (c, v) = (4, 32);
    let (vq, raw) = var_like_vq(c, v, 31)?;
    let b = 2;
    let idx: Vec<Vec<u32>> = VAR_PNS
        .iter()
        .enumerate()
        .map(|(si, &pn)| {
            (0..b * pn * pn)
                .map(|i| ((i * 7 + si * 3) % v) as u32)
                .collect()
        })
        .collect();
    let emb = f64s(vq.embedding());
    let mut f_hat = Tensor::zeros(&[b, c, 16, 16]);
    let mut want = T4::zeros(b, c, 16, 16);
    for (si, &pn) in VAR_PNS.iter().enumerate() {
        let h = vq.embed(&idx[si], b, pn)?;
        assert_eq!(h.shape(), &[b, c, pn, pn]);
        let (nf, next) = vq.next_autoregressive_input(si, &f_hat, &h)?;
        // Explicit: f_hat += phi(bicubic(E[idx] → 16)) (no resize at the last scale).
        let mut ht = T4::zeros(b, c, pn, pn);
        for n in 0..b {
            for y in 0..pn {
                for x in 0..pn {
                    let code = idx[si][(n * pn + y) * pn + x] as usize;
                    for ch in 0..c {
                        *ht.at_mut(n, ch, y, x) = emb[code * c + ch];
                    }
                }
            }
        }
        check(Tolerance::ELEMENTWISE, "embed", &h.to_vec(), &ht.d)?;
        let last = si == VAR_PNS.len() - 1;
        let up = if last { ht } else { bicubic(&ht, 16, 16) };
        let (w, bias) = &raw[VAR_PHI_TABLE[si]];
        let conv = conv_same(&up, w, bias);
        let mut contrib = up.clone();
        contrib
            .d
            .iter_mut()
            .zip(&conv.d)
            .for_each(|(u, cv)| *u = 0.5 * *u + 0.5 * cv);
        want = want.add(&contrib);
        check(Tolerance::MATMUL, "f_hat", &nf.to_vec(), &want.d)?;
        if last {
            assert_eq!(next.to_vec(), nf.to_vec());
        } else {
            let pn1 = VAR_PNS[si + 1];
            assert_eq!(next.shape(), &[b, c, pn1, pn1]);
            check(
                Tolerance::MATMUL,
                "next input",
                &next.to_vec(),
                &area(&want, pn1, pn1).d,
            )?;
        }
        f_hat = nf;
    }
    let direct = vq.indices_to_fhat(&idx, b)?;
    check(
        Tolerance::ELEMENTWISE,
        "indices_to_fhat",
        &direct.to_vec(),
        &f64s(&f_hat),
    )?;
    Ok(())
}

#[test]
fn contextual_errors() -> TestResult {
    let (vq, _) = var_like_vq(4, 32, 41)?;
    let msg = vq
        .embed(&[0, 1, 32, 3], 1, 2)
        .err()
        .ok_or("expected error")?
        .to_string();
    assert!(
        msg.contains("index 32") && msg.contains("position 2") && msg.contains("32"),
        "{msg}"
    );
    let msg = vq
        .embed(&[0, 1, 2], 1, 2)
        .err()
        .ok_or("expected error")?
        .to_string();
    assert!(msg.contains("expected 4 indices"), "{msg}");
    let idx = vec![vec![0u32]; 3];
    let msg = vq
        .indices_to_fhat(&idx, 1)
        .err()
        .ok_or("expected error")?
        .to_string();
    assert!(
        msg.contains("expected 10 scales") && msg.contains("found 3"),
        "{msg}"
    );
    let f = Tensor::zeros(&[1, 4, 8, 8]);
    let msg = vq.quantize(&f).err().ok_or("expected error")?.to_string();
    assert!(msg.contains("[B, 4, 16, 16]"), "{msg}");
    let f_hat = Tensor::zeros(&[1, 4, 16, 16]);
    let h = Tensor::zeros(&[1, 4, 3, 3]);
    let msg = vq
        .next_autoregressive_input(1, &f_hat, &h)
        .err()
        .ok_or("expected error")?
        .to_string();
    assert!(msg.contains("scale 1"), "{msg}");
    assert!(matches!(
        vq.next_autoregressive_input(10, &f_hat, &h),
        Err(TokenizerError::ScaleIndex { si: 10, .. })
    ));
    Ok(())
}
