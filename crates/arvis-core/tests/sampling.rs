//! Tests of `arvis_core::sampling` against independent, brute-force reference implementations
//! written here from the two official specifications (VAR `sample_with_top_k_top_p_` and
//! HuggingFace `top_k_top_p_filtering` as used by LlamaGen), plus χ² / KS goodness-of-fit tests
//! with fixed seeds and negative controls showing that those tests can fail.

use arvis_core::sampling::{
    CfgForm, SamplingConfig, TopPRule, cfg_mix, cfg_mix_stacked, filter_row, filter_top_k,
    filter_top_p, filter_top_p_hf, filter_top_p_var, gumbel_max_row, sample_from_uniform,
    sample_row, sample_rows, softmax_f64,
};
use arvis_core::{Error, SeededRng, Tensor};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, Uniform};
use statrs::stats_tests::NaNPolicy;
use statrs::stats_tests::ks_test::{KSOneSampleAlternativeMethod, ks_onesample};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const NEG_INF: f32 = f32::NEG_INFINITY;
/// Significance level for the goodness-of-fit tests: a correct sampler fails with
/// probability 1e-6 per test, a wrong one (see the negative controls) passes essentially never.
const ALPHA: f64 = 1e-6;
/// Draws per distribution in the χ² tests.
const N_DRAWS: usize = 200_000;

// ---------------------------------------------------------------------------------------------
// Independent reference (brute force, O(V²), straight from the specifications)
// ---------------------------------------------------------------------------------------------

/// Rank of every token: how many tokens rank strictly above it (greater logit, or equal logit
/// and lower index — the documented tie-break).
fn ranks(x: &[f32]) -> Vec<usize> {
    (0..x.len())
        .map(|i| {
            (0..x.len())
                .filter(|&j| x[j] > x[i] || (x[j] == x[i] && j < i))
                .count()
        })
        .collect()
}

/// Naive softmax in f64; -inf gets exactly 0.
fn ref_softmax(x: &[f32]) -> Vec<f64> {
    let m = x
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let w: Vec<f64> = x
        .iter()
        .map(|&v| {
            if v == NEG_INF {
                0.0
            } else {
                (f64::from(v) - m).exp()
            }
        })
        .collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|v| v / s).collect()
}

/// Top-k: keep a finite token iff fewer than k tokens have a strictly larger logit.
fn ref_top_k_keep(x: &[f32], k: usize) -> Vec<bool> {
    (0..x.len())
        .map(|i| x[i] != NEG_INF && (k == 0 || x.iter().filter(|&&y| y > x[i]).count() < k))
        .collect()
}

/// Top-p keep mask under `rule`, plus, per token, the distance of its deciding quantity from the
/// threshold (to skip tokens that sit within rounding distance of the boundary).
///
/// HF: keep iff rank 0 or (mass strictly above) ≤ p.
/// VAR: keep iff rank 0 or (mass of the token and everything below it) > 1 − p.
fn ref_top_p_keep(x: &[f32], p: f32, rule: TopPRule) -> (Vec<bool>, Vec<f64>) {
    let probs = ref_softmax(x);
    let r = ranks(x);
    let p = f64::from(p);
    let mut keep = Vec::new();
    let mut margin = Vec::new();
    for i in 0..x.len() {
        if x[i] == NEG_INF {
            keep.push(false);
            margin.push(f64::INFINITY);
            continue;
        }
        if p >= 1.0 || r[i] == 0 {
            keep.push(true);
            margin.push(f64::INFINITY);
            continue;
        }
        match rule {
            TopPRule::HuggingFace => {
                let above: f64 = (0..x.len())
                    .filter(|&j| r[j] < r[i])
                    .map(|j| probs[j])
                    .sum();
                keep.push(above <= p);
                margin.push((above - p).abs());
            }
            TopPRule::Var => {
                let at_or_below: f64 = (0..x.len())
                    .filter(|&j| r[j] >= r[i])
                    .map(|j| probs[j])
                    .sum();
                keep.push(at_or_below > 1.0 - p);
                margin.push((at_or_below - (1.0 - p)).abs());
            }
        }
    }
    (keep, margin)
}

fn apply_mask(x: &[f32], keep: &[bool]) -> Vec<f32> {
    x.iter()
        .zip(keep)
        .map(|(&v, &k)| if k { v } else { NEG_INF })
        .collect()
}

/// The full pipeline from the specification: temperature (HF clamps to 1e-5), top-k, top-p.
fn ref_filter(x: &[f32], cfg: &SamplingConfig) -> Vec<f32> {
    let t = match cfg.rule {
        TopPRule::HuggingFace => cfg.temperature.max(1e-5),
        TopPRule::Var => cfg.temperature,
    };
    let scaled: Vec<f32> = x.iter().map(|&v| v / t).collect();
    let after_k = apply_mask(&scaled, &ref_top_k_keep(&scaled, cfg.top_k));
    let (keep_p, _) = ref_top_p_keep(&after_k, cfg.top_p, cfg.rule);
    apply_mask(&after_k, &keep_p)
}

/// The exact distribution `cfg` should sample from.
fn ref_distribution(x: &[f32], cfg: &SamplingConfig) -> Vec<f64> {
    ref_softmax(&ref_filter(x, cfg))
}

fn finite_mask(x: &[f32]) -> Vec<bool> {
    x.iter().map(|v| v.is_finite()).collect()
}

