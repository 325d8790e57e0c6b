//! [`SamplerCost`]: what a sampler spent over an evaluation, next to the quality it reached.

use std::fmt;

use arvis_spec::SpecStats;

use crate::sampler::SamplerOptions;

/// The cost and likelihood of the samples of one evaluation run with a token sampler
/// ([`super::EvalSettings::sampler`]), summed over its generation calls.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerCost {
    /// The sampler and its window.
    pub options: SamplerOptions,
    /// Generation calls (batches).
    pub calls: usize,
    /// Images generated.
    pub images: usize,
    /// Tokens per image.
    pub tokens_per_image: usize,
    /// Target forwards over all calls (one per call and step: the rows of a batch share them).
    pub target_forwards: usize,
    /// Draft-model forwards over all calls.
    pub draft_forwards: usize,
    /// Acceptance tests run / passed, over all rows and calls.
    pub drafts_tested: usize,
    /// See [`SamplerCost::drafts_tested`].
    pub drafts_passed: usize,
    /// `Σ (drafts committed + rounds·rows)` and `Σ rounds·rows` over the calls: τ's numerator
    /// and denominator.
    committed_slots: usize,
    row_rounds: usize,
    /// Seconds spent sampling tokens (decoding to pixels and scoring not included).
    pub sampling_seconds: f64,
    /// Sum over images of the NLL (nats) of their tokens under the target's guided
    /// distribution without filters ([`crate::Pipeline::token_nll`]).
    pub nll_sum: f64,
}

impl SamplerCost {
    /// An empty tally for `options`.
    pub fn new(options: SamplerOptions) -> Self {
        SamplerCost {
            options,
            calls: 0,
            images: 0,
            tokens_per_image: 0,
            target_forwards: 0,
            draft_forwards: 0,
            drafts_tested: 0,
            drafts_passed: 0,
            committed_slots: 0,
            row_rounds: 0,
            sampling_seconds: 0.0,
            nll_sum: 0.0,
        }
    }

    /// Adds one call: its stats, its sampling time and its images' NLLs.
    pub fn add(&mut self, stats: &SpecStats, seconds: f64, nll: &[f64]) {
        self.calls += 1;
        self.images += stats.rows;
        self.tokens_per_image = stats.tokens;
        self.target_forwards += stats.target_forwards;
        self.draft_forwards += stats.draft_forwards;
        self.drafts_tested += stats.drafts_tested;
        self.drafts_passed += stats.drafts_passed;
        self.committed_slots += stats.drafts_committed + stats.rounds * stats.rows;
        self.row_rounds += stats.rounds * stats.rows;
        self.sampling_seconds += seconds;
        self.nll_sum += nll.iter().sum::<f64>();
    }

    /// Mean target forwards per call: the sequential steps one batch took (plain decoding: one
    /// per token).
    pub fn target_forwards_per_call(&self) -> f64 {
        ratio(self.target_forwards, self.calls)
    }

    /// Step compression against plain decoding: tokens per target forward.
    pub fn tokens_per_forward(&self) -> f64 {
        ratio(self.tokens_per_image * self.calls, self.target_forwards)
    }

    /// Mean tokens committed per row per verification forward, τ (`0` for plain decoding).
    pub fn mean_accepted_len(&self) -> f64 {
        ratio(self.committed_slots, self.row_rounds)
    }

    /// Fraction of acceptance tests passed, α.
    pub fn acceptance_rate(&self) -> f64 {
        ratio(self.drafts_passed, self.drafts_tested)
    }

    /// Mean NLL per token (nats).
    pub fn nll_per_token(&self) -> f64 {
        let tokens = (self.images * self.tokens_per_image) as f64;
        if tokens == 0.0 {
            0.0
        } else {
            self.nll_sum / tokens
        }
    }

    /// The tally as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "sampler": self.options.kind.name(),
            "window": self.options.window,
            "exact": self.options.kind.is_exact(),
            "calls": self.calls,
            "images": self.images,
            "tokens_per_image": self.tokens_per_image,
            "target_forwards": self.target_forwards,
            "target_forwards_per_call": self.target_forwards_per_call(),
            "tokens_per_forward": self.tokens_per_forward(),
            "draft_forwards": self.draft_forwards,
            "mean_accepted_len": self.mean_accepted_len(),
            "acceptance_rate": self.acceptance_rate(),
            "sampling_seconds": self.sampling_seconds,
            "nll_nats_per_token": self.nll_per_token(),
        })
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl fmt::Display for SamplerCost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sampler:          {} (window {}, {}): {:.1} target forwards per call for {} tokens \
             ({:.2} tokens/forward), τ {:.2}, α {:.3}, {} draft forwards, {:.2} s sampling, \
             NLL {:.4} nats/token",
            self.options.kind,
            self.options.window,
            if self.options.kind.is_exact() {
                "exact"
            } else {
                "lossy"
            },
            self.target_forwards_per_call(),
            self.tokens_per_image,
            self.tokens_per_forward(),
            self.mean_accepted_len(),
            self.acceptance_rate(),
            self.draft_forwards,
            self.sampling_seconds,
            self.nll_per_token()
        )
    }
}
