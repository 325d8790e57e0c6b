//! Token sampling shared by every model crate: temperature, top-k, top-p, classifier-free
//! guidance and the final categorical draw.
//!
//! # Determinism across devices
//!
//! Randomness always comes from a caller-supplied [`SeededRng`], consumed in a fixed, documented
//! order, and is turned into a token by plain arithmetic (inverse-CDF or Gumbel-max), never by a
//! device-specific generator. A GPU port therefore only has to reproduce the arithmetic to give
//! the same tokens as the CPU for the same seed:
//!
//! - [`sample_rows`] draws **exactly one** [`SeededRng::uniform_f64`] per row, for rows in
//!   row-major order (row `r` of a `[.., V]` tensor gets the `r`-th draw), before any row is
//!   processed; row `r`'s token is then [`sample_row`]`(row_r, cfg, u_r)`.
//! - [`sample_row`] uses no generator: it filters the row ([`filter_row`]), takes the softmax in
//!   `f64` ([`softmax_f64`]) and returns the smallest index whose cumulative probability exceeds
//!   `u · total` ([`sample_from_uniform`]).
//! - [`gumbel_max_row`] draws **exactly `V`** [`SeededRng::gumbel_f64`] values, one per vocabulary
//!   entry in index order (filtered entries included), and returns the argmax of
//!   `filtered_logit + gumbel` (ties go to the lower index). It samples the same distribution as
//!   [`sample_row`] but not the same tokens.
//!
//! Logit arithmetic (temperature, masking with `-inf`, guidance) is done in `f32` like the
//! reference PyTorch code; probabilities, cumulative sums and top-p thresholds are computed in
//! `f64`. A top-p decision can therefore differ from PyTorch's `f32` one only when a cumulative
//! probability lies within rounding distance of the threshold.
//!
//! # The two official semantics ([`TopPRule`])
//!
//! **VAR** (`sample_with_top_k_top_p_` in FoundationVision/VAR `models/helpers.py`) has no
//! temperature. Top-k keeps every logit `≥` the k-th largest (ties survive). Top-p sorts the
//! logits **ascending**, takes the softmax and its cumulative sum, and removes every token whose
//! cumulative probability is `≤ 1 − p`, never the largest one. Equivalently, with `S` the mass of
//! the tokens ranked strictly above a token, VAR keeps it iff `S < p` (or it is the top token).
//!
//! **HuggingFace** (`top_k_top_p_filtering`, used by LlamaGen after dividing the logits by
//! `max(temperature, 1e-5)`) keeps the same top-k set. Top-p sorts **descending**, takes the
//! cumulative softmax, marks tokens whose cumulative probability is `> p`, and shifts the marks
//! right by one, so the first token crossing the threshold and the top token are kept.
//! Equivalently, HF keeps a token iff `S ≤ p`.
//!
//! So the two rules agree except when `S == p` exactly: there HF keeps the token and VAR drops
//! it. Four equally likely tokens and `p = 0.5` show it (the third token has `S = 0.5`):
//!
//! ```
//! use arvis_core::sampling::{filter_top_p_hf, filter_top_p_var, sample_rows, SamplingConfig};
//! use arvis_core::{SeededRng, Tensor};
//!
//! let mut hf = [0.0f32; 4];
//! filter_top_p_hf(&mut hf, 0.5)?;
//! assert_eq!(hf.map(f32::is_finite), [true, true, true, false]);
//!
//! let mut var = [0.0f32; 4];
//! filter_top_p_var(&mut var, 0.5)?;
//! assert_eq!(var.map(f32::is_finite), [true, true, false, false]);
//!
//! // VAR's defaults for ImageNet sampling (top-k 900, top-p 0.96), on two rows of logits.
//! let logits = Tensor::from_vec(vec![0.0, 5.0, 1.0, -2.0, 3.0, 0.5, 0.5, 9.0], &[2, 4])?;
//! let cfg = SamplingConfig::var(900, 0.96);
//! let mut rng = SeededRng::new(0).fork(1);
//! let tokens = sample_rows(&logits, &cfg, &mut rng)?; // one uniform per row, row order
//! assert_eq!(tokens.len(), 2);
//! assert_eq!(tokens[1], 3); // the 9.0 logit holds > 99.9% of the mass; top-p keeps only it
//!
//! // LlamaGen: temperature, then HF top-k / top-p.
//! let cfg = SamplingConfig::llamagen(1.0, 2, 1.0);
//! let token = arvis_core::sampling::sample_row(&[0.0, 5.0, 1.0, -2.0], &cfg, 0.3)?;
//! assert!(token == 1 || token == 2); // top-2 keeps logits 5.0 and 1.0
//! # Ok::<(), arvis_core::Error>(())
//! ```
//!
//! # Ties
//!
//! Top-p ranks tokens by logit, **descending, equal logits by ascending index** (a stable sort
//! with the index as tie-break): among equal logits the lower index counts as the larger one.
//! VAR's ascending order is the exact reverse of this ranking. PyTorch's `sort` is not stable,
//! so the reference code leaves this case unspecified; top-k is unaffected (ties survive).
//!
//! # Inputs
//!
//! Logits may contain `-inf` (already-masked tokens, probability 0). `NaN`, `+inf`, empty rows
//! and rows with no finite logit are rejected with [`Error::Arg`]; nothing here panics on user
//! input.

