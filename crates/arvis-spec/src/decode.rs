//! The verification loop shared by every discrete sampler, and the plain decoder it is
//! measured against.
//!
//! # One round
//!
//! With `n` tokens committed per row (the cache holds the first `n − 1`):
//! 1. `g = min(drafts, N − 1 − n)` drafts per row from the [`Drafter`], for positions
//!    `n .. n + g`, each with the distribution `q` it was drawn from;
//! 2. one target forward over `[x_{n−1}, d_n, …, d_{n+g−1}]` gives `P_0 … P_g` (`P_j` is the
//!    target at position `n + j`);
//! 3. per row, draft `d_{n+j}` is accepted if `u < accept(P_j, q_j, d_{n+j})`, in position
//!    order, until the row's first rejection `a_b` (`a_b = g` if none);
//! 4. `m = min_b a_b` (all rows keep the same length because they share one KV-cache length,
//!    as the SJD reference does); every row commits `d_n … d_{n+m−1}` and one more token at
//!    `n + m`: the residual draw if the row rejected there, its accepted draft if it rejected
//!    later, or the bonus draw from `P_g` if `m = g`;
//! 5. the target rolls back to `n + m` cached tokens; the drafter observes the round.
//!
//! Truncating a row at another row's rejection keeps it exact: the other rows' outcomes are
//! independent of this row's tokens given the committed prefix, and each committed token is,
//! given its prefix, an accept-or-residual draw distributed as `P`.
//!
//! # Randomness
//!
//! `root = SeededRng::new(seed)`; verification uniforms come from
//! `root.fork(`[`VERIFY_STREAM`]`)`, the drafter's draws from `root.fork(`[`DRAFT_STREAM`]`)`.
//! Verification order: token 0 takes one `uniform_f64` per row (row order) and is drawn from
//! the prefill's distribution by inverse CDF, exactly as [`plain_decode`] draws it; then each
//! round takes `B·(g + 1)` uniforms before looking at any of them, row-major: row `b`'s `g`
//! acceptance uniforms (position order), then its emission uniform (residual or bonus draw,
//! unused if the row's token is an accepted draft).

use arvis_core::SeededRng;
use arvis_core::sampling::sample_from_uniform;

use crate::acceptance::Acceptance;
use crate::dist::Dists;
use crate::draft::{DraftContext, Drafter, Drafts, Verified};
use crate::error::{Result, SpecError};
use crate::model::SpecModel;
use crate::stats::SpecStats;

/// The [`SeededRng::fork`] stream of verification (and plain sampling) uniforms.
pub const VERIFY_STREAM: u64 = 0x5EC0_0001;
/// The [`SeededRng::fork`] stream handed to the drafter.
pub const DRAFT_STREAM: u64 = 0x5EC0_0002;

/// Deliberate mistakes, for the negative-control tests only (they prove the statistical test
/// can tell a wrong sampler from a right one). Never use outside tests.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// The correct sampler.
    #[default]
    None,
    /// Draws the replacement of a rejected draft from `p` instead of `norm((p − q)₊)`.
    ResidualFromTarget,
    /// Checks draft `j` against `P_{j+1}` (and draws its residual from it): the classic
    /// off-by-one between input and output positions.
    OffByOne,
}

/// Settings of the verification loop.
#[derive(Clone, Debug)]
pub struct DecodeConfig {
    /// Drafts per verification forward, `γ` (the forward has `γ + 1` inputs). SJD's window of
    /// 16 is `drafts = 15`.
    pub drafts: usize,
    /// The acceptance rule.
    pub acceptance: Acceptance,
    /// Negative-control switch; keep [`Fault::None`].
    #[doc(hidden)]
    pub fault: Fault,
}

impl DecodeConfig {
    /// `drafts` per forward with exact acceptance.
    pub fn exact(drafts: usize) -> Self {
        DecodeConfig {
            drafts,
            acceptance: Acceptance::Exact,
            fault: Fault::None,
        }
    }
}

/// Tokens and counters of one call.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeOutput {
    /// `B` rows of `N` tokens.
    pub tokens: Vec<Vec<u32>>,
    /// What it cost.
    pub stats: SpecStats,
}

