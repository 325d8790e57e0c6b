//! LlamaGen under the speculative samplers (`arvis-spec`) on tiny random models: the window
//! forward equals token-by-token decoding and teacher forcing, rollback passes the spec crate's
//! conformance check, plain decoding through the trait reproduces `LlamaGen::generate`, greedy
//! SJD and draft-model speculative sampling reproduce plain greedy decoding token for token, and
//! the lossy samplers run.

mod common;

use std::sync::Arc;

use arvis_core::sampling::SamplingConfig;
use arvis_core::{SeededRng, Tolerance};
use arvis_models::llamagen::{
    LLAMAGEN_SAMPLING_STREAM, LlamaGen, LlamaGenConfig, LlamaGenVq, LlamaGenVqConfig,
    codebook_embeddings,
};
use arvis_spec::conformance::rollback_discrepancy;
use arvis_spec::jacobi::{jacobi_decode, sjd_decode};
use arvis_spec::speculative::speculative_sampling;
use arvis_spec::{
    Acceptance, Dists, DraftInit, GroupedRule, LanternRule, ModelDrafter, NeighbourTable,
    SjdConfig, SpecModel, plain_decode, plain_decode_with,
};
use common::TestResult;

const V: usize = 48;
const N: usize = 16;

fn tiny(n_layer: usize) -> LlamaGenConfig {
    LlamaGenConfig {
        dim: 64,
        n_layer,
        n_head: 2,
        vocab_size: V,
        block_size: N,
        num_classes: 10,
        ..LlamaGenConfig::gpt_b()
    }
}

fn tokens(rng: &mut SeededRng, count: usize) -> Vec<u32> {
    (0..count).map(|_| rng.below(V as u64) as u32).collect()
}

#[test]
fn window_forward_equals_token_by_token_and_teacher_forcing() -> TestResult {
    let gpt = LlamaGen::random(&tiny(2), 5)?;
    let labels = [3, 7];
    let b = labels.len();
    let sampling = SamplingConfig::llamagen(1.0, 0, 1.0);
    let tol = Tolerance::new(1e-4, 1e-5);
    let mut rng = SeededRng::new(1);
    let seq: Vec<Vec<u32>> = (0..b).map(|_| tokens(&mut rng, N)).collect();
    for cfg in [1.0, 3.0] {
        // Prefix of 3 tokens one by one, then a window of 9 in one pass.
        let (lp, w) = (3, 9);
        let cols = |from: usize, to: usize| -> Vec<u32> {
            seq.iter()
                .flat_map(|r| r[from..to].iter().copied())
                .collect()
        };
        let mut windowed = gpt.spec_model(&labels, cfg, &sampling)?;
        windowed.start_logits()?;
        for t in 0..lp {
            windowed.forward_logits(&cols(t, t + 1), 1)?;
        }
        let win = windowed.forward_logits(&cols(lp, lp + w), w)?;
        assert_eq!(win.shape(), &[b, w, V]);
        let mut stepped = gpt.spec_model(&labels, cfg, &sampling)?;
        stepped.start_logits()?;
        for t in 0..lp {
            stepped.forward_logits(&cols(t, t + 1), 1)?;
        }
        for j in 0..w {
            let step = stepped.forward_logits(&cols(lp + j, lp + j + 1), 1)?;
            let got = win.narrow(1, j, 1)?;
            tol.check(&got.to_vec(), &step.to_vec())
                .map_err(|m| format!("cfg {cfg}, slot {j}: {m}"))?;
        }
        if cfg <= 1.0 {
            // Unguided: the window's logits are the conditional model's, which teacher forcing
            // computes on the whole sequence at once (an independent causal path).
            let teacher = gpt.forward_teacher(&labels, &seq)?;
            let want = teacher.narrow(1, lp + 1, w)?;
            tol.check(&win.to_vec(), &want.to_vec())
                .map_err(|m| format!("teacher forcing: {m}"))?;
        }
    }
    Ok(())
}

/// Ignores rollback (reports the shorter length but keeps feeding after the junk): the
/// conformance check must catch it.
struct NoRollback<M> {
    inner: M,
    hidden: usize,
}

impl<M: SpecModel> SpecModel for NoRollback<M> {
    fn rows(&self) -> usize {
        self.inner.rows()
    }
    fn vocab(&self) -> usize {
        self.inner.vocab()
    }
    fn seq_len(&self) -> usize {
        self.inner.seq_len()
    }
    fn cached(&self) -> usize {
        self.inner.cached() - self.hidden
    }
    fn start(&mut self) -> arvis_spec::Result<Dists> {
        self.hidden = 0;
        self.inner.start()
    }
    fn forward(&mut self, tokens: &[u32], width: usize) -> arvis_spec::Result<Dists> {
        self.inner.forward(tokens, width)
    }
    fn rollback(&mut self, len: usize) -> arvis_spec::Result<()> {
        self.hidden = self.inner.cached() - len;
        Ok(())
    }
}

