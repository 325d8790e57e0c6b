//! Whole-sampler exactness: 2·10⁵ sequences (10⁵ calls × B = 2 rows with different classes)
//! from a table-driven AR model behind the real trait, χ² against the exact joint; the same
//! test must reject deliberately broken samplers and the lossy ones.

mod common;

use std::sync::Arc;
use std::time::Instant;

use arvis_core::sampling::SamplingConfig;
use arvis_spec::decode::Fault;
use arvis_spec::jacobi::jacobi_decode;
use arvis_spec::{
    Acceptance, DecodeConfig, DecodeOutput, DraftInit, Embeddings, GroupedRule, JacobiDrafter,
    LanternRule, ModelDrafter, NeighbourTable, NgramDrafter, Result, SjdConfig, plain_decode,
    speculative_decode,
};
use common::{TableModel, chi2_pvalue};

const V: usize = 4;
const N: usize = 4;
const CALLS: usize = 100_000;
const ALPHA: f64 = 1e-6;

fn target() -> TableModel {
    // Guidance 2, temperature 0.9, top-k 3: the processed p has zeros, like a real request.
    TableModel::new(V, N, vec![0, 1], 11).processed(2.0, SamplingConfig::llamagen(0.9, 3, 1.0))
}

fn draft() -> TableModel {
    TableModel::new(V, N, vec![0, 1], 12).processed(1.0, SamplingConfig::llamagen(1.3, 0, 1.0))
}

/// Runs `sample` for seeds `0..CALLS` and returns the smaller χ² p-value of the two rows.
fn chi2_of(
    name: &str,
    mut sample: impl FnMut(&mut TableModel, u64) -> Result<DecodeOutput>,
) -> Result<f64> {
    let t0 = Instant::now();
    let mut model = target();
    let mut counts = vec![vec![0u64; V.pow(N as u32)]; 2];
    let mut tokens_per_forward = 0.0;
    for seed in 0..CALLS as u64 {
        let out = sample(&mut model, seed)?;
        for (r, row) in out.tokens.iter().enumerate() {
            counts[r][model.index(row)] += 1;
        }
        tokens_per_forward += out.stats.tokens_per_forward();
    }
    let mut p_min: f64 = 1.0;
    for (r, class) in [0u64, 1].into_iter().enumerate() {
        let joint = model.joint(class)?;
        p_min = p_min.min(chi2_pvalue(&counts[r], &joint, CALLS as u64));
    }
    eprintln!(
        "{name}: min p = {p_min:.3e}, tokens/forward {:.3}, {:.2?}",
        tokens_per_forward / CALLS as f64,
        t0.elapsed()
    );
    Ok(p_min)
}

fn sd(gamma: usize, fault: Fault) -> impl FnMut(&mut TableModel, u64) -> Result<DecodeOutput> {
    let mut drafter = ModelDrafter::new(draft());
    move |m, seed| {
        let cfg = DecodeConfig {
            drafts: gamma,
            acceptance: Acceptance::Exact,
            fault,
        };
        speculative_decode(m, &mut drafter, &cfg, seed)
    }
}

fn sjd(
    window: usize,
    init: DraftInit,
    acceptance: Acceptance,
    fault: Fault,
) -> impl FnMut(&mut TableModel, u64) -> Result<DecodeOutput> {
    let mut drafter = JacobiDrafter::new(init);
    move |m, seed| {
        let cfg = DecodeConfig {
            drafts: window - 1,
            acceptance: acceptance.clone(),
            fault,
        };
        speculative_decode(m, &mut drafter, &cfg, seed)
    }
}

#[test]
fn harness_accepts_plain_decoding() -> Result<()> {
    assert!(chi2_of("plain", plain_decode::<TableModel>)? > ALPHA);
    Ok(())
}

#[test]
fn speculative_sampling_is_exact() -> Result<()> {
    // γ = 1 and 2 leave room for bonus tokens inside N = 4; γ = 8 is clamped by the sequence
    // end (and so gives γ = 2's draws).
    assert!(chi2_of("sd γ=1", sd(1, Fault::None))? > ALPHA);
    assert!(chi2_of("sd γ=8", sd(8, Fault::None))? > ALPHA);
    Ok(())
}

#[test]
fn sjd_is_exact() -> Result<()> {
    let ex = Acceptance::Exact;
    assert!(
        chi2_of(
            "sjd random L=2",
            sjd(2, DraftInit::Random, ex.clone(), Fault::None)
        )? > ALPHA
    );
    let left = DraftInit::LeftNeighbour { width: 2 };
    assert!(chi2_of("sjd left L=3", sjd(3, left, ex, Fault::None))? > ALPHA);
    // Model-free one-hot drafters in the same loop: n-gram lookup with a random fallback.
    let mut ngram = NgramDrafter {
        n: 1,
        fallback: DraftInit::Random,
    };
    let cfg = DecodeConfig::exact(2);
    assert!(chi2_of("ngram", |m, s| speculative_decode(m, &mut ngram, &cfg, s))? > ALPHA);
    // The public entry point with the defaults (window 16, random initialisation).
    let cfg = SjdConfig::default();
    assert!(
        chi2_of("sjd_decode", |m, s| jacobi_decode(
            m,
            &cfg,
            Acceptance::Exact,
            s
        ))? > ALPHA
    );
    Ok(())
}

#[test]
fn broken_samplers_fail_the_test() -> Result<()> {
    let ex = Acceptance::Exact;
    for fault in [Fault::ResidualFromTarget, Fault::OffByOne] {
        let p = chi2_of(&format!("sd {fault:?}"), sd(2, fault))?;
        assert!(p < ALPHA, "{fault:?} in SD passed the χ² test (p = {p})");
        let p = chi2_of(
            &format!("sjd {fault:?}"),
            sjd(16, DraftInit::Random, ex.clone(), fault),
        )?;
        assert!(p < ALPHA, "{fault:?} in SJD passed the χ² test (p = {p})");
    }
    Ok(())
}

/// Embeddings on a line, 0.5 apart: neighbours in id are neighbours in space.
fn line_embeddings() -> Result<Arc<Embeddings>> {
    Ok(Arc::new(Embeddings::new(
        V,
        1,
        (0..V).map(|i| 0.5 * i as f32).collect(),
    )?))
}

#[test]
fn gsd_is_lossy_and_fails_the_test() -> Result<()> {
    // The reference defaults (G = 14, δ_p = 0.15, d = 0.5): squared distance 0.25 between
    // id-neighbours keeps them in the group.
    let rule = GroupedRule::default().with_embeddings(line_embeddings()?);
    let p = chi2_of(
        "gsd defaults",
        sjd(
            16,
            DraftInit::Random,
            Acceptance::Grouped(rule),
            Fault::None,
        ),
    )?;
    assert!(p < ALPHA, "GSD passed the exactness test (p = {p})");
    Ok(())
}

#[test]
fn lantern_is_lossy_and_fails_the_test() -> Result<()> {
    let table = Arc::new(NeighbourTable::from_embeddings(&*line_embeddings()?, 1000)?);
    // The reference defaults k = 1000 (clamped to V − 1), δ = 0.1, with a draft model.
    let rule = LanternRule::new(table);
    let mut drafter = ModelDrafter::new(draft());
    let cfg = DecodeConfig {
        drafts: 2,
        acceptance: Acceptance::Lantern(rule),
        fault: Fault::None,
    };
    let p = chi2_of("lantern δ=0.1", |m, s| {
        speculative_decode(m, &mut drafter, &cfg, s)
    })?;
    assert!(p < ALPHA, "LANTERN passed the exactness test (p = {p})");
    Ok(())
}
