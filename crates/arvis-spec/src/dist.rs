//! Probability vectors as the samplers see them: [`Dists`] (the target's processed
//! distributions for a window), [`DraftQ`] (the distribution a draft was drawn from) and
//! [`probs_from_logits`] (logits → the distribution plain sampling draws from).

use arvis_core::sampling::{SamplingConfig, filter_row, softmax_f64};

use crate::error::{Result, SpecError};

/// `rows × width` probability vectors of length `vocab`, row-major (`[B, w, V]`), in `f64`.
///
/// These are *processed* distributions: after guidance, temperature, top-k and top-p, exactly
/// what plain sampling would draw the next token from. The samplers are exact with respect to
/// them.
#[derive(Clone, Debug, PartialEq)]
pub struct Dists {
    rows: usize,
    width: usize,
    vocab: usize,
    data: Vec<f64>,
}

impl Dists {
    /// Wraps `data` (`rows · width · vocab` values, `[B, w, V]` row-major). Each vector must be
    /// finite, non-negative and have a positive sum (it need not be normalised exactly; the
    /// samplers normalise where it matters).
    pub fn new(rows: usize, width: usize, vocab: usize, data: Vec<f64>) -> Result<Self> {
        const OP: &str = "Dists::new";
        if vocab == 0 {
            return Err(SpecError::arg(OP, "vocabulary of 0"));
        }
        if data.len() != rows * width * vocab {
            return Err(SpecError::arg(
                OP,
                format!(
                    "{} values for [{rows}, {width}, {vocab}] ({} expected)",
                    data.len(),
                    rows * width * vocab
                ),
            ));
        }
        for (i, p) in data.chunks_exact(vocab).enumerate() {
            check_probs(OP, p).map_err(|e| {
                SpecError::arg(OP, format!("row {}, slot {}: {e}", i / width, i % width))
            })?;
        }
        Ok(Dists {
            rows,
            width,
            vocab,
            data,
        })
    }

    /// Processed distributions from raw logits `[B, w, V]` (row-major, `f32`): each vector
    /// through [`probs_from_logits`] with `cfg`. A model implementor mixes guidance first
    /// (`arvis_core::sampling::cfg_mix_stacked`) and passes the mixed logits here.
    pub fn from_logits(
        logits: &[f32],
        rows: usize,
        width: usize,
        vocab: usize,
        cfg: &SamplingConfig,
    ) -> Result<Self> {
        if vocab == 0 || logits.len() != rows * width * vocab {
            return Err(SpecError::arg(
                "Dists::from_logits",
                format!("{} logits for [{rows}, {width}, {vocab}]", logits.len()),
            ));
        }
        let mut data = Vec::with_capacity(logits.len());
        for row in logits.chunks_exact(vocab) {
            data.extend(probs_from_logits(row, cfg)?);
        }
        Ok(Dists {
            rows,
            width,
            vocab,
            data,
        })
    }

    /// Number of sequences `B`.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of positions per sequence `w`.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Vocabulary size `V`.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// The distribution of sequence `row` at window slot `slot`.
    ///
    /// Panics if out of range (the samplers check shapes once per forward before indexing).
    pub fn get(&self, row: usize, slot: usize) -> &[f64] {
        let start = (row * self.width + slot) * self.vocab;
        &self.data[start..start + self.vocab]
    }

    /// All values, `[B, w, V]` row-major.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// Checks the shape against what a sampler asked for.
    pub(crate) fn expect_shape(
        &self,
        op: &'static str,
        rows: usize,
        width: usize,
        vocab: usize,
    ) -> Result<()> {
        if (self.rows, self.width, self.vocab) != (rows, width, vocab) {
            return Err(SpecError::contract(
                op,
                format!(
                    "distributions [{}, {}, {}], expected [{rows}, {width}, {vocab}]",
                    self.rows, self.width, self.vocab
                ),
            ));
        }
        Ok(())
    }
}

/// The distribution a draft token was actually drawn from (or declared to be drawn from).
///
/// `OneHot` is the cheap case of SJD's window initialisation: the acceptance probability is
/// `p(d)` and the residual is `p` without `d`. It is exact whatever chose `d`, as long as that
/// choice does not look at the verification uniforms.
#[derive(Clone, Debug, PartialEq)]
pub enum DraftQ {
    /// All mass on the draft token.
    OneHot,
    /// A full probability vector of length `V` (normalised).
    Dense(Vec<f64>),
}

impl DraftQ {
    /// `q(x)` for the draft token `draft`.
    pub fn prob(&self, x: usize, draft: usize) -> f64 {
        match self {
            DraftQ::OneHot => f64::from(u8::from(x == draft)),
            DraftQ::Dense(q) => q.get(x).copied().unwrap_or(0.0),
        }
    }
}

/// The distribution plain sampling draws from for one logits row, as a normalised `f64`
/// vector.
///
/// - `cfg.temperature > 0`: `softmax_f64(filter_row(logits, cfg))`, the same arithmetic as
///   `arvis_core::sampling::sample_row`.
/// - `cfg.temperature <= 0` (**greedy**): the one-hot vector of the argmax of the raw logits
///   (ties go to the lower index). `sample_row` would instead divide by `1e-5` (LlamaGen's
///   clamp), which is one-hot in `f64` unless the top two logits are within ~`1e-2`; the exact
///   one-hot makes every exact sampler token-identical to plain greedy decoding.
pub fn probs_from_logits(logits: &[f32], cfg: &SamplingConfig) -> Result<Vec<f64>> {
    if cfg.temperature <= 0.0 {
        let mut best: Option<(usize, f32)> = None;
        for (i, &x) in logits.iter().enumerate() {
            if x.is_nan() || x == f32::INFINITY {
                return Err(SpecError::arg(
                    "probs_from_logits",
                    format!("logit {i} is {x}"),
                ));
            }
            if x.is_finite() && best.is_none_or(|(_, b)| x > b) {
                best = Some((i, x));
            }
        }
        let (i, _) =
            best.ok_or_else(|| SpecError::arg("probs_from_logits", "no finite logit in the row"))?;
        let mut p = vec![0.0; logits.len()];
        p[i] = 1.0;
        return Ok(p);
    }
    let mut row = logits.to_vec();
    filter_row(&mut row, cfg)?;
    Ok(softmax_f64(&row)?)
}

/// Checks a probability vector: non-empty, finite, non-negative, positive sum.
pub(crate) fn check_probs(op: &'static str, p: &[f64]) -> Result<()> {
    if p.is_empty() {
        return Err(SpecError::arg(op, "empty probability vector"));
    }
    let mut total = 0.0;
    for (i, &x) in p.iter().enumerate() {
        if !(x >= 0.0 && x.is_finite()) {
            return Err(SpecError::arg(op, format!("probability {i} is {x}")));
        }
        total += x;
    }
    if total <= 0.0 || !total.is_finite() {
        return Err(SpecError::arg(op, format!("probabilities sum to {total}")));
    }
    Ok(())
}