/// Checks the model's basic shape and starts it; returns `(B, V, N, p_0)`.
fn start<M: SpecModel + ?Sized>(model: &mut M) -> Result<(usize, usize, usize, Dists)> {
    const OP: &str = "decode";
    let (b, v, n) = (model.rows(), model.vocab(), model.seq_len());
    if b == 0 || v == 0 || n == 0 {
        return Err(SpecError::arg(
            OP,
            format!("model with {b} rows, vocabulary {v}, length {n}"),
        ));
    }
    if u32::try_from(v - 1).is_err() {
        return Err(SpecError::arg(
            OP,
            format!("vocabulary {v} does not fit u32"),
        ));
    }
    let p0 = model.start()?;
    p0.expect_shape("SpecModel::start", b, 1, v)?;
    if model.cached() != 0 {
        return Err(SpecError::contract(
            "SpecModel::start",
            format!("cached() = {} after start", model.cached()),
        ));
    }
    Ok((b, v, n, p0))
}

/// Draws token 0 of every row from the prefill's distribution (one uniform per row).
fn first_tokens(p0: &Dists, rng: &mut SeededRng) -> Result<Vec<Vec<u32>>> {
    let us: Vec<f64> = (0..p0.rows()).map(|_| rng.uniform_f64()).collect();
    us.iter()
        .enumerate()
        .map(|(b, &u)| Ok(vec![sample_from_uniform(p0.get(b, 0), u)? as u32]))
        .collect()
}

/// Plain (non-speculative) decoding on the same trait: the baseline every exact sampler must
/// match in distribution (and, at temperature 0, token for token).
///
/// Draw order: one `uniform_f64` per row per token from `SeededRng::new(seed).fork(`
/// [`VERIFY_STREAM`]`)`, token 0 first, row 0 first within a token.
pub fn plain_decode<M: SpecModel + ?Sized>(model: &mut M, seed: u64) -> Result<DecodeOutput> {
    plain_decode_with(model, &mut SeededRng::new(seed).fork(VERIFY_STREAM))
}

/// [`plain_decode`] drawing from `rng` (one `uniform_f64` per row per token, token 0 first,
/// row 0 first). With LlamaGen's stream (`fork(LLAMAGEN_SAMPLING_STREAM)`) and a model whose
/// distributions are `softmax(filter_row(cfg_mix(logits)))`, this is the arithmetic and draw
/// order of `LlamaGen::generate`, so it reproduces its tokens (temperature > 0).
pub fn plain_decode_with<M: SpecModel + ?Sized>(
    model: &mut M,
    rng: &mut SeededRng,
) -> Result<DecodeOutput> {
    let (b, v, n, p0) = start(model)?;
    let mut tokens = first_tokens(&p0, rng)?;
    let mut stats = SpecStats {
        rows: b,
        target_forwards: 1,
        ..SpecStats::default()
    };
    while tokens[0].len() < n {
        let feed: Vec<u32> = tokens.iter().map(|r| r[r.len() - 1]).collect();
        let p = model.forward(&feed, 1)?;
        p.expect_shape("SpecModel::forward", b, 1, v)?;
        stats.target_forwards += 1;
        let us: Vec<f64> = (0..b).map(|_| rng.uniform_f64()).collect();
        for (r, row) in tokens.iter_mut().enumerate() {
            row.push(sample_from_uniform(p.get(r, 0), us[r])? as u32);
        }
    }
    stats.tokens = n;
    Ok(DecodeOutput { tokens, stats })
}

/// Speculative decoding of `model` with drafts from `drafter`, verified under `cfg` (see the
/// [module docs](self) for the round and the draw order). Exact when `cfg.acceptance` is
/// [`Acceptance::Exact`] and the drafter reports its true `q`.
pub fn speculative_decode<M: SpecModel + ?Sized, D: Drafter + ?Sized>(
    model: &mut M,
    drafter: &mut D,
    cfg: &DecodeConfig,
    seed: u64,
) -> Result<DecodeOutput> {
    let root = SeededRng::new(seed);
    speculative_decode_with(
        model,
        drafter,
        cfg,
        &mut root.fork(VERIFY_STREAM),
        &mut root.fork(DRAFT_STREAM),
    )
}

