//! Speculative sampling with a draft model (Leviathan et al. 2023; Chen et al. 2023).
//! **Exact.**
//!
//! The draft model proposes `γ` tokens one forward at a time, `d_i ~ q_i`; one target forward
//! scores them; `d_i` is accepted with `min(1, p_i(d_i)/q_i(d_i))`; the first rejection draws
//! from `norm((p − q)₊)`; if all pass, a bonus token comes from the last target distribution.
//! [`ModelDrafter`] wraps any [`SpecModel`] as the draft, keeping its KV cache in step with the
//! committed tokens by rollback.

use arvis_core::SeededRng;
use arvis_core::sampling::sample_from_uniform;

use crate::decode::{DecodeConfig, DecodeOutput, speculative_decode};
use crate::dist::DraftQ;
use crate::draft::{DraftContext, Drafter, Drafts};
use crate::error::{Result, SpecError};
use crate::model::SpecModel;

/// A draft model as a [`Drafter`]: `k` autoregressive forwards per round (the first one also
/// catches the cache up with the tokens committed since the last round).
///
/// Draw order (draft stream): for each draft position in order, one `uniform_f64` per row
/// (row order), turned into a token by inverse CDF of the draft model's distribution.
#[derive(Debug)]
pub struct ModelDrafter<M> {
    model: M,
    /// Tokens whose keys/values the draft model holds, per row.
    fed: Vec<Vec<u32>>,
    started: bool,
    forwards: usize,
}

impl<M: SpecModel> ModelDrafter<M> {
    /// Wraps `model` (same rows and vocabulary as the target; its processed distributions are
    /// the `q` of the drafts).
    pub fn new(model: M) -> Self {
        ModelDrafter {
            model,
            fed: Vec::new(),
            started: false,
            forwards: 0,
        }
    }

    /// The wrapped model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Unwraps the model.
    pub fn into_inner(self) -> M {
        self.model
    }
}

impl<M: SpecModel> Drafter for ModelDrafter<M> {
    fn propose(&mut self, ctx: &DraftContext<'_>, k: usize, rng: &mut SeededRng) -> Result<Drafts> {
        const OP: &str = "ModelDrafter::propose";
        let (b, v, n) = (ctx.committed.len(), ctx.vocab, ctx.len());
        if self.model.rows() != b || self.model.vocab() != v {
            return Err(SpecError::arg(
                OP,
                format!(
                    "draft model has {} rows and V = {}, the target {b} rows and V = {v}",
                    self.model.rows(),
                    self.model.vocab()
                ),
            ));
        }
        if n == 0 || k == 0 {
            return Err(SpecError::arg(
                OP,
                format!("{n} committed tokens, {k} drafts"),
            ));
        }
        if !self.started {
            self.model.start()?;
            self.forwards += 1;
            self.started = true;
            self.fed = vec![Vec::new(); b];
        }
        // Keep the longest cached prefix that still agrees with every row's committed tokens,
        // and always re-feed x_{n−1} so the forward's last slot is q at position n.
        let mut keep = n - 1;
        for (fed, row) in self.fed.iter().zip(ctx.committed) {
            let lcp = fed.iter().zip(row).take_while(|(a, b)| a == b).count();
            keep = keep.min(lcp);
        }
        self.model.rollback(keep)?;
        let w = n - keep;
        let feed: Vec<u32> = ctx
            .committed
            .iter()
            .flat_map(|r| r[keep..n].iter().copied())
            .collect();
        let mut q = self.model.forward(&feed, w)?;
        q.expect_shape("SpecModel::forward (draft)", b, w, v)?;
        self.forwards += 1;
        let mut slot = w - 1;
        let mut out = Drafts {
            tokens: vec![Vec::with_capacity(k); b],
            q: vec![Vec::with_capacity(k); b],
        };
        for i in 0..k {
            for r in 0..b {
                let dist = q.get(r, slot);
                let x = sample_from_uniform(dist, rng.uniform_f64())?;
                out.tokens[r].push(x as u32);
                out.q[r].push(DraftQ::Dense(dist.to_vec()));
            }
            if i + 1 < k {
                let feed: Vec<u32> = out.tokens.iter().map(|t| t[i]).collect();
                q = self.model.forward(&feed, 1)?;
                q.expect_shape("SpecModel::forward (draft)", b, 1, v)?;
                self.forwards += 1;
                slot = 0;
            }
        }
        for (fed, (row, d)) in self
            .fed
            .iter_mut()
            .zip(ctx.committed.iter().zip(&out.tokens))
        {
            fed.clear();
            fed.extend_from_slice(&row[..n]);
            fed.extend_from_slice(&d[..k - 1]);
        }
        Ok(out)
    }

    fn forwards(&self) -> usize {
        self.forwards
    }

    fn reset(&mut self) {
        self.started = false;
        self.fed.clear();
    }
}

/// Speculative sampling of `target` with `gamma` drafts per round from `draft` (see
/// [`crate::decode`] for the round and the draw order). Exact.
pub fn speculative_sampling<T: SpecModel + ?Sized, M: SpecModel>(
    target: &mut T,
    draft: &mut ModelDrafter<M>,
    gamma: usize,
    seed: u64,
) -> Result<DecodeOutput> {
    speculative_decode(target, draft, &DecodeConfig::exact(gamma), seed)
}