fn random_row(rng: &mut SeededRng, v: usize, scale: f32) -> Vec<f32> {
    (0..v).map(|_| rng.normal_f32() * scale).collect()
}

// ---------------------------------------------------------------------------------------------
// χ² goodness of fit
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Chi2 {
    p_value: f64,
    stat: f64,
    df: usize,
    /// Draws that landed on a zero-probability token.
    forbidden_hits: u64,
}

/// Pearson χ² of `counts` against `probs`, expected counts `N · p` with `N` the total number of
/// draws. Cells with expected < 5 are merged (smallest first); zero-probability cells are left
/// out of the statistic and reported as `forbidden_hits` instead.
fn chi2(counts: &[u64], probs: &[f64]) -> Result<Chi2, Box<dyn std::error::Error>> {
    assert_eq!(counts.len(), probs.len());
    let n: u64 = counts.iter().sum();
    let forbidden_hits = counts
        .iter()
        .zip(probs)
        .filter(|&(_, &p)| p == 0.0)
        .map(|(&c, _)| c)
        .sum();
    let mut cells: Vec<(f64, f64)> = counts
        .iter()
        .zip(probs)
        .filter(|&(_, &p)| p > 0.0)
        .map(|(&c, &p)| (n as f64 * p, c as f64))
        .collect();
    cells.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut merged: Vec<(f64, f64)> = Vec::new();
    let mut acc = (0.0, 0.0);
    for (e, o) in cells {
        acc = (acc.0 + e, acc.1 + o);
        if acc.0 >= 5.0 {
            merged.push(acc);
            acc = (0.0, 0.0);
        }
    }
    if acc.0 > 0.0 {
        match merged.last_mut() {
            Some(last) => *last = (last.0 + acc.0, last.1 + acc.1),
            None => merged.push(acc),
        }
    }
    let stat: f64 = merged.iter().map(|&(e, o)| (o - e) * (o - e) / e).sum();
    let df = merged.len() - 1;
    let p_value = if df == 0 {
        if stat == 0.0 { 1.0 } else { 0.0 }
    } else {
        ChiSquared::new(df as f64)?.sf(stat)
    };
    Ok(Chi2 {
        p_value,
        stat,
        df,
        forbidden_hits,
    })
}

/// Draws `n` tokens from each row of `types` with `sample_rows`: the rows are stacked
/// alternately in a rank-3 `[batch, types, V]` tensor (so a row-offset bug mixes the
/// distributions), and tallied per type.
fn draw_counts(
    types: &[Vec<f32>],
    cfg: &SamplingConfig,
    seed: u64,
    n: usize,
) -> Result<Vec<Vec<u64>>, Box<dyn std::error::Error>> {
    let v = types[0].len();
    let batch = 10_000;
    let mut data = Vec::with_capacity(batch * types.len() * v);
    for _ in 0..batch {
        for t in types {
            data.extend_from_slice(t);
        }
    }
    let tensor = Tensor::from_vec(data, &[batch, types.len(), v])?;
    let mut rng = SeededRng::new(seed).fork(1);
    let mut counts = vec![vec![0u64; v]; types.len()];
    let mut drawn = 0;
    while drawn < n {
        let tokens = sample_rows(&tensor, cfg, &mut rng)?;
        assert_eq!(tokens.len(), batch * types.len());
        for (r, &t) in tokens.iter().enumerate() {
            counts[r % types.len()][t as usize] += 1;
        }
        drawn += batch;
    }
    Ok(counts)
}

/// Samples every row type with `cfg` and checks the draws against the reference distribution.
fn assert_fits(types: &[Vec<f32>], cfg: &SamplingConfig, seed: u64) -> TestResult {
    let counts = draw_counts(types, cfg, seed, N_DRAWS)?;
    for (t, row) in types.iter().enumerate() {
        let expected = ref_distribution(row, cfg);
        let res = chi2(&counts[t], &expected)?;
        eprintln!(
            "{cfg:?} row type {t}: χ² = {:.1}, df = {}, p = {:.3e}",
            res.stat, res.df, res.p_value
        );
        assert_eq!(
            res.forbidden_hits, 0,
            "{cfg:?}, row type {t}: filtered token drawn: {res:?}"
        );
        assert!(res.df >= 1, "{cfg:?}: degenerate test {res:?}");
        assert!(
            res.p_value > ALPHA,
            "{cfg:?}, row type {t}: χ² rejects: {res:?}"
        );
    }
    Ok(())
}

#[test]
fn chi2_plain_softmax_with_temperature() -> TestResult {
    let mut rng = SeededRng::new(11);
    let a = random_row(&mut rng, 24, 2.0);
    let mut b = random_row(&mut rng, 24, 1.0);
    b[3] = NEG_INF; // already-masked tokens must never be drawn
    b[17] = NEG_INF;
    let types = [a, b];
    assert_fits(&types, &SamplingConfig::llamagen(0.7, 0, 1.0), 1)?;
    assert_fits(&types, &SamplingConfig::var(0, 1.0), 2)?;
    Ok(())
}

