//! Speculative samplers for autoregressive image generation.
//!
//! A target model implements [`SpecModel`]: a causal model that scores a window of proposed
//! tokens in one forward and rolls its KV cache back to any accepted prefix, for `B` sequences
//! at once. A [`Drafter`] proposes the window: a draft model ([`ModelDrafter`]), the
//! previous Jacobi iterate ([`JacobiDrafter`]), an n-gram lookup ([`NgramDrafter`]) or random /
//! left-neighbour tokens ([`InitDrafter`]). [`speculative_decode`] verifies it under an
//! [`Acceptance`] rule; [`plain_decode`] is the non-speculative baseline on the same trait.
//! Every call reports target forwards, draft forwards, mean accepted length and acceptance
//! rate ([`SpecStats`]).
//!
//! | sampler | entry point | draft | exact? |
//! |---|---|---|---|
//! | speculative sampling (Leviathan/Chen) | [`speculative::speculative_sampling`] | a draft model ([`ModelDrafter`]) | **exact** |
//! | speculative Jacobi decoding (SJD) | [`jacobi::sjd_decode`] | previous Jacobi iterate ([`JacobiDrafter`]) | **exact** |
//! | grouped speculative decoding (GSD) | [`jacobi::jacobi_decode`] + [`Acceptance::Grouped`] | previous Jacobi iterate | **lossy** |
//! | LANTERN relaxation | [`jacobi::jacobi_decode`] (or [`speculative_decode`] with a draft model) + [`Acceptance::Lantern`] | any | **lossy** (≤ δ TV per position against the relaxed target) |
//! | continuous speculative decoding (CSpD) | [`cspd::cspd_decode`] on [`cspd::ContinuousSpecModel`], math in [`continuous`] | a draft model with a diffusion head, noise shared with the target | exact for single Gaussian steps; **approximate** for multi-step chains (the paper's trajectory ratio) |
//!
//! "Exact" means the generated sequences have exactly the joint distribution plain sampling of
//! the same processed distributions has (after CFG, temperature, top-k, top-p; see
//! [`probs_from_logits`]); the tests check it with a χ² test on 2·10⁵ sequences of a
//! table-driven model, and check that the lossy samplers and deliberately broken variants
//! fail the same test. At temperature 0 every exact sampler is token-identical to plain greedy
//! decoding. Exactness is distributional: for a given seed the tokens differ from
//! [`plain_decode`]'s, because the uniforms are used differently.
//!
//! Lossy samplers are for speed/quality trade-offs and must be reported as such: their output
//! is not the model's distribution.
//!
//! [`SpecModel`]'s docs describe how a KV-cached transformer with CFG (LlamaGen) implements
//! it; [`conformance::rollback_discrepancy`] checks an implementor's rollback.
//!
//! Batches commit the minimum accepted length over the rows each round (the rows share one KV
//! cache length), which keeps every row exact.
//!
//! Randomness: every draw comes from [`arvis_core::SeededRng`] streams forked from the seed, in
//! the order documented in [`decode`]; tokens are drawn by inverse CDF
//! ([`arvis_core::sampling::sample_from_uniform`]).

pub mod acceptance;
pub mod conformance;
pub mod continuous;
pub mod cspd;
pub mod decode;
pub mod dist;
pub mod draft;
pub mod embedding;
pub mod error;
pub mod grouped;
pub mod jacobi;
pub mod lantern;
pub mod model;
pub mod residual;
pub mod speculative;
pub mod stats;

pub use acceptance::Acceptance;
pub use decode::{
    DecodeConfig, DecodeOutput, plain_decode, plain_decode_with, speculative_decode,
    speculative_decode_with,
};
pub use dist::{Dists, DraftQ, probs_from_logits};
pub use draft::{DraftContext, DraftInit, Drafter, Drafts, InitDrafter, NgramDrafter, Verified};
pub use embedding::{Embeddings, NeighbourTable};
pub use error::{Result, SpecError};
pub use grouped::GroupedRule;
pub use jacobi::{JacobiDrafter, SjdConfig};
pub use lantern::LanternRule;
pub use model::SpecModel;
pub use speculative::ModelDrafter;
pub use stats::SpecStats;