use std::cmp::Ordering;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::rng::SeededRng;
use crate::tensor::Tensor;

/// The smallest temperature the HuggingFace rule divides by: LlamaGen computes
/// `logits / max(temperature, 1e-5)`.
pub const HF_MIN_TEMPERATURE: f32 = 1e-5;

/// Which official top-p (and temperature) semantics to follow. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TopPRule {
    /// FoundationVision VAR (`sample_with_top_k_top_p_`): ascending cumulative sum, remove tokens
    /// with cumulative probability `≤ 1 − p`, never the top token. A token is kept iff the mass
    /// ranked strictly above it is `< p`. VAR has no temperature: here it must be `> 0` and is
    /// applied as `logits / temperature` (use `1.0` for the official behaviour).
    Var,
    /// HuggingFace `top_k_top_p_filtering` as used by LlamaGen: descending cumulative sum, remove
    /// tokens with cumulative probability `> p` shifted right by one. A token is kept iff the
    /// mass ranked strictly above it is `≤ p`. The temperature is clamped to
    /// [`HF_MIN_TEMPERATURE`] (so `0` or a negative value means near-greedy), as LlamaGen does.
    #[default]
    HuggingFace,
}

/// How logits are turned into a sampling distribution.
///
/// The pipeline ([`filter_row`]) is: divide by the temperature, top-k if `top_k > 0`, top-p if
/// `top_p < 1`, then softmax. [`Default`] is temperature 1, no top-k, `top_p = 1` (off) and the
/// HuggingFace rule: plain softmax sampling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingConfig {
    /// Logits are divided by this. Must be finite; with [`TopPRule::Var`] it must be `> 0`, with
    /// [`TopPRule::HuggingFace`] values below [`HF_MIN_TEMPERATURE`] are clamped to it.
    pub temperature: f32,
    /// Keep the logits `≥` the `top_k`-th largest (ties survive). `0` = off; values `≥ V` keep
    /// everything (VAR's `torch.topk` would raise; HF clamps, as here).
    pub top_k: usize,
    /// Nucleus mass in `(0, 1]`; `1` = off. Note VAR's own default `top_p = 0.0` means "off"
    /// there, whereas HF treats `0` as greedy; both spellings are ambiguous, so `0` is rejected:
    /// write `1.0` to disable top-p.
    pub top_p: f32,
    /// Which official semantics to follow.
    pub rule: TopPRule,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            rule: TopPRule::HuggingFace,
        }
    }
}

impl SamplingConfig {
    /// VAR's sampler: no temperature (1.0), the given top-k (`0` = off) and top-p (`1.0` = off).
    pub fn var(top_k: usize, top_p: f32) -> Self {
        SamplingConfig {
            temperature: 1.0,
            top_k,
            top_p,
            rule: TopPRule::Var,
        }
    }

    /// LlamaGen's sampler: `logits / max(temperature, 1e-5)`, then HF top-k / top-p.
    pub fn llamagen(temperature: f32, top_k: usize, top_p: f32) -> Self {
        SamplingConfig {
            temperature,
            top_k,
            top_p,
            rule: TopPRule::HuggingFace,
        }
    }

    /// Checks the fields, returning [`Error::Arg`] for a non-finite temperature, a temperature
    /// `≤ 0` under [`TopPRule::Var`], or `top_p` outside `(0, 1]` (NaN included).
    pub fn validate(&self) -> Result<()> {
        self.effective_temperature()?;
        check_top_p("SamplingConfig", self.top_p)
    }