#[test]
fn chi2_top_k_with_ties_at_the_boundary() -> TestResult {
    // The 6th and 7th largest are equal: top-6 must keep 7 tokens.
    let mut row = vec![3.0f32, 2.5, 2.5, 2.0, 1.5, 1.0, 1.0, 0.5];
    let mut rng = SeededRng::new(12);
    row.extend((0..22).map(|_| -1.0 - rng.normal_f32().abs()));
    let mut order: Vec<usize> = (0..row.len()).collect();
    rng.shuffle(&mut order);
    let row: Vec<f32> = order.iter().map(|&i| row[i]).collect();

    let cfg = SamplingConfig::llamagen(1.3, 6, 1.0);
    assert_eq!(
        ref_distribution(&row, &cfg)
            .iter()
            .filter(|&&p| p > 0.0)
            .count(),
        7
    );
    assert_fits(std::slice::from_ref(&row), &cfg, 3)?;
    assert_fits(std::slice::from_ref(&row), &SamplingConfig::var(6, 1.0), 4)?;
    Ok(())
}

#[test]
fn chi2_top_p_under_both_rules() -> TestResult {
    let mut rng = SeededRng::new(13);
    let row = random_row(&mut rng, 40, 1.5);
    for (rule, seed) in [(TopPRule::HuggingFace, 5), (TopPRule::Var, 6)] {
        let cfg = SamplingConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.8,
            rule,
        };
        let support = ref_distribution(&row, &cfg)
            .iter()
            .filter(|&&p| p > 0.0)
            .count();
        assert!(
            (2..40).contains(&support),
            "top-p should cut the tail: {support}"
        );
        assert_fits(std::slice::from_ref(&row), &cfg, seed)?;
    }

    // 16 equally likely tokens and p = 0.5: boundaries fall exactly on the threshold, where the
    // rules differ: HF keeps the 9 tokens with mass above ≤ 0.5, VAR the 8 with mass above < 0.5.
    let flat = vec![0.0f32; 16];
    for (rule, support, seed) in [(TopPRule::HuggingFace, 9, 7), (TopPRule::Var, 8, 8)] {
        let cfg = SamplingConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.5,
            rule,
        };
        let expected = ref_distribution(&flat, &cfg);
        assert_eq!(expected.iter().filter(|&&p| p > 0.0).count(), support);
        assert_fits(std::slice::from_ref(&flat), &cfg, seed)?;
    }

    // Everything at once: temperature, top-k, top-p.
    let cfg = SamplingConfig::llamagen(0.8, 15, 0.9);
    assert_fits(std::slice::from_ref(&row), &cfg, 9)?;
    Ok(())
}

#[test]
fn chi2_gumbel_max_row() -> TestResult {
    let mut data_rng = SeededRng::new(14);
    let row = random_row(&mut data_rng, 20, 1.5);
    for (cfg, seed) in [
        (SamplingConfig::llamagen(0.8, 12, 0.95), 10),
        (
            SamplingConfig {
                temperature: 1.2,
                top_k: 0,
                top_p: 0.9,
                rule: TopPRule::Var,
            },
            11,
        ),
    ] {
        let mut rng = SeededRng::new(seed);
        let mut counts = vec![0u64; row.len()];
        for _ in 0..N_DRAWS {
            counts[gumbel_max_row(&row, &cfg, &mut rng)?] += 1;
        }
        let res = chi2(&counts, &ref_distribution(&row, &cfg))?;
        eprintln!(
            "χ² = {:.1}, df = {}, p = {:.3e}",
            res.stat, res.df, res.p_value
        );
        assert_eq!(res.forbidden_hits, 0, "{cfg:?}: {res:?}");
        assert!(
            res.p_value > ALPHA,
            "{cfg:?}: χ² rejects Gumbel-max: {res:?}"
        );
    }
    Ok(())
}

