//! [`SpecStats`]: what one sampler call cost and how well the drafts did.

/// Counters of one generation call (all rows together).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecStats {
    /// Sequences decoded together, `B`.
    pub rows: usize,
    /// Tokens generated per row.
    pub tokens: usize,
    /// Target forward passes, the prefill included (a CFG pair counts once: it is one call).
    pub target_forwards: usize,
    /// Draft-model forward passes (0 for model-free drafters).
    pub draft_forwards: usize,
    /// Verification forwards (target forwards that checked a window).
    pub rounds: usize,
    /// Acceptance tests run, over all rows (each row stops testing at its first rejection).
    pub drafts_tested: usize,
    /// Tests passed, over all rows.
    pub drafts_passed: usize,
    /// Drafts committed, over all rows (each round commits the minimum accepted length over
    /// the rows).
    pub drafts_committed: usize,
}

impl SpecStats {
    /// Mean tokens committed per row per verification forward (accepted drafts + the residual
    /// or bonus token), τ. `0` if no round ran.
    pub fn mean_accepted_len(&self) -> f64 {
        if self.rounds == 0 || self.rows == 0 {
            return 0.0;
        }
        (self.drafts_committed + self.rounds * self.rows) as f64 / (self.rounds * self.rows) as f64
    }

    /// Fraction of acceptance tests passed, α (per-draft acceptance). `0` if none ran.
    pub fn acceptance_rate(&self) -> f64 {
        if self.drafts_tested == 0 {
            return 0.0;
        }
        self.drafts_passed as f64 / self.drafts_tested as f64
    }

    /// Tokens per target forward, the step compression against plain decoding (which makes one
    /// forward per token).
    pub fn tokens_per_forward(&self) -> f64 {
        if self.target_forwards == 0 {
            return 0.0;
        }
        self.tokens as f64 / self.target_forwards as f64
    }
}
