//! Speculative samplers for raster next-token models: the choice the CLI's `--sampler` makes,
//! and [`decode`], which runs it on any [`SpecModel`] (LlamaGen through
//! [`arvis_models::llamagen::LlamaGenSpec`], or a user's own model implementing the trait).
//!
//! | sampler | what it is | exact? |
//! |---|---|---|
//! | `plain` | one target forward per token | yes (the baseline) |
//! | `sjd` | speculative Jacobi decoding: drafts are the previous Jacobi iterate | **yes** |
//! | `gsd` | SJD's loop with GSD's grouped acceptance (codebook distance filter) | **no** (lossy) |
//! | `lantern` | SJD's loop with LANTERN's codebook-neighbourhood relaxation | **no** (lossy) |
//! | `spec` | speculative sampling with a draft model (a second, smaller LlamaGen) | **yes** |
//!
//! "Exact" means the images have the distribution plain sampling has; for a given seed they
//! differ from plain sampling's, because the random draws are used differently.

use std::path::Path;
use std::sync::Arc;

use arvis_core::{Device, Weights};
use arvis_models::llamagen::LlamaGen;
use arvis_spec::jacobi::jacobi_decode;
use arvis_spec::{
    Acceptance, DecodeConfig, DecodeOutput, DraftInit, Embeddings, GroupedRule, LanternRule,
    ModelDrafter, NeighbourTable, SjdConfig, SpecModel, plain_decode, speculative_decode,
};

use crate::error::{Error, Result};

/// Which sampler generates the tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SamplerKind {
    /// One target forward per token.
    #[default]
    Plain,
    /// Speculative Jacobi decoding (exact).
    Sjd,
    /// Grouped speculative decoding on SJD's loop (lossy).
    Gsd,
    /// LANTERN's relaxed acceptance on SJD's loop (lossy).
    Lantern,
    /// Speculative sampling with a draft model (exact).
    Spec,
}

impl SamplerKind {
    /// Every sampler, in the order of the docs.
    pub const ALL: [SamplerKind; 5] = [
        SamplerKind::Plain,
        SamplerKind::Sjd,
        SamplerKind::Gsd,
        SamplerKind::Lantern,
        SamplerKind::Spec,
    ];

    /// The CLI name (`plain`, `sjd`, `gsd`, `lantern`, `spec`).
    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Plain => "plain",
            SamplerKind::Sjd => "sjd",
            SamplerKind::Gsd => "gsd",
            SamplerKind::Lantern => "lantern",
            SamplerKind::Spec => "spec",
        }
    }

    /// Whether the output has plain sampling's distribution.
    pub fn is_exact(self) -> bool {
        !matches!(self, SamplerKind::Gsd | SamplerKind::Lantern)
    }
}

impl std::fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SamplerKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        SamplerKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown sampler `{s}` (plain, sjd, gsd, lantern, spec)"))
    }
}

/// Settings of a sampler run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SamplerOptions {
    /// The sampler.
    pub kind: SamplerKind,
    /// Inputs per verification forward: the last committed token plus `window − 1` drafts
    /// (SJD's reference window is 16). At least 2.
    pub window: usize,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        SamplerOptions {
            kind: SamplerKind::Plain,
            window: 16,
        }
    }
}

/// Neighbours per code LANTERN considers (its reference `k`).
pub const LANTERN_NEIGHBOURS: usize = 1000;

/// Token embeddings for the lossy samplers, and the LANTERN neighbour table built from them
/// (built once: `O(V²·D)`, a few seconds for a 16384-code codebook).
#[derive(Clone, Debug)]
pub struct TokenSimilarity {
    /// The embeddings (LlamaGen: the VQ's L2-normalised codebook).
    pub embeddings: Arc<Embeddings>,
    neighbours: std::sync::OnceLock<Arc<NeighbourTable>>,
}

impl TokenSimilarity {
    /// Wraps `embeddings`.
    pub fn new(embeddings: Embeddings) -> Self {
        TokenSimilarity {
            embeddings: Arc::new(embeddings),
            neighbours: std::sync::OnceLock::new(),
        }
    }

    /// The [`LANTERN_NEIGHBOURS`] nearest codes of every code (built on first use).
    pub fn neighbours(&self) -> Result<Arc<NeighbourTable>> {
        if let Some(t) = self.neighbours.get() {
            return Ok(t.clone());
        }
        let t = Arc::new(NeighbourTable::from_embeddings(
            &self.embeddings,
            LANTERN_NEIGHBOURS,
        )?);
        Ok(self.neighbours.get_or_init(|| t).clone())
    }
}

/// The acceptance rule of a Jacobi-loop sampler.
fn acceptance(kind: SamplerKind, similarity: Option<&TokenSimilarity>) -> Result<Acceptance> {
    Ok(match kind {
        SamplerKind::Gsd => {
            let rule = GroupedRule::default();
            Acceptance::Grouped(match similarity {
                Some(s) => rule.with_embeddings(s.embeddings.clone()),
                None => rule,
            })
        }
        SamplerKind::Lantern => {
            let s = similarity.ok_or_else(|| {
                Error::Usage("--sampler lantern needs the codebook embeddings".into())
            })?;
            Acceptance::Lantern(LanternRule::new(s.neighbours()?))
        }
        _ => Acceptance::Exact,
    })
}

/// Runs `options.kind` on `target` with `seed`: `draft` is required for
/// [`SamplerKind::Spec`] (and refused otherwise); `similarity` gives GSD its distance filter
/// and LANTERN its neighbours (required for LANTERN). Plain decoding here draws from
/// [`arvis_spec::plain_decode`]'s stream (LlamaGen's own `generate` uses another one; see
/// [`arvis_spec::plain_decode_with`] to reproduce it).
pub fn decode<T: SpecModel, D: SpecModel>(
    target: &mut T,
    draft: Option<D>,
    options: &SamplerOptions,
    similarity: Option<&TokenSimilarity>,
    seed: u64,
) -> Result<DecodeOutput> {
    let kind = options.kind;
    match (kind, draft.is_some()) {
        (SamplerKind::Spec, false) => {
            return Err(Error::Usage(
                "--sampler spec needs a draft model (--draft PATH)".into(),
            ));
        }
        (SamplerKind::Spec, true) => {}
        (_, true) => {
            return Err(Error::Usage(format!(
                "a draft model is only used by --sampler spec, not {kind}"
            )));
        }
        _ => {}
    }
    if kind != SamplerKind::Plain && options.window < 2 {
        return Err(Error::Usage(format!(
            "--window {} must be at least 2 (the committed token plus one draft)",
            options.window
        )));
    }
    let sjd = SjdConfig {
        window: options.window,
        init: DraftInit::Random,
    };
    Ok(match (kind, draft) {
        (SamplerKind::Plain, _) => plain_decode(target, seed)?,
        (SamplerKind::Spec, Some(d)) => {
            let mut drafter = ModelDrafter::new(d);
            speculative_decode(
                target,
                &mut drafter,
                &DecodeConfig::exact(options.window - 1),
                seed,
            )?
        }
        (kind, _) => jacobi_decode(target, &sjd, acceptance(kind, similarity)?, seed)?,
    })
}

/// Loads the GPT of a LlamaGen file as a draft model (its VQ, if any, is not needed).
pub fn load_draft(path: &Path, device: Device) -> Result<LlamaGen> {
    Ok(LlamaGen::load_on(&Weights::open(path)?, device)?)
}