    /// The temperature actually divided by: `max(temperature, 1e-5)` for the HuggingFace rule,
    /// the temperature itself (which must be `> 0`) for the VAR rule.
    pub fn effective_temperature(&self) -> Result<f32> {
        let t = self.temperature;
        if !t.is_finite() {
            return Err(Error::arg(
                "SamplingConfig",
                format!("temperature must be finite, got {t}"),
            ));
        }
        match self.rule {
            TopPRule::HuggingFace => Ok(t.max(HF_MIN_TEMPERATURE)),
            TopPRule::Var if t > 0.0 => Ok(t),
            TopPRule::Var => Err(Error::arg(
                "SamplingConfig",
                format!("temperature must be > 0 with the VAR rule, got {t}"),
            )),
        }
    }
}

/// The two official classifier-free-guidance formulas. Both use the conditional and the
/// unconditional logits of the same position; they are equal in exact arithmetic when
/// `s = 1 + t`, but round differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CfgForm {
    /// LlamaGen: `uncond + (cond − uncond) · s`, with `s` the guidance scale (`1` = no guidance).
    LlamaGen,
    /// VAR: `(1 + t) · cond − t · uncond`, with `t` the guidance strength (`0` = no guidance).
    /// VAR's caller passes `t = cfg · ratio` for the current scale.
    Var,
}

/// Mixes conditional and unconditional logits for classifier-free guidance, element by element
/// in `f32` (see [`CfgForm`] for the two formulas; `scale` is `s` or `t` accordingly).
///
/// Errors if the slices differ in length or `scale` is not finite. Inputs should be finite:
/// `-inf` in both operands gives NaN, which the samplers reject.
pub fn cfg_mix(cond: &[f32], uncond: &[f32], scale: f32, form: CfgForm) -> Result<Vec<f32>> {
    const OP: &str = "cfg_mix";
    if cond.len() != uncond.len() {
        return Err(Error::shape(
            OP,
            format!("uncond of the same length as cond ({})", cond.len()),
            &[uncond.len()],
        ));
    }
    if !scale.is_finite() {
        return Err(Error::arg(
            OP,
            format!("guidance scale must be finite, got {scale}"),
        ));
    }
    let out = match form {
        CfgForm::LlamaGen => cond
            .iter()
            .zip(uncond)
            .map(|(&c, &u)| u + (c - u) * scale)
            .collect(),
        CfgForm::Var => {
            // Python computes `1 + t` in double precision before the f32 multiply.
            let a = (1.0 + f64::from(scale)) as f32;
            cond.iter()
                .zip(uncond)
                .map(|(&c, &u)| a * c - scale * u)
                .collect()
        }
    };
    Ok(out)
}

/// [`cfg_mix`] on a batch laid out as both models do it: `logits` is `[2B, ..]` with the `B`
/// conditional rows first and the `B` unconditional rows after; the result is `[B, ..]`.
pub fn cfg_mix_stacked(logits: &Tensor, scale: f32, form: CfgForm) -> Result<Tensor> {
    let shape = logits.shape();
    match shape.first() {
        Some(&n) if n % 2 == 0 && logits.as_gpu().is_some() => {
            // The same f32 operations as `cfg_mix`, one kernel each, on the device.
            if !scale.is_finite() {
                return Err(Error::arg(
                    "cfg_mix",
                    format!("guidance scale must be finite, got {scale}"),
                ));
            }
            let cond = logits.narrow(0, 0, n / 2)?;
            let uncond = logits.narrow(0, n / 2, n / 2)?;
            match form {
                CfgForm::LlamaGen => uncond.add(&cond.sub(&uncond)?.scale(scale)?),
                CfgForm::Var => {
                    let a = (1.0 + f64::from(scale)) as f32;
                    cond.scale(a)?.sub(&uncond.scale(scale)?)
                }
            }
        }
        Some(&n) if n % 2 == 0 => {
            let data = logits.data();
            let (cond, uncond) = data.split_at(data.len() / 2);
            let mixed = cfg_mix(cond, uncond, scale, form)?;
            let mut out_shape = shape.to_vec();
            out_shape[0] = n / 2;
            Tensor::from_vec(mixed, &out_shape)
        }
        _ => Err(Error::shape(
            "cfg_mix_stacked",
            "[2B, ..] (cond rows, then uncond rows)",
            shape,
        )),
    }
}

