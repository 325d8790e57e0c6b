//! [`Acceptance`]: which test a draft must pass and which residual a rejection draws from.

use crate::dist::DraftQ;
use crate::grouped::GroupedRule;
use crate::lantern::LanternRule;
use crate::residual::{accept_prob, residual_weights};

/// The acceptance rule of a verification loop.
#[derive(Clone, Debug, Default)]
pub enum Acceptance {
    /// `min(1, p(x)/q(x))`, residual `norm((p − q)₊)`: **exact**.
    #[default]
    Exact,
    /// GSD's grouped ratio ([`GroupedRule`]): **lossy**.
    Grouped(GroupedRule),
    /// LANTERN's neighbourhood relaxation ([`LanternRule`]): **lossy**.
    Lantern(LanternRule),
}

impl Acceptance {
    /// Whether the rule samples the target distribution exactly.
    pub fn is_exact(&self) -> bool {
        matches!(self, Acceptance::Exact)
    }

    /// Probability of accepting the draft `x` drawn from `q` against target `p`.
    pub fn accept_prob(&self, p: &[f64], q: &DraftQ, x: usize) -> f64 {
        match self {
            Acceptance::Exact => accept_prob(p, q, x),
            Acceptance::Grouped(rule) => rule.accept_prob(p, q, x),
            Acceptance::Lantern(rule) => rule.accept_prob(p, q, x),
        }
    }

    /// Unnormalised weights to draw the replacement of a rejected `x` from.
    pub fn residual(&self, p: &[f64], q: &DraftQ, x: usize) -> Vec<f64> {
        match self {
            Acceptance::Exact | Acceptance::Grouped(_) => residual_weights(p, q, x),
            Acceptance::Lantern(rule) => rule.residual(p, q, x),
        }
    }
}
