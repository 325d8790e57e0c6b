//! [`Drafter`]: whatever proposes the draft tokens a verification forward checks — a draft
//! model ([`crate::speculative::ModelDrafter`]), the model's own previous Jacobi iterate
//! ([`crate::jacobi::JacobiDrafter`]), an n-gram lookup ([`NgramDrafter`]) or a fixed
//! proposer ([`InitDrafter`]: random tokens or the left neighbour).
//!
//! A drafter must report the distribution each draft was **actually** drawn from
//! ([`DraftQ`]), and must not look at the verification uniforms: those two conditions are all
//! the exactness of [`crate::decode`] needs.

use arvis_core::SeededRng;

use crate::dist::{Dists, DraftQ};
use crate::error::{Result, SpecError};

/// What a drafter sees when asked for drafts.
#[derive(Clone, Copy, Debug)]
pub struct DraftContext<'a> {
    /// The committed tokens, `B` rows of the same length `n`; drafts are for positions
    /// `n, n + 1, …`.
    pub committed: &'a [Vec<u32>],
    /// Vocabulary size `V`.
    pub vocab: usize,
}

impl DraftContext<'_> {
    /// Committed tokens per row, `n`.
    pub fn len(&self) -> usize {
        self.committed.first().map_or(0, Vec::len)
    }

    /// Whether nothing is committed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `k` drafts per row and the distribution each was drawn from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Drafts {
    /// `B` rows of `k` tokens (positions `n .. n + k`).
    pub tokens: Vec<Vec<u32>>,
    /// `B` rows of `k` distributions, one per draft.
    pub q: Vec<Vec<DraftQ>>,
}

