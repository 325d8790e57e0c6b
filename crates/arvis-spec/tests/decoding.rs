//! Greedy equivalence, KV rollback, accounting and contract checks on the table model.

mod common;

use arvis_core::SeededRng;
use arvis_core::sampling::{SamplingConfig, sample_row};
use arvis_spec::conformance::rollback_discrepancy;
use arvis_spec::jacobi::sjd_decode;
use arvis_spec::speculative::speculative_sampling;
use arvis_spec::{
    DecodeConfig, DraftContext, DraftInit, DraftQ, Drafter, Drafts, JacobiDrafter, ModelDrafter,
    NgramDrafter, Result, SjdConfig, SpecError, plain_decode, plain_decode_with,
    speculative_decode, speculative_decode_with,
};
use common::TableModel;

fn greedy(v: usize, n: usize, classes: Vec<u64>, seed: u64) -> TableModel {
    TableModel::new(v, n, classes, seed).processed(3.0, SamplingConfig::llamagen(0.0, 0, 1.0))
}

#[test]
fn greedy_exact_samplers_match_plain_greedy_decoding() -> Result<()> {
    let (v, n) = (6, 12);
    let mut any_multi = false;
    for i in 0..40u64 {
        let classes = vec![2 * i, 2 * i + 1];
        let mut target = greedy(v, n, classes.clone(), 21);
        let plain = plain_decode(&mut target, i)?;
        // A greedy draft model that often agrees, and one that samples at temperature 1.
        for draft in [
            greedy(v, n, classes.clone(), 21 + (i % 2)),
            TableModel::new(v, n, classes.clone(), 99),
        ] {
            let mut drafter = ModelDrafter::new(draft);
            for gamma in [1, 3, 15] {
                let out = speculative_sampling(&mut target, &mut drafter, gamma, i)?;
                assert_eq!(out.tokens, plain.tokens, "SD γ={gamma}, seed {i}");
                any_multi |= out.stats.mean_accepted_len() > 1.0;
            }
        }
        for init in [DraftInit::Random, DraftInit::LeftNeighbour { width: 4 }] {
            for window in [2, 4, 16] {
                let out = sjd_decode(&mut target, &SjdConfig { window, init }, i)?;
                assert_eq!(
                    out.tokens, plain.tokens,
                    "SJD L={window} {init:?}, seed {i}"
                );
                any_multi |= out.stats.mean_accepted_len() > 1.0;
            }
        }
    }
    assert!(
        any_multi,
        "no round ever accepted a draft: windows were not exercised"
    );
    Ok(())
}

#[test]
fn rollback_gives_the_fresh_prefix_outputs() -> Result<()> {
    let mut rng = SeededRng::new(4);
    let (v, n, b) = (5, 10, 2);
    let mut model = TableModel::new(v, n, vec![3, 4], 1);
    let mut broken = model.clone();
    broken.broken_rollback = true;
    let mut worst_broken: f64 = 0.0;
    for _ in 0..50 {
        let lp = 1 + rng.below(4) as usize;
        let lj = rng.below(4) as usize;
        let ln = 1 + rng.below((n - 1 - lp) as u64 - 1) as usize;
        let mut toks =
            |l: usize| -> Vec<u32> { (0..b * l).map(|_| rng.below(v as u64) as u32).collect() };
        let (prefix, junk, next) = (toks(lp), toks(lj), toks(ln));
        assert_eq!(
            rollback_discrepancy(&mut model, &prefix, &junk, &next)?,
            0.0
        );
        worst_broken = worst_broken.max(rollback_discrepancy(&mut broken, &prefix, &junk, &next)?);
    }
    // The check has power: a rollback that keeps the wrong entries is caught.
    assert!(
        worst_broken > 1e-3,
        "broken rollback went unnoticed ({worst_broken})"
    );
    Ok(())
}