/// Rejects empty rows and rows with NaN, `+inf`, or no finite logit.
fn check_logits(op: &'static str, row: &[f32]) -> Result<()> {
    if row.is_empty() {
        return Err(Error::arg(op, "empty logits row"));
    }
    let mut any_finite = false;
    for (i, &x) in row.iter().enumerate() {
        if x.is_nan() {
            return Err(Error::arg(op, format!("logit {i} is NaN")));
        }
        if x == f32::INFINITY {
            return Err(Error::arg(op, format!("logit {i} is +inf")));
        }
        any_finite |= x.is_finite();
    }
    if !any_finite {
        return Err(Error::arg(op, format!("all {} logits are -inf", row.len())));
    }
    Ok(())
}

fn check_top_p(op: &'static str, top_p: f32) -> Result<()> {
    if top_p > 0.0 && top_p <= 1.0 {
        Ok(())
    } else {
        Err(Error::arg(
            op,
            format!("top_p must be in (0, 1] (1 = off), got {top_p}"),
        ))
    }
}

/// Sets every logit below the `k`-th largest to `-inf`, in place; logits equal to it survive, so
/// more than `k` tokens may remain. `k = 0` (off) and `k ≥ row.len()` leave the row unchanged.
/// Both official rules use this top-k.
///
/// Errors on an empty row, NaN, `+inf`, or a row of only `-inf`.
pub fn filter_top_k(row: &mut [f32], k: usize) -> Result<()> {
    check_logits("filter_top_k", row)?;
    top_k_unchecked(row, k);
    Ok(())
}

fn top_k_unchecked(row: &mut [f32], k: usize) {
    if k == 0 || k >= row.len() {
        return;
    }
    let mut vals = row.to_vec();
    let (_, kth, _) = vals.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let threshold = *kth;
    for x in row.iter_mut() {
        if *x < threshold {
            *x = f32::NEG_INFINITY;
        }
    }
}

