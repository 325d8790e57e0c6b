//! GSD's group construction and LANTERN's neighbourhood, against brute-force definitions.

use std::sync::Arc;

use arvis_core::SeededRng;
use arvis_spec::{DraftQ, Embeddings, GroupedRule, LanternRule, NeighbourTable, Result};

/// Brute force: full sort by (p, id) ascending, window of ranks clamped, then the filters.
fn group_naive(rule: &GroupedRule, p: &[f64], x: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]).then(a.cmp(&b)));
    let r = order.iter().position(|&y| y == x).unwrap_or(0) as isize;
    let lo = (r - (rule.group / 2) as isize).max(0) as usize;
    let hi = ((r + (rule.group - rule.group / 2) as isize) as usize).min(p.len());
    let mut g: Vec<usize> = order[lo..hi]
        .iter()
        .copied()
        .filter(|&y| {
            (p[y] - p[x]).abs() < rule.p_threshold
                && rule
                    .embeddings
                    .as_ref()
                    .is_none_or(|e| e.sq_dist(x, y) < rule.dist_threshold)
        })
        .collect();
    g.sort_unstable();
    g
}

#[test]
fn gsd_group_matches_a_full_sort() -> Result<()> {
    let mut rng = SeededRng::new(5);
    for case in 0..300 {
        let v = 1 + case % 40;
        let emb = Arc::new(Embeddings::new(
            v,
            2,
            (0..2 * v).map(|_| rng.normal_f32() * 0.6).collect(),
        )?);
        let mut p: Vec<f64> = (0..v).map(|_| (rng.normal_f64() * 1.5).exp()).collect();
        if case % 4 == 0 {
            // Ties and zeros, as top-k leaves them.
            for x in p.iter_mut().step_by(3) {
                *x = 0.0;
            }
            p[0] = 1.0;
        }
        let s: f64 = p.iter().sum();
        p.iter_mut().for_each(|x| *x /= s);
        let group = [3, 14, 25][case % 3];
        let rule = GroupedRule {
            group,
            embeddings: (case % 2 == 0).then(|| emb.clone()),
            ..GroupedRule::default()
        };
        for x in 0..v {
            let mut got = rule.group_of(&p, x);
            got.sort_unstable();
            assert_eq!(got, group_naive(&rule, &p, x), "case {case}, x {x}");
        }
    }
    Ok(())
}

#[test]
fn gsd_accepts_at_least_as_often_as_exact_when_groups_are_unfiltered() {
    // With no filter the group ratio is a ratio of sums; GSD's theorem: α_GSD ≥ α_SD.
    let mut rng = SeededRng::new(8);
    let rule = GroupedRule {
        p_threshold: 2.0,
        ..GroupedRule::default()
    };
    for _ in 0..200 {
        let v = 20;
        let norm = |w: Vec<f64>| {
            let s: f64 = w.iter().sum();
            w.into_iter().map(|x| x / s).collect::<Vec<_>>()
        };
        let p = norm((0..v).map(|_| rng.normal_f64().exp()).collect());
        let q = norm((0..v).map(|_| rng.normal_f64().exp()).collect());
        let dq = DraftQ::Dense(q.clone());
        let alpha_sd: f64 = (0..v).map(|x| q[x] * (p[x] / q[x]).min(1.0)).sum();
        let alpha_gsd: f64 = (0..v).map(|x| q[x] * rule.accept_prob(&p, &dq, x)).sum();
        assert!(alpha_gsd >= alpha_sd - 1e-12, "{alpha_gsd} < {alpha_sd}");
    }
}

#[test]
fn lantern_neighbourhood_is_the_longest_prefix_under_delta() -> Result<()> {
    // Points on a line at 0, 1, 3, 6, 10: neighbours of 0 are 1, 2, 3, 4 in that order.
    let emb = Embeddings::new(5, 1, vec![0.0, 1.0, 3.0, 6.0, 10.0])?;
    let table = Arc::new(NeighbourTable::from_embeddings(&emb, 1000)?);
    assert_eq!(table.width(), 4);
    assert_eq!(table.of(0), &[1, 2, 3, 4]);
    assert_eq!(table.of(2), &[1, 0, 3, 4]); // distance 2 to 1, 3 to 0 and 3 (tie: lower id)
    let p = [0.5, 0.04, 0.05, 0.3, 0.11];
    let mut rule = LanternRule::new(table.clone());
    // c = 0.04, 0.09, 0.39, ...: the prefix under 0.1 has two neighbours.
    let (pt, size) = rule.relaxed_prob(&p, 0);
    assert_eq!(size, 2);
    assert!((pt - 0.59).abs() < 1e-15);
    // k limits the neighbours looked at.
    rule.k = 1;
    assert_eq!(rule.relaxed_prob(&p, 0).1, 1);
    // δ = 0 adds nothing: the rule becomes exact SD's.
    rule.delta = 0.0;
    let q = DraftQ::Dense(vec![0.2; 5]);
    assert_eq!(
        rule.accept_prob(&p, &q, 1),
        arvis_spec::residual::accept_prob(&p, &q, 1)
    );
    // On rejection after a relaxation, the neighbours of x lose their q mass (x keeps it).
    rule.delta = 0.1;
    rule.k = 1000;
    let r = rule.residual(&p, &q, 0);
    let want: Vec<f64> = [0.5 - 0.2, 0.04, 0.05, 0.3, 0.11].to_vec();
    for (a, b) in r.iter().zip(&want) {
        assert!((a - b).abs() < 1e-15, "{r:?} vs {want:?}");
    }
    Ok(())
}