#[test]
fn chi2_negative_controls_have_power() -> TestResult {
    let mut rng = SeededRng::new(15);
    let row = random_row(&mut rng, 20, 1.5);
    let rows = std::slice::from_ref(&row);

    // Unfiltered draws scored against the top-5 distribution (over its 5 cells only: the
    // statistic itself, not just the forbidden-token count, must reject).
    let unfiltered = draw_counts(rows, &SamplingConfig::default(), 21, N_DRAWS)?;
    let top5 = ref_distribution(&row, &SamplingConfig::llamagen(1.0, 5, 1.0));
    let res = chi2(&unfiltered[0], &top5)?;
    eprintln!(
        "χ² = {:.1}, df = {}, p = {:.3e}",
        res.stat, res.df, res.p_value
    );
    assert!(res.forbidden_hits > 0);
    assert!(
        res.p_value < ALPHA,
        "χ² failed to reject unfiltered vs top-k: {res:?}"
    );

    // A 5% temperature error.
    let t1 = draw_counts(rows, &SamplingConfig::llamagen(1.0, 0, 1.0), 22, N_DRAWS)?;
    let t105 = ref_distribution(&row, &SamplingConfig::llamagen(1.05, 0, 1.0));
    let res = chi2(&t1[0], &t105)?;
    eprintln!(
        "χ² = {:.1}, df = {}, p = {:.3e}",
        res.stat, res.df, res.p_value
    );
    assert!(
        res.p_value < ALPHA,
        "χ² failed to reject T=1 draws vs T=1.05: {res:?}"
    );

    // VAR draws scored against the HF distribution on the exact-boundary case.
    let flat = vec![0.0f32; 16];
    let var = SamplingConfig {
        temperature: 1.0,
        top_k: 0,
        top_p: 0.5,
        rule: TopPRule::Var,
    };
    let hf = SamplingConfig {
        rule: TopPRule::HuggingFace,
        ..var
    };
    let var_counts = draw_counts(std::slice::from_ref(&flat), &var, 23, N_DRAWS)?;
    let res = chi2(&var_counts[0], &ref_distribution(&flat, &hf))?;
    eprintln!(
        "χ² = {:.1}, df = {}, p = {:.3e}",
        res.stat, res.df, res.p_value
    );
    assert!(
        res.p_value < ALPHA,
        "χ² failed to tell VAR from HF top-p: {res:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// KS tests of the generator's conversions
// ---------------------------------------------------------------------------------------------

fn ks_p(
    data: Vec<f64>,
    dist: &impl ContinuousCDF<f64, f64>,
) -> Result<f64, Box<dyn std::error::Error>> {
    let (_, p) = ks_onesample(
        data,
        dist,
        KSOneSampleAlternativeMethod::TwoSidedAsymptotic,
        NaNPolicy::Error,
    )?;
    Ok(p)
}

#[test]
fn ks_uniform_f64_and_normal_f32() -> TestResult {
    const N: usize = 100_000;
    let unif = Uniform::new(0.0, 1.0)?;
    let normal = Normal::new(0.0, 1.0)?;

    let mut rng = SeededRng::new(31);
    let u: Vec<f64> = (0..N).map(|_| rng.uniform_f64()).collect();
    assert!(u.iter().all(|x| (0.0..1.0).contains(x)));
    let p = ks_p(u.clone(), &unif)?;
    assert!(p > ALPHA, "uniform_f64 fails KS: p = {p}");

    let z: Vec<f64> = (0..N).map(|_| f64::from(rng.normal_f32())).collect();
    let p = ks_p(z.clone(), &normal)?;
    assert!(p > ALPHA, "normal_f32 fails KS: p = {p}");

    // Negative controls: a 2% squeeze of the uniforms and a 0.05 shift of the normals.
    let p = ks_p(u.iter().map(|x| x * 0.98).collect(), &unif)?;
    assert!(p < ALPHA, "KS cannot see a 2% squeeze: p = {p}");
    let p = ks_p(z.iter().map(|x| x + 0.05).collect(), &normal)?;
    assert!(p < ALPHA, "KS cannot see a 0.05 shift: p = {p}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Filtering rules vs the reference
// ---------------------------------------------------------------------------------------------

/// Checks `got` is `input` with exactly the tokens of `keep` kept (bit-identical) and the others
/// set to -inf, skipping tokens within rounding distance of a top-p threshold.
fn check_mask(got: &[f32], input: &[f32], keep: &[bool], margin: &[f64], what: &str) -> usize {
    let mut skipped = 0;
    for i in 0..input.len() {
        if margin[i] > 0.0 && margin[i] < 1e-12 {
            skipped += 1;
            continue;
        }
        if keep[i] {
            assert_eq!(
                got[i].to_bits(),
                input[i].to_bits(),
                "{what}: token {i} changed, {input:?}"
            );
        } else {
            assert_eq!(
                got[i], NEG_INF,
                "{what}: token {i} not removed, {input:?} -> {got:?}"
            );
        }
    }
    skipped
}

#[test]
fn filters_match_bruteforce_reference() -> TestResult {
    let mut rng = SeededRng::new(41);
    let mut checked = 0usize;
    let mut skipped = 0usize;
    let mut rules_differed = 0usize;
    for &v in &[1usize, 2, 3, 4, 7, 16, 33, 100] {
        for kind in 0..5 {
            for _rep in 0..6 {
                let row: Vec<f32> = (0..v)
                    .map(|i| match kind {
                        0 => rng.normal_f32() * 3.0,
                        1 => (rng.normal_f32() * 1.5).round(), // many ties
                        2 if i > 0 && rng.below(3) == 0 => NEG_INF,
                        2 => rng.normal_f32(),
                        3 => 0.5,                                     // all equal
                        _ => (rng.normal_f32() * 4.0).round() * 0.25, // ties, dyadic values
                    })
                    .collect();
                let ks = [0, 1, 2, v / 2, v.saturating_sub(1), v, v + 3];
                for &k in &ks {
                    let mut got = row.clone();
                    filter_top_k(&mut got, k)?;
                    let keep = ref_top_k_keep(&row, k);
                    check_mask(&got, &row, &keep, &vec![f64::INFINITY; v], "top-k");
                    checked += v;
                }
                for &p in &[1e-6f32, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999, 1.0] {
                    let mut masks = Vec::new();
                    for rule in [TopPRule::HuggingFace, TopPRule::Var] {
                        let mut got = row.clone();
                        match rule {
                            TopPRule::HuggingFace => filter_top_p_hf(&mut got, p)?,
                            TopPRule::Var => filter_top_p_var(&mut got, p)?,
                        }
                        let mut via_dispatch = row.clone();
                        filter_top_p(&mut via_dispatch, p, rule)?;
                        assert_eq!(finite_mask(&got), finite_mask(&via_dispatch));
                        let (keep, margin) = ref_top_p_keep(&row, p, rule);
                        skipped +=
                            check_mask(&got, &row, &keep, &margin, &format!("{rule:?} p={p}"));
                        checked += v;
                        // Tiny p keeps only the top token (the documented tie-break picks it).
                        if p == 1e-6 {
                            let r = ranks(&row);
                            for i in 0..v {
                                assert_eq!(
                                    got[i].is_finite(),
                                    r[i] == 0,
                                    "{rule:?} tiny p {row:?}"
                                );
                            }
                        }
                        masks.push(finite_mask(&got));
                    }
                    rules_differed += usize::from(masks[0] != masks[1]);
                }
                // The whole pipeline with a config.
                for rule in [TopPRule::HuggingFace, TopPRule::Var] {
                    for (t, k, p) in [(1.0, 0, 1.0), (0.7, 3, 0.9), (1.5, v, 0.5), (1.0, 1, 0.3)] {
                        let cfg = SamplingConfig {
                            temperature: t,
                            top_k: k,
                            top_p: p,
                            rule,
                        };
                        let mut got = row.clone();
                        filter_row(&mut got, &cfg)?;
                        let want = ref_filter(&row, &cfg);
                        for i in 0..v {
                            assert_eq!(got[i].to_bits(), want[i].to_bits(), "{cfg:?} {row:?}");
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 50_000, "{checked}");
    assert!(
        skipped * 1000 < checked,
        "too many boundary skips: {skipped} of {checked}"
    );
    eprintln!("checked {checked}, skipped {skipped}, rules differed in {rules_differed} cases");
    assert!(
        rules_differed > 0,
        "no case exercised the HF/VAR difference"
    );
    Ok(())
}

#[test]
fn hand_checked_logits_1_2_3_4() -> TestResult {
    let x = [1.0f32, 2.0, 3.0, 4.0];
    // e^i / (e + e² + e³ + e⁴)
    let want = [
        0.032058603280084995,
        0.08714431874203257,
        0.23688281808991013,
        0.6439142598879722,
    ];
    let probs = softmax_f64(&x)?;
    for (p, w) in probs.iter().zip(want) {
        assert!((p - w).abs() < 1e-15, "{probs:?}");
    }
    // Mass above token 2 is 0.6439, above token 1 0.8808: every p in between keeps {2, 3},
    // every p below 0.6439 keeps {3}; both rules agree away from exact boundaries.
    for (p, kept) in [
        (0.5, [false, false, false, true]),
        (0.6, [false, false, false, true]),
        (0.65, [false, false, true, true]),
        (0.7, [false, false, true, true]),
        (0.9, [false, true, true, true]),
    ] {
        for rule in [TopPRule::HuggingFace, TopPRule::Var] {
            let mut row = x;
            filter_top_p(&mut row, p, rule)?;
            assert_eq!(row.map(f32::is_finite), kept, "{rule:?} p={p}");
        }
    }
    let mut row = x;
    filter_top_k(&mut row, 2)?;
    assert_eq!(row, [NEG_INF, NEG_INF, 3.0, 4.0]);
    // Top-2 then sampling: probabilities e³ : e⁴, i.e. token 2 iff u < 1 / (1 + e).
    let cfg = SamplingConfig::llamagen(1.0, 2, 1.0);
    let boundary = 1.0 / (1.0 + std::f64::consts::E);
    assert_eq!(sample_row(&x, &cfg, boundary - 1e-9)?, 2);
    assert_eq!(sample_row(&x, &cfg, boundary + 1e-9)?, 3);
    Ok(())
}

#[test]
fn rules_differ_exactly_at_the_boundary() -> TestResult {
    // Four equal tokens: masses above are 0, 0.25, 0.5, 0.75 (exact in binary).
    for (p, hf, var) in [
        (
            0.25,
            [true, true, false, false],
            [true, false, false, false],
        ),
        (0.5, [true, true, true, false], [true, true, false, false]),
        (0.75, [true, true, true, true], [true, true, true, false]),
    ] {
        let mut row = [0.0f32; 4];
        filter_top_p_hf(&mut row, p)?;
        assert_eq!(row.map(f32::is_finite), hf, "HF p={p}");
        let mut row = [0.0f32; 4];
        filter_top_p_var(&mut row, p)?;
        assert_eq!(row.map(f32::is_finite), var, "VAR p={p}");
    }
    // Equal logits are ranked by index: of the two 1.0 logits (mass 0.3222 each), index 1 ranks
    // first, so p = 0.3 keeps index 1 and drops index 4 under both rules.
    for rule in [TopPRule::HuggingFace, TopPRule::Var] {
        let mut row = [0.0f32, 1.0, 0.0, 0.0, 1.0];
        filter_top_p(&mut row, 0.3, rule)?;
        assert_eq!(
            row.map(f32::is_finite),
            [false, true, false, false, false],
            "{rule:?}"
        );
    }
    Ok(())
}

#[test]
fn top_k_keeps_ties_and_handles_edge_sizes() -> TestResult {
    for (k, kept) in [
        (0, [true, true, true, true]),
        (1, [false, true, true, false]),
        (2, [false, true, true, false]),
        (3, [false, true, true, true]),
        (4, [true, true, true, true]),
        (10, [true, true, true, true]),
    ] {
        let mut row = [1.0f32, 3.0, 3.0, 2.0];
        filter_top_k(&mut row, k)?;
        assert_eq!(row.map(f32::is_finite), kept, "k={k}");
    }
    // V = 1: every filter keeps the only token, and sampling returns it for any u.
    let mut one = [0.25f32];
    filter_top_k(&mut one, 1)?;
    filter_top_p_hf(&mut one, 1e-6)?;
    filter_top_p_var(&mut one, 1e-6)?;
    assert_eq!(one, [0.25]);
    let cfg = SamplingConfig::llamagen(0.5, 3, 0.1);
    assert_eq!(sample_row(&one, &cfg, 0.999_999)?, 0);
    Ok(())
}

#[test]
fn no_filtered_token_is_ever_drawn() -> TestResult {
    const V: usize = 200;
    const ROWS: usize = 1500;
    let mut rng = SeededRng::new(51);
    // Distinct rows with ties (quarter-integer grid) and a few pre-masked tokens.
    let data: Vec<f32> = (0..ROWS * V)
        .map(|i| {
            if i % 37 == 5 {
                NEG_INF
            } else {
                (rng.normal_f32() * 8.0).round() * 0.25
            }
        })
        .collect();
    let tensor = Tensor::from_vec(data.clone(), &[ROWS, V])?;
    for cfg in [
        SamplingConfig::llamagen(1.0, 10, 1.0),
        SamplingConfig::llamagen(0.6, 0, 0.3),
        SamplingConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.3,
            rule: TopPRule::Var,
        },
        SamplingConfig::var(25, 0.8),
        SamplingConfig::llamagen(1.0, 0, 1e-6),
    ] {
        let tokens = sample_rows(&tensor, &cfg, &mut rng)?;
        for (r, &t) in tokens.iter().enumerate() {
            let row = &data[r * V..(r + 1) * V];
            let allowed = ref_filter(row, &cfg);
            assert!(
                allowed[t as usize].is_finite(),
                "{cfg:?}: row {r} drew filtered token {t}"
            );
            if r % 10 == 0 {
                let g = gumbel_max_row(row, &cfg, &mut rng)?;
                assert!(
                    allowed[g].is_finite(),
                    "{cfg:?}: Gumbel drew filtered token {g}"
                );
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Inverse CDF, softmax, guidance
// ---------------------------------------------------------------------------------------------

#[test]
fn sample_from_uniform_edges_and_property() -> TestResult {
    let below_one = 1.0 - f64::EPSILON / 2.0; // largest f64 < 1
    assert_eq!(sample_from_uniform(&[0.0, 0.0, 1.0], 0.0)?, 2);
    assert_eq!(sample_from_uniform(&[0.1, 0.2, 0.7, 0.0], below_one)?, 2);
    assert_eq!(sample_from_uniform(&[0.0, 0.3, 0.0, 0.7, 0.0], 0.0)?, 1);
    assert_eq!(sample_from_uniform(&[0.0, 0.3, 0.0, 0.7, 0.0], 0.3)?, 3);
    assert_eq!(
        sample_from_uniform(&[0.0, 0.3, 0.0, 0.7, 0.0], below_one)?,
        3
    );
    // Unnormalised weights: 2 : 6, boundary at u = 0.25.
    assert_eq!(sample_from_uniform(&[2.0, 6.0], 0.2499)?, 0);
    assert_eq!(sample_from_uniform(&[2.0, 6.0], 0.25)?, 1);
    // Weights whose sum is not representable: u·total may round up to total.
    assert_eq!(
        sample_from_uniform(&[0.1, 0.1, 0.1, 0.0, 0.0], below_one)?,
        2
    );

    // Property: the result has positive weight and its cumulative interval holds u·total
    // (or, when rounding pushes u·total to the end, it is the last positive index).
    let mut rng = SeededRng::new(61);
    for case in 0..3000 {
        let n = 1 + rng.below(12) as usize;
        let w: Vec<f64> = (0..n)
            .map(|_| {
                if rng.below(3) == 0 {
                    0.0
                } else {
                    rng.uniform_f64() * 10f64.powi(rng.below(5) as i32 - 2)
                }
            })
            .collect();
        if w.iter().all(|&x| x == 0.0) {
            continue;
        }
        let u = match case % 4 {
            0 => 1.0 - (1 + rng.below(4)) as f64 * f64::EPSILON / 2.0,
            1 => 0.0,
            _ => rng.uniform_f64(),
        };
        let i = sample_from_uniform(&w, u)?;
        assert!(w[i] > 0.0, "zero-weight index {i} for {w:?}, u={u}");
        let total: f64 = w.iter().sum();
        let before: f64 = w[..i].iter().sum();
        let through: f64 = w[..=i].iter().sum();
        let last_positive = w.iter().rposition(|&x| x > 0.0) == Some(i);
        assert!(before <= u * total, "{w:?} u={u} -> {i}");
        assert!(u * total < through || last_positive, "{w:?} u={u} -> {i}");
    }
    Ok(())
}

#[test]
fn softmax_f64_handles_neg_inf_and_extremes() -> TestResult {
    assert_eq!(softmax_f64(&[0.0, 0.0, NEG_INF])?, vec![0.5, 0.5, 0.0]);
    assert_eq!(softmax_f64(&[1000.0, 1000.0])?, vec![0.5, 0.5]);
    let p = softmax_f64(&[-1000.0, 0.0, 3.0e38])?;
    assert_eq!(p, vec![0.0, 0.0, 1.0]);
    let p = softmax_f64(&[-50.0, 0.0])?;
    assert!((p[0] - (-50f64).exp() / (1.0 + (-50f64).exp())).abs() < 1e-30);
    Ok(())
}

#[test]
fn cfg_mix_matches_official_formulas() -> TestResult {
    let cond = [1.0f32, 2.0, -3.0, 0.1];
    let uncond = [0.5f32, 2.0, 1.0, -0.7];
    // LlamaGen: u + (c − u)·s; VAR: (1 + t)·c − t·u.
    let lg = cfg_mix(&cond, &uncond, 4.0, CfgForm::LlamaGen)?;
    let var = cfg_mix(&cond, &uncond, 3.0, CfgForm::Var)?;
    for i in 0..4 {
        let (c, u) = (f64::from(cond[i]), f64::from(uncond[i]));
        assert!(
            (f64::from(lg[i]) - (u + (c - u) * 4.0)).abs() < 1e-5,
            "{lg:?}"
        );
        assert!(
            (f64::from(var[i]) - (4.0 * c - 3.0 * u)).abs() < 1e-5,
            "{var:?}"
        );
    }
    assert_eq!(&lg[..3], &[2.5, 2.0, -15.0]);
    assert_eq!(&var[..3], &[2.5, 2.0, -15.0]);
    // No guidance gives back the conditional logits: exactly for VAR's (1 + 0)·c − 0·u, up to
    // the rounding of u + (c − u) for LlamaGen's form (as in the f32 reference).
    assert_eq!(cfg_mix(&cond, &uncond, 0.0, CfgForm::Var)?, cond);
    let lg1 = cfg_mix(&cond, &uncond, 1.0, CfgForm::LlamaGen)?;
    for (a, c) in lg1.iter().zip(cond) {
        assert!(
            (a - c).abs() <= 4.0 * f32::EPSILON * c.abs().max(1.0),
            "{lg1:?}"
        );
    }
    // Stacked [2B, V] batch, cond rows first.
    let stacked = Tensor::from_vec([cond, uncond].concat(), &[2, 1, 4])?;
    let mixed = cfg_mix_stacked(&stacked, 4.0, CfgForm::LlamaGen)?;
    assert_eq!(mixed.shape(), &[1, 1, 4]);
    assert_eq!(mixed.to_vec(), lg);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Determinism and documented draw order
// ---------------------------------------------------------------------------------------------

#[test]
fn same_seed_same_tokens_different_seed_differs() -> TestResult {
    let mut data_rng = SeededRng::new(71);
    let tensor = Tensor::from_vec(random_row(&mut data_rng, 64 * 50, 1.0), &[64, 50])?;
    let cfg = SamplingConfig::llamagen(0.9, 20, 0.95);
    let a = sample_rows(&tensor, &cfg, &mut SeededRng::new(1))?;
    let b = sample_rows(&tensor, &cfg, &mut SeededRng::new(1))?;
    let c = sample_rows(&tensor, &cfg, &mut SeededRng::new(2))?;
    assert_eq!(a, b);
    assert_ne!(a, c);

    let row = random_row(&mut data_rng, 50, 1.0);
    let g = |seed| -> arvis_core::Result<Vec<usize>> {
        let mut rng = SeededRng::new(seed);
        (0..64)
            .map(|_| gumbel_max_row(&row, &cfg, &mut rng))
            .collect()
    };
    assert_eq!(g(1)?, g(1)?);
    assert_ne!(g(1)?, g(2)?);
    Ok(())
}

#[test]
fn sample_rows_takes_one_uniform_per_row_in_row_order() -> TestResult {
    let mut data_rng = SeededRng::new(72);
    let (rows, v) = (3 * 7, 33);
    let data = random_row(&mut data_rng, rows * v, 2.0);
    let tensor = Tensor::from_vec(data.clone(), &[3, 7, v])?;
    for cfg in [SamplingConfig::default(), SamplingConfig::var(10, 0.7)] {
        let mut rng = SeededRng::new(5);
        let mut manual = rng.clone();
        let tokens = sample_rows(&tensor, &cfg, &mut rng)?;
        let want: Vec<u32> = data
            .chunks(v)
            .map(|row| sample_row(row, &cfg, manual.uniform_f64()).map(|t| t as u32))
            .collect::<arvis_core::Result<_>>()?;
        assert_eq!(tokens, want);
        assert_eq!(rng.next_u64(), manual.next_u64(), "stream position differs");
    }
    // Zero rows: no draw.
    let mut rng = SeededRng::new(5);
    assert!(
        sample_rows(
            &Tensor::zeros(&[0, 4]),
            &SamplingConfig::default(),
            &mut rng
        )?
        .is_empty()
    );
    assert_eq!(rng.next_u64(), SeededRng::new(5).next_u64());
    Ok(())
}

#[test]
fn gumbel_max_row_takes_one_gumbel_per_entry_in_index_order() -> TestResult {
    let mut data_rng = SeededRng::new(73);
    let mut row = random_row(&mut data_rng, 40, 1.0);
    row[7] = NEG_INF;
    let cfg = SamplingConfig::llamagen(0.8, 10, 1.0);
    let filtered = ref_filter(&row, &cfg);
    let mut rng = SeededRng::new(9);
    let mut manual = rng.clone();
    for _ in 0..200 {
        let got = gumbel_max_row(&row, &cfg, &mut rng)?;
        let g: Vec<f64> = (0..row.len()).map(|_| manual.gumbel_f64()).collect();
        let mut best = (usize::MAX, f64::NEG_INFINITY);
        for (i, (&x, &gi)) in filtered.iter().zip(&g).enumerate() {
            if x.is_finite() && f64::from(x) + gi > best.1 {
                best = (i, f64::from(x) + gi);
            }
        }
        assert_eq!(got, best.0);
    }
    assert_eq!(rng.next_u64(), manual.next_u64(), "stream position differs");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Errors and temperature handling
// ---------------------------------------------------------------------------------------------

fn is_arg<T: std::fmt::Debug>(r: arvis_core::Result<T>) -> bool {
    matches!(r, Err(Error::Arg { .. }))
}

#[test]
fn invalid_inputs_are_errors_not_panics() -> TestResult {
    let cfg = SamplingConfig::default();
    for bad in [
        &[][..],
        &[NEG_INF, NEG_INF],
        &[0.0, f32::NAN],
        &[0.0, f32::INFINITY],
    ] {
        assert!(is_arg(sample_row(bad, &cfg, 0.5)), "{bad:?}");
        assert!(is_arg(softmax_f64(bad)), "{bad:?}");
        assert!(is_arg(filter_top_k(&mut bad.to_vec(), 1)), "{bad:?}");
        assert!(is_arg(filter_top_p_hf(&mut bad.to_vec(), 0.5)), "{bad:?}");
        assert!(is_arg(filter_top_p_var(&mut bad.to_vec(), 0.5)), "{bad:?}");
        assert!(
            is_arg(gumbel_max_row(bad, &cfg, &mut SeededRng::new(0))),
            "{bad:?}"
        );
    }
    let row = [0.0f32, 1.0, 2.0];
    for p in [0.0f32, -0.1, 1.5, f32::NAN] {
        for rule in [TopPRule::HuggingFace, TopPRule::Var] {
            let c = SamplingConfig {
                top_p: p,
                rule,
                ..cfg
            };
            assert!(is_arg(c.validate()), "top_p {p}");
            assert!(is_arg(sample_row(&row, &c, 0.5)), "top_p {p}");
            assert!(
                is_arg(filter_top_p(&mut row.to_vec(), p, rule)),
                "top_p {p}"
            );
        }
    }
    for t in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
        assert!(is_arg(sample_row(
            &row,
            &SamplingConfig {
                temperature: t,
                ..SamplingConfig::var(0, 1.0)
            },
            0.5
        )));
    }
    for t in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert!(is_arg(sample_row(
            &row,
            &SamplingConfig::llamagen(t, 0, 1.0),
            0.5
        )));
    }
    // Logits that overflow when divided by the clamped temperature.
    assert!(is_arg(sample_row(
        &[3.0e38, 0.0],
        &SamplingConfig::llamagen(0.0, 0, 1.0),
        0.5
    )));
    for u in [1.0, -0.1, f64::NAN, 2.0] {
        assert!(is_arg(sample_row(&row, &cfg, u)), "u {u}");
        assert!(is_arg(sample_from_uniform(&[0.5, 0.5], u)), "u {u}");
    }
    for w in [
        &[][..],
        &[0.0, 0.0],
        &[0.5, -0.1],
        &[f64::NAN, 1.0],
        &[f64::INFINITY, 1.0],
        &[f64::MAX, f64::MAX],
    ] {
        assert!(is_arg(sample_from_uniform(w, 0.5)), "{w:?}");
    }

    // Tensor shapes.
    let mut rng = SeededRng::new(0);
    assert!(matches!(
        sample_rows(&Tensor::scalar(1.0), &cfg, &mut rng),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        sample_rows(&Tensor::zeros(&[3, 0]), &cfg, &mut rng),
        Err(Error::Shape { .. })
    ));
    let bad_cfg = SamplingConfig { top_p: 0.0, ..cfg };
    assert!(is_arg(sample_rows(
        &Tensor::zeros(&[2, 3]),
        &bad_cfg,
        &mut rng
    )));
    assert_eq!(
        rng.next_u64(),
        SeededRng::new(0).next_u64(),
        "rejected input consumed draws"
    );
    let with_nan = Tensor::from_vec(vec![0.0, 1.0, 0.0, f32::NAN, 1.0, 2.0], &[3, 2])?;
    match sample_rows(&with_nan, &cfg, &mut rng) {
        Err(Error::Arg { msg, .. }) => assert!(msg.contains("row 1"), "{msg}"),
        other => panic!("expected an Arg error, got {other:?}"),
    }

    // Guidance.
    assert!(matches!(
        cfg_mix(&[1.0, 2.0], &[1.0], 2.0, CfgForm::Var),
        Err(Error::Shape { .. })
    ));
    assert!(is_arg(cfg_mix(&[1.0], &[1.0], f32::NAN, CfgForm::LlamaGen)));
    assert!(cfg_mix_stacked(&Tensor::zeros(&[3, 4]), 2.0, CfgForm::LlamaGen).is_err());
    assert!(cfg_mix_stacked(&Tensor::scalar(0.0), 2.0, CfgForm::LlamaGen).is_err());
    Ok(())
}

#[test]
fn hf_temperature_clamps_to_near_greedy() -> TestResult {
    // Gap 0.001 / 1e-5 = 100 nats: the runner-up has mass e^-100, far below one ulp of 1.
    let row = [0.5f32, 2.0, 1.0, 1.999];
    for t in [0.0f32, -3.0, 1e-9] {
        let cfg = SamplingConfig::llamagen(t, 0, 1.0);
        assert_eq!(cfg.effective_temperature()?, 1e-5);
        for u in [0.0, 0.3, 0.999, 1.0 - f64::EPSILON / 2.0] {
            assert_eq!(sample_row(&row, &cfg, u)?, 1, "T={t} u={u}");
        }
        assert_eq!(gumbel_max_row(&row, &cfg, &mut SeededRng::new(3))?, 1);
    }
    // VAR has no temperature: 1.0 leaves the logits untouched.
    let mut same = row;
    filter_row(&mut same, &SamplingConfig::var(0, 1.0))?;
    assert_eq!(same, row);
    Ok(())
}