/// Indices of the finite logits, ranked by logit descending, equal logits by ascending index,
/// with their softmax probabilities (`f64`, normalised over the row) in the same order.
/// `-inf` entries have probability 0 and sit at the end of either official sort, where they
/// change no cumulative sum, so leaving them out decides nothing differently.
fn ranked_probs(row: &[f32]) -> (Vec<usize>, Vec<f64>) {
    let mut order: Vec<usize> = (0..row.len()).filter(|&i| row[i].is_finite()).collect();
    order.sort_unstable_by(|&a, &b| {
        row[b]
            .partial_cmp(&row[a])
            .unwrap_or(Ordering::Equal)
            .then(a.cmp(&b))
    });
    let max = order.first().map_or(0.0, |&i| f64::from(row[i]));
    let mut probs: Vec<f64> = order
        .iter()
        .map(|&i| (f64::from(row[i]) - max).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    for p in &mut probs {
        *p /= total;
    }
    (order, probs)
}

/// VAR top-p, in place: sorts ascending, removes (sets to `-inf`) the tokens whose cumulative
/// probability is `≤ 1 − top_p`, never the top token. `top_p = 1` leaves the row unchanged.
/// Ties are ranked as described in the [module docs](self#ties).
///
/// Errors if `top_p` is outside `(0, 1]`, or on an empty row, NaN, `+inf`, or only `-inf`.
pub fn filter_top_p_var(row: &mut [f32], top_p: f32) -> Result<()> {
    const OP: &str = "filter_top_p_var";
    check_top_p(OP, top_p)?;
    check_logits(OP, row)?;
    top_p_var_unchecked(row, top_p);
    Ok(())
}

fn top_p_var_unchecked(row: &mut [f32], top_p: f32) {
    if top_p >= 1.0 {
        return;
    }
    let threshold = 1.0 - f64::from(top_p);
    let (order, probs) = ranked_probs(row);
    let mut cum = 0.0;
    // Ascending order is the reverse ranking; position 0 (the top token) is never removed.
    for pos in (1..order.len()).rev() {
        cum += probs[pos];
        if cum > threshold {
            break;
        }
        row[order[pos]] = f32::NEG_INFINITY;
    }
}

/// HuggingFace top-p, in place: sorts descending, removes (sets to `-inf`) the tokens whose
/// cumulative probability *before* them exceeds `top_p` (HF's "shift right by one"), so the top
/// token and the first token crossing the threshold are kept. `top_p = 1` leaves the row
/// unchanged (HF skips the filter then). Ties are ranked as described in the
/// [module docs](self#ties).
///
/// Errors if `top_p` is outside `(0, 1]`, or on an empty row, NaN, `+inf`, or only `-inf`.
pub fn filter_top_p_hf(row: &mut [f32], top_p: f32) -> Result<()> {
    const OP: &str = "filter_top_p_hf";
    check_top_p(OP, top_p)?;
    check_logits(OP, row)?;
    top_p_hf_unchecked(row, top_p);
    Ok(())
}

fn top_p_hf_unchecked(row: &mut [f32], top_p: f32) {
    if top_p >= 1.0 {
        return;
    }
    let p = f64::from(top_p);
    let (order, probs) = ranked_probs(row);
    let mut cum = 0.0;
    for (pos, &i) in order.iter().enumerate() {
        if pos > 0 && cum > p {
            row[i] = f32::NEG_INFINITY;
        }
        cum += probs[pos];
    }
}

/// Top-p under the given rule: [`filter_top_p_var`] or [`filter_top_p_hf`].
pub fn filter_top_p(row: &mut [f32], top_p: f32, rule: TopPRule) -> Result<()> {
    match rule {
        TopPRule::Var => filter_top_p_var(row, top_p),
        TopPRule::HuggingFace => filter_top_p_hf(row, top_p),
    }
}

/// The whole filtering pipeline of `cfg`, in place: divide by the (effective) temperature in
/// `f32`, top-k if `top_k > 0`, top-p under `cfg.rule` if `top_p < 1`. The softmax of the result
/// is the distribution [`sample_row`] and [`gumbel_max_row`] sample from.
///
/// Errors on an invalid `cfg` ([`SamplingConfig::validate`]), an empty row, NaN, `+inf`, a row of
/// only `-inf`, or logits that overflow to `+inf` when divided by a tiny temperature.
pub fn filter_row(row: &mut [f32], cfg: &SamplingConfig) -> Result<()> {
    const OP: &str = "filter_row";
    let t = cfg.effective_temperature()?;
    check_top_p(OP, cfg.top_p)?;
    check_logits(OP, row)?;
    if t != 1.0 {
        for x in row.iter_mut() {
            *x /= t;
        }
        if let Some(i) = row.iter().position(|&x| x == f32::INFINITY) {
            return Err(Error::arg(
                OP,
                format!("logit {i} overflows to +inf when divided by temperature {t}"),
            ));
        }
    }
    top_k_unchecked(row, cfg.top_k);
    match cfg.rule {
        TopPRule::Var => top_p_var_unchecked(row, cfg.top_p),
        TopPRule::HuggingFace => top_p_hf_unchecked(row, cfg.top_p),
    }
    Ok(())
}

/// Softmax of a logits row in `f64`: `exp(x − max) / Σ exp(x − max)`. `-inf` logits get
/// probability exactly 0.
///
/// Errors on an empty row, NaN, `+inf`, or a row of only `-inf`.
pub fn softmax_f64(row: &[f32]) -> Result<Vec<f64>> {
    check_logits("softmax_f64", row)?;
    let max = row
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    let max = f64::from(max);
    let mut probs: Vec<f64> = row.iter().map(|&x| (f64::from(x) - max).exp()).collect();
    let total: f64 = probs.iter().sum();
    for p in &mut probs {
        *p /= total;
    }
    Ok(probs)
}

/// Inverse-CDF draw from unnormalised weights: the smallest `i` with
/// `probs[0] + … + probs[i] > u · total`, where `total` is the sum of `probs` (summed in index
/// order). A zero-weight index is never returned; if rounding leaves `u · total` at or above the
/// final cumulative sum (possible only for `u` within an ulp of 1), the last positive-weight
/// index is returned.
///
/// Errors if `probs` is empty, holds a negative, NaN or infinite weight, sums to 0 or overflows,
/// or if `u` is not in `[0, 1)`.
pub fn sample_from_uniform(probs: &[f64], u: f64) -> Result<usize> {
    const OP: &str = "sample_from_uniform";
    if !(0.0..1.0).contains(&u) {
        return Err(Error::arg(OP, format!("u must be in [0, 1), got {u}")));
    }
    if probs.is_empty() {
        return Err(Error::arg(OP, "empty probability row"));
    }
    let mut total = 0.0f64;
    for (i, &p) in probs.iter().enumerate() {
        if !(p >= 0.0 && p.is_finite()) {
            return Err(Error::arg(
                OP,
                format!("weight {i} is {p}; weights must be finite and >= 0"),
            ));
        }
        total += p;
    }
    if !(total > 0.0 && total.is_finite()) {
        return Err(Error::arg(OP, format!("weights sum to {total}")));
    }
    let target = u * total;
    let mut cum = 0.0f64;
    let mut last_positive = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            cum += p;
            last_positive = i;
            if cum > target {
                return Ok(i);
            }
        }
    }
    Ok(last_positive)
}

