//! Speculative Jacobi decoding (SJD; Teng et al., ICLR 2025,
//! `tyshiwo1/Accelerating-T2I-AR-with-SJD`). **Exact.**
//!
//! No draft model: the drafts are the model's own previous Jacobi iterate. After each
//! verification forward, every position after the committed ones gets a fresh token sampled
//! from that forward's target distribution there (conditioned on the partly wrong window), and
//! that distribution becomes its `q`; the window is refilled with [`DraftInit`] tokens whose `q`
//! is one-hot. Acceptance is `min(1, p_t(x)/q_{t−1}(x))` with the same residual as standard
//! speculative sampling, so the output is distributed as plain sampling's.
//!
//! The reference's window of 16 (`max_num_new_tokens`) is one committed token plus 15 drafts:
//! [`SjdConfig::window`] counts the forward's inputs. Batches commit the minimum accepted
//! length over the rows, as the reference does.

use arvis_core::SeededRng;
use arvis_core::sampling::sample_from_uniform;

use crate::acceptance::Acceptance;
use crate::decode::{DecodeConfig, DecodeOutput, Fault, speculative_decode};
use crate::dist::DraftQ;
use crate::draft::{DraftContext, DraftInit, Drafter, Drafts, InitDrafter, Verified};
use crate::error::{Result, SpecError};
use crate::model::SpecModel;

/// SJD's settings. [`Default`]: window 16, random initialisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SjdConfig {
    /// Inputs per verification forward (the last committed token plus `window − 1` drafts);
    /// at least 2.
    pub window: usize,
    /// How new window positions are filled.
    pub init: DraftInit,
}

impl Default for SjdConfig {
    fn default() -> Self {
        SjdConfig {
            window: 16,
            init: DraftInit::Random,
        }
    }
}

impl SjdConfig {
    /// The loop settings with `acceptance`.
    pub fn decode_config(&self, acceptance: Acceptance) -> Result<DecodeConfig> {
        if self.window < 2 {
            return Err(SpecError::arg(
                "SjdConfig",
                format!("window {} (needs at least 2 inputs)", self.window),
            ));
        }
        Ok(DecodeConfig {
            drafts: self.window - 1,
            acceptance,
            fault: Fault::None,
        })
    }
}

/// The previous Jacobi iterate as a [`Drafter`].
///
/// Draw order (draft stream): in [`Drafter::observe`], one `uniform_f64` per carried position,
/// row-major (row 0's positions in order first); in [`Drafter::propose`], the refill's draws
/// ([`DraftInit`]), row-major.
#[derive(Clone, Debug, Default)]
pub struct JacobiDrafter {
    init: InitDrafter,
    /// Position of the first carried draft.
    carried_start: usize,
    /// Per row: carried drafts and their `q` (the target distribution they were drawn from).
    carried: Vec<Vec<(u32, DraftQ)>>,
}

impl JacobiDrafter {
    /// A drafter refilling with `init`.
    pub fn new(init: DraftInit) -> Self {
        JacobiDrafter {
            init: InitDrafter { init },
            carried_start: 0,
            carried: Vec::new(),
        }
    }
}

impl Drafter for JacobiDrafter {
    fn propose(&mut self, ctx: &DraftContext<'_>, k: usize, rng: &mut SeededRng) -> Result<Drafts> {
        let n = ctx.len();
        let usable = self.carried_start == n && self.carried.len() == ctx.committed.len();
        let mut out = Drafts::default();
        for (r, row) in ctx.committed.iter().enumerate() {
            let carried: &[(u32, DraftQ)] = if usable { &self.carried[r] } else { &[] };
            let take = carried.len().min(k);
            let mut full = row.clone();
            let mut qs = Vec::with_capacity(k);
            for (t, q) in &carried[..take] {
                full.push(*t);
                qs.push(q.clone());
            }
            qs.extend(self.init.extend(&mut full, k - take, ctx.vocab, rng));
            out.tokens.push(full.split_off(n));
            out.q.push(qs);
        }
        Ok(out)
    }

    fn observe(&mut self, ver: &Verified<'_>, rng: &mut SeededRng) -> Result<()> {
        let rows = ver.committed.len();
        self.carried_start = ver.start + ver.kept;
        self.carried = vec![Vec::new(); rows];
        for (r, carried) in self.carried.iter_mut().enumerate() {
            for j in ver.kept..=ver.drafts {
                let p = ver.dists.get(r, j);
                let y = sample_from_uniform(p, rng.uniform_f64())?;
                carried.push((y as u32, DraftQ::Dense(p.to_vec())));
            }
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.carried.clear();
        self.carried_start = 0;
    }
}

/// SJD on `model` with `cfg`, exact acceptance.
pub fn sjd_decode<M: SpecModel + ?Sized>(
    model: &mut M,
    cfg: &SjdConfig,
    seed: u64,
) -> Result<DecodeOutput> {
    jacobi_decode(model, cfg, Acceptance::Exact, seed)
}

/// SJD's loop with any acceptance rule: [`Acceptance::Grouped`] is GSD,
/// [`Acceptance::Lantern`] a LANTERN-style relaxation on the Jacobi loop (both lossy).
pub fn jacobi_decode<M: SpecModel + ?Sized>(
    model: &mut M,
    cfg: &SjdConfig,
    acceptance: Acceptance,
    seed: u64,
) -> Result<DecodeOutput> {
    let dc = cfg.decode_config(acceptance)?;
    let mut drafter = JacobiDrafter::new(cfg.init);
    speculative_decode(model, &mut drafter, &dc, seed)
}
