//! The per-position identity behind exactness: the accept-or-residual draw induces `p`.

use arvis_core::SeededRng;
use arvis_spec::residual::{accept_prob, acceptance_rate, residual_weights};
use arvis_spec::{Acceptance, DraftQ, Embeddings, GroupedRule, LanternRule, NeighbourTable};
use std::sync::Arc;

/// The distribution of the token an [`Acceptance`] rule emits for a draft drawn from `q`,
/// computed from its pieces: `q(y)·a(y) + Σ_x q(x)(1 − a(x))·norm(res_x)(y)`.
fn induced(rule: &Acceptance, p: &[f64], q: &DraftQ, v: usize) -> Vec<f64> {
    let mut out = vec![0.0; v];
    for x in 0..v {
        let qx = match q {
            DraftQ::OneHot => f64::from(u8::from(x == 0)), // one-hot drafts are token 0 here
            DraftQ::Dense(q) => q[x],
        };
        if qx == 0.0 {
            continue;
        }
        let a = rule.accept_prob(p, q, x);
        out[x] += qx * a;
        if a < 1.0 {
            let r = rule.residual(p, q, x);
            let total: f64 = r.iter().sum();
            for (o, ri) in out.iter_mut().zip(&r) {
                *o += qx * (1.0 - a) * ri / total;
            }
        }
    }
    out
}

fn normalise(mut v: Vec<f64>) -> Vec<f64> {
    let s: f64 = v.iter().sum();
    v.iter_mut().for_each(|x| *x /= s);
    v
}

/// Random distributions: log-normal weights at various concentrations, some entries zeroed.
fn random_dist(rng: &mut SeededRng, v: usize, scale: f64, zeros: bool) -> Vec<f64> {
    let mut w: Vec<f64> = (0..v).map(|_| (scale * rng.normal_f64()).exp()).collect();
    if zeros {
        for x in &mut w {
            if rng.uniform_f64() < 0.3 {
                *x = 0.0;
            }
        }
        if w.iter().all(|&x| x == 0.0) {
            w[0] = 1.0;
        }
    }
    normalise(w)
}

fn cases() -> Vec<(Vec<f64>, DraftQ)> {
    let mut rng = SeededRng::new(3);
    let mut out = Vec::new();
    for i in 0..400 {
        let v = 2 + i % 9;
        let scale = [0.1, 1.0, 3.0, 8.0][i % 4];
        let p = random_dist(&mut rng, v, scale, i % 3 == 0);
        let q = random_dist(&mut rng, v, scale, i % 5 == 0);
        out.push((p, DraftQ::Dense(q)));
    }
    let v = 5;
    let p = normalise(vec![1.0, 2.0, 0.0, 0.0, 0.0]);
    // Disjoint supports.
    out.push((
        p.clone(),
        DraftQ::Dense(normalise(vec![0.0, 0.0, 1.0, 3.0, 1.0])),
    ));
    // p = q.
    out.push((p.clone(), DraftQ::Dense(p.clone())));
    // One-hot q, dense and as `OneHot` (draft token 0), on and off p's support.
    out.push((p.clone(), DraftQ::OneHot));
    out.push((p.clone(), DraftQ::Dense(vec![1.0, 0.0, 0.0, 0.0, 0.0])));
    out.push((p.clone(), DraftQ::Dense(vec![0.0, 0.0, 0.0, 0.0, 1.0])));
    // One-hot p against a spread q and against a one-hot q.
    let one_hot = vec![0.0, 0.0, 1.0, 0.0, 0.0];
    out.push((one_hot.clone(), DraftQ::Dense(vec![0.2; v])));
    out.push((one_hot.clone(), DraftQ::OneHot));
    out.push((one_hot, DraftQ::Dense(vec![0.0, 0.0, 1.0, 0.0, 0.0])));
    out
}

#[test]
fn exact_rule_induces_the_target() {
    for (i, (p, q)) in cases().iter().enumerate() {
        let got = induced(&Acceptance::Exact, p, q, p.len());
        for (y, (g, want)) in got.iter().zip(p).enumerate() {
            assert!(
                (g - want).abs() <= 1e-12,
                "case {i}, token {y}: {g} vs {want}"
            );
        }
        if let DraftQ::Dense(qv) = q {
            // Σ (p − q)₊ = 1 − Σ min(p, q), the identity the proof rests on.
            let pos: f64 = p.iter().zip(qv).map(|(a, b)| (a - b).max(0.0)).sum();
            assert!(
                (pos - (1.0 - acceptance_rate(p, qv))).abs() <= 1e-12,
                "case {i}"
            );
        }
    }
}

#[test]
fn equal_distributions_always_accept() {
    let mut rng = SeededRng::new(9);
    for _ in 0..100 {
        let p = random_dist(&mut rng, 7, 2.0, true);
        let q = DraftQ::Dense(p.clone());
        for x in (0..7).filter(|&x| p[x] > 0.0) {
            assert_eq!(accept_prob(&p, &q, x), 1.0);
        }
        // The residual has no mass; the guard returns p, finite.
        let r = residual_weights(&p, &q, 0);
        assert!(r.iter().all(|x| x.is_finite()) && r.iter().sum::<f64>() > 0.0);
    }
}

#[test]
fn lossy_rules_do_not_induce_the_target() -> arvis_spec::Result<()> {
    let v = 6;
    let emb = Arc::new(Embeddings::new(
        v,
        1,
        (0..v).map(|i| 0.5 * i as f32).collect(),
    )?);
    let table = Arc::new(NeighbourTable::from_embeddings(&emb, v)?);
    let rules = [
        Acceptance::Grouped(GroupedRule::default().with_embeddings(emb)),
        Acceptance::Lantern(LanternRule::new(table)),
    ];
    let p = normalise(vec![0.05, 0.5, 0.08, 0.07, 0.2, 0.1]);
    let q = DraftQ::Dense(normalise(vec![0.3, 0.1, 0.3, 0.1, 0.1, 0.1]));
    for rule in &rules {
        let got = induced(rule, &p, &q, v);
        let tv: f64 = got.iter().zip(&p).map(|(a, b)| (a - b).abs()).sum::<f64>() / 2.0;
        assert!(tv > 1e-3, "{rule:?} reproduced p (TV {tv})");
        assert!(
            (got.iter().sum::<f64>() - 1.0).abs() < 1e-12,
            "still a distribution"
        );
    }
    Ok(())
}