/// Samples one token from a logits row with the uniform `u ∈ [0, 1)`: [`filter_row`], then
/// [`softmax_f64`], then [`sample_from_uniform`]. Deterministic in `(logits, cfg, u)`.
///
/// Errors as those three do (invalid `cfg`, bad logits, `u` outside `[0, 1)`).
pub fn sample_row(logits: &[f32], cfg: &SamplingConfig, u: f64) -> Result<usize> {
    if !(0.0..1.0).contains(&u) {
        return Err(Error::arg(
            "sample_row",
            format!("u must be in [0, 1), got {u}"),
        ));
    }
    let mut row = logits.to_vec();
    filter_row(&mut row, cfg)?;
    let probs = softmax_f64(&row)?;
    sample_from_uniform(&probs, u)
}

/// Samples one token per row of `logits` (shape `[.., V]`, rows in row-major order).
///
/// **Draw order:** after checking the shape and `cfg`, this takes exactly one
/// [`SeededRng::uniform_f64`] per row, row 0 first, and row `r`'s token is
/// [`sample_row`]`(row_r, cfg, u_r)`. The stream advances by exactly `rows` draws whether or not
/// a row then turns out to be invalid (no draw is taken if the shape or `cfg` is rejected). Rows
/// are processed in parallel; the result does not depend on the thread count.
///
/// Errors on a rank-0 tensor, `V = 0`, `V > 2³²` (token ids are `u32`), an invalid `cfg`, or a
/// bad row (reported with its index). A tensor with zero rows gives an empty vector.
pub fn sample_rows(logits: &Tensor, cfg: &SamplingConfig, rng: &mut SeededRng) -> Result<Vec<u32>> {
    const OP: &str = "sample_rows";
    let shape = logits.shape();
    let v = match shape.last() {
        Some(&v) if v > 0 => v,
        _ => return Err(Error::shape(OP, "[.., V] with V > 0", shape)),
    };
    if u64::try_from(v).map_or(true, |v| v > u64::from(u32::MAX) + 1) {
        return Err(Error::arg(
            OP,
            format!("vocabulary of {v} does not fit u32 token ids"),
        ));
    }
    cfg.validate()?;
    // GPU logits are read back once here (one transfer per sampling step).
    let host;
    let data = match logits.as_gpu() {
        Some(_) => {
            host = logits.try_to_vec()?;
            host.as_slice()
        }
        None => logits.data(),
    };
    let rows = data.len() / v;
    let uniforms: Vec<f64> = (0..rows).map(|_| rng.uniform_f64()).collect();
    data.par_chunks_exact(v)
        .zip(uniforms.par_iter())
        .enumerate()
        .with_min_len((1 << 15) / v + 1)
        .map(|(r, (row, &u))| {
            sample_row(row, cfg, u)
                .map(|i| i as u32)
                .map_err(|e| Error::arg(OP, format!("row {r}: {e}")))
        })
        .collect()
}

/// Samples one token by Gumbel-max: [`filter_row`], then the argmax over `i` of
/// `filtered_i + g_i` in `f64` (ties to the lower index), which is an exact sample of the
/// softmax of the filtered logits, i.e. the same distribution as [`sample_row`].
///
/// **Draw order:** once the row and `cfg` are validated, exactly `V = logits.len()`
/// [`SeededRng::gumbel_f64`] draws are taken, `g_0` first, one per vocabulary entry including
/// filtered (`-inf`) ones, so the stream position does not depend on the logits. On error no
/// draw is taken.
pub fn gumbel_max_row(logits: &[f32], cfg: &SamplingConfig, rng: &mut SeededRng) -> Result<usize> {
    let mut row = logits.to_vec();
    filter_row(&mut row, cfg)?;
    let mut best: Option<(usize, f64)> = None;
    for (i, &x) in row.iter().enumerate() {
        let g = rng.gumbel_f64();
        if x == f32::NEG_INFINITY {
            continue;
        }
        let score = f64::from(x) + g;
        if best.is_none_or(|(_, b)| score > b) {
            best = Some((i, score));
        }
    }
    // `filter_row` guarantees a finite logit, so `best` is set; stay panic-free regardless.
    best.map(|(i, _)| i)
        .ok_or_else(|| Error::arg("gumbel_max_row", "no finite logit"))
}