impl Drafts {
    /// Checks `rows × k` drafts over `vocab` tokens.
    pub(crate) fn check(&self, rows: usize, k: usize, vocab: usize) -> Result<()> {
        const OP: &str = "Drafter::propose";
        if self.tokens.len() != rows || self.q.len() != rows {
            return Err(SpecError::contract(
                OP,
                format!(
                    "{} token rows and {} q rows for {rows} sequences",
                    self.tokens.len(),
                    self.q.len()
                ),
            ));
        }
        for (b, (t, q)) in self.tokens.iter().zip(&self.q).enumerate() {
            if t.len() != k || q.len() != k {
                return Err(SpecError::contract(
                    OP,
                    format!(
                        "row {b}: {} drafts and {} q for {k} asked",
                        t.len(),
                        q.len()
                    ),
                ));
            }
            if let Some(&x) = t.iter().find(|&&x| x as usize >= vocab) {
                return Err(SpecError::contract(
                    OP,
                    format!("row {b}: draft {x} outside the vocabulary of {vocab}"),
                ));
            }
            for q in q {
                if let DraftQ::Dense(v) = q
                    && v.len() != vocab
                {
                    return Err(SpecError::contract(
                        OP,
                        format!("row {b}: q of length {} for V = {vocab}", v.len()),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What one verification forward found, handed to [`Drafter::observe`].
#[derive(Clone, Copy, Debug)]
pub struct Verified<'a> {
    /// Position of slot 0 of `dists` (the committed length `n` before this round).
    pub start: usize,
    /// Drafts checked this round, `g`.
    pub drafts: usize,
    /// Tokens committed this round per row (`accepted + 1`, the same for all rows).
    pub kept: usize,
    /// The target's distributions `[B, g + 1, V]`: slot `j` is position `start + j`, given the
    /// inputs fed this round (which are wrong after each row's first rejection).
    pub dists: &'a Dists,
    /// The committed tokens after this round (`start + kept` per row).
    pub committed: &'a [Vec<u32>],
}

/// Proposes draft tokens.
pub trait Drafter {
    /// `k` drafts per row for positions `ctx.len() .. ctx.len() + k`, drawing any randomness
    /// from `rng` (the decoder's draft stream, never the verification stream). Called once per
    /// verification round with `k ≥ 1`.
    fn propose(&mut self, ctx: &DraftContext<'_>, k: usize, rng: &mut SeededRng) -> Result<Drafts>;

    /// Called after every verification round (SJD keeps the target's fresh samples as the next
    /// iterate). The default ignores it.
    fn observe(&mut self, verified: &Verified<'_>, rng: &mut SeededRng) -> Result<()> {
        let _ = (verified, rng);
        Ok(())
    }

    /// Forward passes of a draft model so far (0 for model-free drafters).
    fn forwards(&self) -> usize {
        0
    }

    /// Forgets per-sequence state before a new generation.
    fn reset(&mut self) {}
}

/// How a model-free drafter fills positions it has nothing better for. The draft's `q` is
/// one-hot, which is exact whatever the token (see [`DraftQ::OneHot`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DraftInit {
    /// A uniform token (SJD's `random`): one `rng.below(V)` per filled position.
    #[default]
    Random,
    /// The token at the previous position of the same grid row (SJD's `repeat_horizon` for a
    /// raster order over rows of `width` tokens); a uniform token at the start of a grid row.
    LeftNeighbour {
        /// Tokens per grid row.
        width: usize,
    },
}

/// A drafter that only uses its [`DraftInit`] (an n-gram-free neighbour proposer; also the
/// refill of [`crate::jacobi::JacobiDrafter`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct InitDrafter {
    /// The fill rule.
    pub init: DraftInit,
}

impl InitDrafter {
    /// Extends `row` (whose last element sits at position `row.len() − 1`) by `k` tokens.
    /// Draw order: one `rng.below(V)` per position that needs a random token, in position
    /// order.
    pub(crate) fn extend(
        &self,
        row: &mut Vec<u32>,
        k: usize,
        vocab: usize,
        rng: &mut SeededRng,
    ) -> Vec<DraftQ> {
        let mut qs = Vec::with_capacity(k);
        for _ in 0..k {
            let t = row.len();
            let token = match self.init {
                DraftInit::LeftNeighbour { width }
                    if width > 0 && !t.is_multiple_of(width) && t > 0 =>
                {
                    row[t - 1]
                }
                _ => rng.below(vocab as u64) as u32,
            };
            row.push(token);
            qs.push(DraftQ::OneHot);
        }
        qs
    }
}

impl Drafter for InitDrafter {
    fn propose(&mut self, ctx: &DraftContext<'_>, k: usize, rng: &mut SeededRng) -> Result<Drafts> {
        let n = ctx.len();
        let mut out = Drafts::default();
        for row in ctx.committed {
            let mut r = row.clone();
            let q = self.extend(&mut r, k, ctx.vocab, rng);
            out.tokens.push(r.split_off(n));
            out.q.push(q);
        }
        Ok(out)
    }
}

/// Prompt-lookup / n-gram drafting: each draft is the token that followed the most recent
/// earlier occurrence of the last `n` tokens (committed and already-drafted) of its row; where
/// there is none, the [`DraftInit`] fill. The `q` is one-hot, so verification stays exact.
#[derive(Clone, Copy, Debug)]
pub struct NgramDrafter {
    /// Length of the suffix to match (at least 1).
    pub n: usize,
    /// Fill when no earlier occurrence exists.
    pub fallback: DraftInit,
}

impl NgramDrafter {
    /// The token after the most recent earlier occurrence of `row`'s last `n` tokens.
    pub fn lookup(&self, row: &[u32]) -> Option<u32> {
        let n = self.n;
        if n == 0 || row.len() <= n {
            return None;
        }
        let suffix = &row[row.len() - n..];
        // Occurrences ending before the suffix itself, most recent first.
        (0..row.len() - n)
            .rev()
            .find(|&s| &row[s..s + n] == suffix)
            .map(|s| row[s + n])
    }
}

impl Drafter for NgramDrafter {
    /// Draw order: the fallback's draws, row-major, for positions without a match.
    fn propose(&mut self, ctx: &DraftContext<'_>, k: usize, rng: &mut SeededRng) -> Result<Drafts> {
        let n0 = ctx.len();
        let fill = InitDrafter {
            init: self.fallback,
        };
        let mut out = Drafts::default();
        for row in ctx.committed {
            let mut r = row.clone();
            let mut q = Vec::with_capacity(k);
            for _ in 0..k {
                match self.lookup(&r) {
                    Some(t) => {
                        r.push(t);
                        q.push(DraftQ::OneHot);
                    }
                    None => q.extend(fill.extend(&mut r, 1, ctx.vocab, rng)),
                }
            }
            out.tokens.push(r.split_off(n0));
            out.q.push(q);
        }
        Ok(out)
    }
}