#[test]
fn rollback_passes_the_conformance_check() -> TestResult {
    let gpt = LlamaGen::random(&tiny(2), 6)?;
    let labels = [1, 4, 9];
    let b = labels.len();
    let sampling = SamplingConfig::llamagen(1.0, 0, 1.0);
    let mut rng = SeededRng::new(2);
    let mut worst_broken: f64 = 0.0;
    for cfg in [1.0, 2.5] {
        for (lp, lj, ln) in [(1, 3, 2), (4, 1, 5), (2, 6, 1), (7, 0, 3)] {
            let (p, j, n) = (
                tokens(&mut rng, b * lp),
                tokens(&mut rng, b * lj),
                tokens(&mut rng, b * ln),
            );
            let mut model = gpt.spec_model(&labels, cfg, &sampling)?;
            let d = rollback_discrepancy(&mut model, &p, &j, &n)?;
            assert!(d <= 1e-6, "cfg {cfg}, ({lp}, {lj}, {ln}): {d}");
            if lj > 0 {
                let mut broken = NoRollback {
                    inner: gpt.spec_model(&labels, cfg, &sampling)?,
                    hidden: 0,
                };
                worst_broken = worst_broken.max(rollback_discrepancy(&mut broken, &p, &j, &n)?);
            }
        }
    }
    assert!(
        worst_broken > 1e-3,
        "the check did not catch a missing rollback ({worst_broken})"
    );
    Ok(())
}

#[test]
fn plain_decoding_through_the_trait_reproduces_generate() -> TestResult {
    let gpt = LlamaGen::random(&tiny(2), 7)?;
    let labels = [2, 0, 5];
    for (cfg, sampling) in [
        (4.0, SamplingConfig::llamagen(1.0, 10, 0.95)),
        (1.0, SamplingConfig::llamagen(0.7, 0, 1.0)),
    ] {
        for seed in [0, 11] {
            let want = gpt.generate(&labels, cfg, &sampling, seed)?;
            let mut model = gpt.spec_model(&labels, cfg, &sampling)?;
            let mut stream = SeededRng::new(seed).fork(LLAMAGEN_SAMPLING_STREAM);
            let got = plain_decode_with(&mut model, &mut stream)?;
            assert_eq!(got.tokens, want.tokens, "cfg {cfg}, seed {seed}");
            assert_eq!(got.stats.target_forwards, N);
        }
    }
    Ok(())
}

#[test]
fn greedy_sjd_and_draft_model_sd_match_plain_greedy() -> TestResult {
    let target_gpt = LlamaGen::random(&tiny(2), 8)?;
    let other_gpt = LlamaGen::random(&tiny(1), 9)?;
    let labels = [6, 2];
    let greedy = SamplingConfig::llamagen(0.0, 0, 1.0);
    let cfg = 3.0;
    let mut target = target_gpt.spec_model(&labels, cfg, &greedy)?;
    let plain = plain_decode(&mut target, 0)?;
    for window in [2, 5, 16] {
        for init in [DraftInit::Random, DraftInit::LeftNeighbour { width: 4 }] {
            let out = sjd_decode(&mut target, &SjdConfig { window, init }, 3)?;
            assert_eq!(out.tokens, plain.tokens, "SJD window {window}, {init:?}");
            assert!(out.stats.target_forwards <= N);
            // Random weights make the argmax sensitive to every earlier token, so Jacobi drafts
            // rarely survive: these runs check the residual path; the self-draft run below
            // verifies full windows.
        }
    }
    // The target itself as a greedy draft accepts everything: every window is verified in full.
    let mut self_draft = ModelDrafter::new(target_gpt.spec_model(&labels, cfg, &greedy)?);
    let out = speculative_sampling(&mut target, &mut self_draft, 4, 1)?;
    assert_eq!(out.tokens, plain.tokens, "SD with the target as draft");
    assert!(out.stats.mean_accepted_len() > 4.0, "{:?}", out.stats);
    // A different (sampling, temperature 1) draft model: mostly rejected, still exact.
    let mut other = ModelDrafter::new(other_gpt.spec_model(
        &labels,
        cfg,
        &SamplingConfig::llamagen(1.0, 0, 1.0),
    )?);
    for gamma in [1, 3, 7] {
        let out = speculative_sampling(&mut target, &mut other, gamma, 2)?;
        assert_eq!(out.tokens, plain.tokens, "SD γ = {gamma}");
        assert!(out.stats.draft_forwards > 0);
    }
    Ok(())
}