/// [`speculative_decode`] with explicit verification and draft streams (same draw order).
/// Token 0 uses `vrng` exactly as [`plain_decode_with`] does.
pub fn speculative_decode_with<M: SpecModel + ?Sized, D: Drafter + ?Sized>(
    model: &mut M,
    drafter: &mut D,
    cfg: &DecodeConfig,
    vrng: &mut SeededRng,
    drng: &mut SeededRng,
) -> Result<DecodeOutput> {
    drafter.reset();
    let draft_forwards_before = drafter.forwards();
    let (b, v, n_total, p0) = start(model)?;
    let mut tokens = first_tokens(&p0, vrng)?;
    let mut stats = SpecStats {
        rows: b,
        target_forwards: 1,
        ..SpecStats::default()
    };
    while tokens[0].len() < n_total {
        let n = tokens[0].len();
        let g = cfg.drafts.min(n_total - 1 - n);
        let drafts = if g > 0 {
            let ctx = DraftContext {
                committed: &tokens,
                vocab: v,
            };
            let d = drafter.propose(&ctx, g, drng)?;
            d.check(b, g, v)?;
            d
        } else {
            Drafts {
                tokens: vec![Vec::new(); b],
                q: vec![Vec::new(); b],
            }
        };
        if model.cached() != n - 1 {
            return Err(SpecError::contract(
                "SpecModel::cached",
                format!(
                    "{} cached tokens with {n} committed (expected {})",
                    model.cached(),
                    n - 1
                ),
            ));
        }
        let mut feed = Vec::with_capacity(b * (g + 1));
        for (row, d) in tokens.iter().zip(&drafts.tokens) {
            feed.push(row[n - 1]);
            feed.extend_from_slice(d);
        }
        let dists = model.forward(&feed, g + 1)?;
        dists.expect_shape("SpecModel::forward", b, g + 1, v)?;
        stats.target_forwards += 1;
        stats.rounds += 1;
        let us: Vec<f64> = (0..b * (g + 1)).map(|_| vrng.uniform_f64()).collect();

        // The slot whose distribution checks draft j (the fault shifts it by one).
        let slot = |j: usize| match cfg.fault {
            Fault::OffByOne => (j + 1).min(g),
            _ => j,
        };
        let mut first_reject = vec![g; b];
        for (r, fr) in first_reject.iter_mut().enumerate() {
            for j in 0..g {
                let x = drafts.tokens[r][j] as usize;
                let a = cfg
                    .acceptance
                    .accept_prob(dists.get(r, slot(j)), &drafts.q[r][j], x);
                stats.drafts_tested += 1;
                if us[r * (g + 1) + j] < a {
                    stats.drafts_passed += 1;
                } else {
                    *fr = j;
                    break;
                }
            }
        }
        let m = first_reject.iter().copied().min().unwrap_or(g);
        for (r, row) in tokens.iter_mut().enumerate() {
            row.extend_from_slice(&drafts.tokens[r][..m]);
            let u = us[r * (g + 1) + g];
            let token = if m == g {
                sample_from_uniform(dists.get(r, g), u)?
            } else if first_reject[r] > m {
                drafts.tokens[r][m] as usize
            } else {
                let p = dists.get(r, slot(m));
                let x = drafts.tokens[r][m] as usize;
                let w = match cfg.fault {
                    Fault::ResidualFromTarget => p.to_vec(),
                    _ => cfg.acceptance.residual(p, &drafts.q[r][m], x),
                };
                sample_from_uniform(&w, u)?
            };
            row.push(token as u32);
        }
        stats.drafts_committed += b * m;
        model.rollback(n + m)?;
        drafter.observe(
            &Verified {
                start: n,
                drafts: g,
                kept: m + 1,
                dists: &dists,
                committed: &tokens,
            },
            drng,
        )?;
    }
    stats.tokens = n_total;
    stats.draft_forwards = drafter.forwards() - draft_forwards_before;
    Ok(DecodeOutput { tokens, stats })
}
