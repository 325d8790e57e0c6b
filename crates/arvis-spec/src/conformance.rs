//! Checks any [`SpecModel`] implementor can run on itself (the table model of this crate's
//! tests, LlamaGen in `arvis-models`): rollback must leave the model exactly where a fresh run
//! of the kept prefix would.

use crate::dist::Dists;
use crate::error::{Result, SpecError};
use crate::model::SpecModel;

/// Largest absolute difference between two equally shaped distribution sets.
fn max_abs_diff(a: &Dists, b: &Dists) -> Result<f64> {
    if (a.rows(), a.width(), a.vocab()) != (b.rows(), b.width(), b.vocab()) {
        return Err(SpecError::contract(
            "max_abs_diff",
            format!(
                "[{}, {}, {}] vs [{}, {}, {}]",
                a.rows(),
                a.width(),
                a.vocab(),
                b.rows(),
                b.width(),
                b.vocab()
            ),
        ));
    }
    Ok(a.as_slice()
        .iter()
        .zip(b.as_slice())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max))
}

/// Feeds `prefix` then `junk` (both `[B, len]` row-major, `junk` a wrong continuation) to
/// `model`, rolls back to the prefix, feeds `next` (`[B, w]`), and compares those outputs with
/// a fresh `start()` + `prefix` + `next` on the same model. Returns the largest absolute
/// difference between the two sets of `next` distributions (0 for a model whose forward is
/// deterministic and whose rollback is correct; compare with a tolerance for float models).
///
/// `prefix` must hold at least one token per row.
pub fn rollback_discrepancy<M: SpecModel + ?Sized>(
    model: &mut M,
    prefix: &[u32],
    junk: &[u32],
    next: &[u32],
) -> Result<f64> {
    const OP: &str = "rollback_discrepancy";
    let b = model.rows();
    let widths = [prefix.len(), junk.len(), next.len()];
    if b == 0 || widths.iter().any(|w| w % b != 0) || prefix.is_empty() || next.is_empty() {
        return Err(SpecError::arg(
            OP,
            format!("token counts {widths:?} must be non-empty multiples of B = {b}"),
        ));
    }
    let (lp, lj, ln) = (prefix.len() / b, junk.len() / b, next.len() / b);
    model.start()?;
    model.forward(prefix, lp)?;
    if lj > 0 {
        model.forward(junk, lj)?;
    }
    model.rollback(lp)?;
    if model.cached() != lp {
        return Err(SpecError::contract(
            OP,
            format!("cached() = {} after rollback({lp})", model.cached()),
        ));
    }
    let after_rollback = model.forward(next, ln)?;
    model.start()?;
    model.forward(prefix, lp)?;
    let fresh = model.forward(next, ln)?;
    max_abs_diff(&after_rollback, &fresh)
}