#[test]
fn gsd_and_lantern_run_with_the_codebook_and_report_stats() -> TestResult {
    let gpt = LlamaGen::random(&tiny(2), 10)?;
    let vq_cfg = LlamaGenVqConfig {
        ch: 8,
        norm_groups: 4,
        codebook_size: V,
        encoder_ch_mult: vec![1, 2],
        decoder_ch_mult: vec![1, 2],
        z_channels: 16,
        ..LlamaGenVqConfig::vq16()
    };
    let vq = LlamaGenVq::random(&vq_cfg, 3)?;
    let emb = Arc::new(codebook_embeddings(&vq)?);
    assert_eq!((emb.vocab(), emb.dim()), (V, vq_cfg.codebook_embed_dim));
    // L2-normalised rows, as the tokenizer looks codes up.
    for i in 0..V {
        let norm: f32 = emb.get(i).iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "code {i}: norm {norm}");
    }
    let table = Arc::new(NeighbourTable::from_embeddings(&emb, 16)?);
    let labels = [1, 8];
    let sampling = SamplingConfig::llamagen(1.0, 0, 1.0);
    let mut model = gpt.spec_model(&labels, 4.0, &sampling)?;
    let rules = [
        Acceptance::Exact,
        Acceptance::Grouped(GroupedRule::default().with_embeddings(emb.clone())),
        Acceptance::Lantern(LanternRule {
            k: 16,
            delta: 0.3,
            neighbours: table,
        }),
    ];
    for rule in rules {
        let name = format!("{rule:?}").chars().take(12).collect::<String>();
        let out = jacobi_decode(&mut model, &SjdConfig::default(), rule, 4)?;
        let s = out.stats;
        assert_eq!(out.tokens.len(), 2);
        assert!(
            out.tokens
                .iter()
                .all(|r| r.len() == N && r.iter().all(|&t| (t as usize) < V))
        );
        assert_eq!((s.rows, s.tokens), (2, N), "{name}");
        assert_eq!(s.target_forwards, s.rounds + 1, "{name}");
        // Each round commits at least one token per row, and the first comes from the prefill.
        assert!(s.target_forwards <= N, "{name}: {s:?}");
        assert_eq!(s.rounds * 2 + s.drafts_committed, (N - 1) * 2, "{name}");
        assert!(s.drafts_passed <= s.drafts_tested, "{name}");
        eprintln!(
            "{name}: {} target forwards, τ = {:.2}, α = {:.2}",
            s.target_forwards,
            s.mean_accepted_len(),
            s.acceptance_rate()
        );
    }
    Ok(())
}

/// `−Σ ln softmax(logits)[x]` over the rows of `[T, V]` logits (f64 reference).
fn nll_of_logits(logits: &[f32], tokens: &[u32]) -> f64 {
    logits
        .chunks_exact(V)
        .zip(tokens)
        .map(|(row, &x)| {
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v)) as f64;
            let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            lse - row[x as usize] as f64
        })
        .sum()
}

#[test]
fn sequence_nll_matches_teacher_forcing_and_token_by_token_scores() -> TestResult {
    let gpt = LlamaGen::random(&tiny(2), 9)?;
    let labels = [1u32, 4];
    let mut rng = SeededRng::new(3);
    let seq: Vec<Vec<u32>> = labels.iter().map(|_| tokens(&mut rng, N)).collect();
    let close = |got: f64, want: f64| (got - want).abs() <= 1e-4 * want.abs() + 1e-4;
    // Unguided: the log-softmax of the teacher-forced logits (an independent forward).
    let teacher = gpt.forward_teacher(&labels, &seq)?.to_vec();
    let got = gpt.sequence_nll(&labels, 1.0, &seq)?;
    for (b, row) in seq.iter().enumerate() {
        let want = nll_of_logits(&teacher[b * N * V..(b + 1) * N * V], row);
        assert!(
            close(got[b], want),
            "row {b}: {} vs teacher forcing {want}",
            got[b]
        );
    }
    // Guided (the null-class rows inside): one token per forward through the cache, the
    // unfiltered guided distributions' log-probabilities summed here.
    let cfg = 3.0;
    let got = gpt.sequence_nll(&labels, cfg, &seq)?;
    let mut m = gpt.spec_model(&labels, cfg, &SamplingConfig::llamagen(1.0, 0, 1.0))?;
    let mut want = vec![0.0f64; labels.len()];
    let mut dists = m.start()?;
    for t in 0..N {
        for (b, row) in seq.iter().enumerate() {
            want[b] -= dists.get(b, 0)[row[t] as usize].ln();
        }
        if t + 1 < N {
            let col: Vec<u32> = seq.iter().map(|r| r[t]).collect();
            dists = m.forward(&col, 1)?;
        }
    }
    for b in 0..labels.len() {
        assert!(
            close(got[b], want[b]),
            "cfg {cfg} row {b}: {} vs {}",
            got[b],
            want[b]
        );
    }
    // Bad input: wrong row count, short row, token outside the vocabulary.
    assert!(gpt.sequence_nll(&labels, 1.0, &seq[..1]).is_err());
    let mut short = seq.clone();
    short[1].pop();
    assert!(gpt.sequence_nll(&labels, 1.0, &short).is_err());
    let mut outside = seq.clone();
    outside[0][5] = V as u32;
    assert!(gpt.sequence_nll(&labels, 1.0, &outside).is_err());
    Ok(())
}