#[test]
fn stats_count_what_the_models_saw() -> Result<()> {
    let (v, n) = (4, 13);
    // Draft = target: every test passes, so each round commits γ + 1 tokens.
    let mut target = TableModel::new(v, n, vec![0, 1], 7);
    let mut drafter = ModelDrafter::new(TableModel::new(v, n, vec![0, 1], 7));
    let out = speculative_sampling(&mut target, &mut drafter, 3, 5)?;
    let s = out.stats;
    assert_eq!(s.target_forwards, target.forwards);
    assert_eq!(s.draft_forwards, drafter.model().forwards);
    assert_eq!(s.acceptance_rate(), 1.0);
    // 12 tokens after the first, 4 per round: 3 rounds, then the prefill.
    assert_eq!(s.rounds, 3);
    assert_eq!(s.target_forwards, 4);
    assert_eq!(s.mean_accepted_len(), 4.0);
    assert_eq!(s.tokens, n);

    // A different draft: per round, committed tokens per row sum to N − 1.
    let mut target = TableModel::new(v, n, vec![0, 1], 7);
    let mut drafter = ModelDrafter::new(TableModel::new(v, n, vec![0, 1], 8));
    for seed in 0..20 {
        let before = (target.forwards, drafter.model().forwards);
        let s = speculative_sampling(&mut target, &mut drafter, 4, seed)?.stats;
        assert_eq!(s.target_forwards, target.forwards - before.0);
        assert_eq!(s.draft_forwards, drafter.model().forwards - before.1);
        assert_eq!(s.drafts_committed / s.rows + s.rounds, n - 1);
        assert!(s.drafts_passed <= s.drafts_tested && s.drafts_committed <= s.drafts_passed);
        let m = SjdConfig::default();
        let s = sjd_decode(&mut target, &m, seed)?.stats;
        assert_eq!(s.draft_forwards, 0);
        assert!(s.tokens_per_forward() >= 12.0 / 13.0);
        assert_eq!(s.drafts_committed / s.rows + s.rounds, n - 1);
    }
    Ok(())
}

/// A drafter that breaks the contract (a token outside the vocabulary).
struct BadDrafter;

impl Drafter for BadDrafter {
    fn propose(&mut self, ctx: &DraftContext<'_>, k: usize, _: &mut SeededRng) -> Result<Drafts> {
        Ok(Drafts {
            tokens: vec![vec![ctx.vocab as u32; k]; ctx.committed.len()],
            q: vec![vec![DraftQ::OneHot; k]; ctx.committed.len()],
        })
    }
}

#[test]
fn contract_violations_are_errors() {
    let mut target = TableModel::new(4, 6, vec![0, 1], 7);
    let err = speculative_decode(&mut target, &mut BadDrafter, &DecodeConfig::exact(2), 0);
    assert!(matches!(err, Err(SpecError::Contract { .. })), "{err:?}");
    // A draft model with a different batch is refused.
    let mut drafter = ModelDrafter::new(TableModel::new(4, 6, vec![0], 7));
    let err = speculative_sampling(&mut target, &mut drafter, 2, 0);
    assert!(matches!(err, Err(SpecError::Arg { .. })), "{err:?}");
}

#[test]
fn ngram_lookup_finds_the_most_recent_match() {
    let d = NgramDrafter {
        n: 2,
        fallback: DraftInit::Random,
    };
    assert_eq!(d.lookup(&[1, 2, 3, 1, 2, 4, 1, 2]), Some(4));
    assert_eq!(d.lookup(&[1, 2, 3, 1, 2]), Some(3));
    assert_eq!(d.lookup(&[1, 2, 3]), None);
    assert_eq!(d.lookup(&[2, 2, 2]), Some(2));
}

#[test]
fn plain_decoding_is_sample_row_in_llamagen_draw_order() -> Result<()> {
    // The loop of `LlamaGen::generate`, written out with `sample_row` on the mixed logits:
    // one uniform per row per step from the stream, step 0 first.
    let cfg = SamplingConfig::llamagen(0.8, 3, 0.9);
    let mut model = TableModel::new(5, 6, vec![1, 2, 3], 31).processed(2.5, cfg);
    for seed in 0..30 {
        let stream = SeededRng::new(seed).fork(0x11A3_A6E7);
        let got = plain_decode_with(&mut model, &mut stream.clone())?;
        let mut rng = stream.clone();
        let mut want: Vec<Vec<u32>> = vec![Vec::new(); 3];
        for _ in 0..6 {
            let us: Vec<f64> = (0..3).map(|_| rng.uniform_f64()).collect();
            for (r, row) in want.iter_mut().enumerate() {
                let logits = model.logits(model.classes[r], model.code(row))?;
                row.push(sample_row(&logits, &cfg, us[r])? as u32);
            }
        }
        assert_eq!(got.tokens, want, "seed {seed}");
        // Speculative decoding draws token 0 exactly as plain decoding does.
        let mut drafter = JacobiDrafter::new(DraftInit::Random);
        let spec = speculative_decode_with(
            &mut model,
            &mut drafter,
            &DecodeConfig::exact(3),
            &mut stream.clone(),
            &mut SeededRng::new(1),
        )?;
        for (a, b) in spec.tokens.iter().zip(&want) {
            assert_eq!(a[0], b[0]);
        }
    }
    Ok(())
}
