//! Shared test helpers: a table-driven AR model behind the real [`SpecModel`] trait, its exact
//! joint distribution, and the χ² / KS machinery.
#![allow(dead_code)]

use std::collections::HashMap;

use arvis_core::SeededRng;
use arvis_core::sampling::{CfgForm, SamplingConfig, cfg_mix};
use arvis_spec::{Dists, Result, SpecError, SpecModel, probs_from_logits};
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// splitmix64: a fixed hash so every (class, prefix) gets its own reproducible logits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An AR "model" over `V` tokens and `N` positions whose conditional at each prefix is a fixed
/// function of (seed, class, prefix): conditional and unconditional `f32` logits, mixed by CFG,
/// then temperature / top-k / top-p through the real `arvis_core::sampling` filters.
///
/// Its "KV cache" is, per row, the code of every cached prefix (`code' = code·(V+1) + x + 1`),
/// so each output depends on all cached tokens and a wrong rollback gives wrong outputs.
#[derive(Clone, Debug)]
pub struct TableModel {
    pub v: usize,
    pub n: usize,
    pub classes: Vec<u64>,
    pub seed: u64,
    pub cfg_scale: f32,
    pub sampling: SamplingConfig,
    /// Deliberately broken rollback (negative control of the rollback check).
    pub broken_rollback: bool,
    cache: Vec<Vec<u64>>,
    memo: HashMap<(u64, u64), Vec<f64>>,
    pub forwards: usize,
}

impl TableModel {
    pub fn new(v: usize, n: usize, classes: Vec<u64>, seed: u64) -> Self {
        TableModel {
            v,
            n,
            classes,
            seed,
            cfg_scale: 1.0,
            sampling: SamplingConfig::llamagen(1.0, 0, 1.0),
            broken_rollback: false,
            cache: Vec::new(),
            memo: HashMap::new(),
            forwards: 0,
        }
    }

    /// With guidance and logits processing.
    pub fn processed(mut self, cfg_scale: f32, sampling: SamplingConfig) -> Self {
        self.cfg_scale = cfg_scale;
        self.sampling = sampling;
        self
    }

    /// The processed conditional of `class` after the prefix with code `code`.
    pub fn dist(&mut self, class: u64, code: u64) -> Result<Vec<f64>> {
        if let Some(p) = self.memo.get(&(class, code)) {
            return Ok(p.clone());
        }
        let mixed = self.logits(class, code)?;
        let p = probs_from_logits(&mixed, &self.sampling)?;
        self.memo.insert((class, code), p.clone());
        Ok(p)
    }

    /// The guidance-mixed `f32` logits of `class` after the prefix with code `code`.
    pub fn logits(&self, class: u64, code: u64) -> Result<Vec<f32>> {
        let mut rng = SeededRng::new(mix(
            self.seed ^ mix(class.wrapping_mul(0x1_0000_0001) ^ code)
        ));
        // Mix peaky and flat rows.
        let scale = if mix(code ^ class).is_multiple_of(3) {
            0.4
        } else {
            2.5
        };
        let cond: Vec<f32> = (0..self.v).map(|_| scale * rng.normal_f32()).collect();
        let uncond: Vec<f32> = (0..self.v).map(|_| scale * rng.normal_f32()).collect();
        Ok(if self.cfg_scale != 1.0 {
            cfg_mix(&cond, &uncond, self.cfg_scale, CfgForm::LlamaGen)?
        } else {
            cond
        })
    }

    pub fn code(&self, prefix: &[u32]) -> u64 {
        prefix
            .iter()
            .fold(0u64, |c, &x| c * (self.v as u64 + 1) + u64::from(x) + 1)
    }

    /// Exact joint probability of every sequence (index = base-V number, first token most
    /// significant) for `class`.
    pub fn joint(&mut self, class: u64) -> Result<Vec<f64>> {
        let cells = self.v.pow(self.n as u32);
        let mut out = vec![0.0; cells];
        for (idx, o) in out.iter_mut().enumerate() {
            let seq = self.decode_index(idx);
            let mut prob = 1.0;
            for t in 0..self.n {
                let p = self.dist(class, self.code(&seq[..t]))?;
                prob *= p[seq[t] as usize];
                if prob == 0.0 {
                    break;
                }
            }
            *o = prob;
        }
        Ok(out)
    }

    pub fn decode_index(&self, mut idx: usize) -> Vec<u32> {
        let mut seq = vec![0u32; self.n];
        for t in (0..self.n).rev() {
            seq[t] = (idx % self.v) as u32;
            idx /= self.v;
        }
        seq
    }

    pub fn index(&self, seq: &[u32]) -> usize {
        seq.iter().fold(0, |i, &x| i * self.v + x as usize)
    }
}

impl SpecModel for TableModel {
    fn rows(&self) -> usize {
        self.classes.len()
    }
    fn vocab(&self) -> usize {
        self.v
    }
    fn seq_len(&self) -> usize {
        self.n
    }
    fn cached(&self) -> usize {
        self.cache.first().map_or(0, Vec::len)
    }
    fn start(&mut self) -> Result<Dists> {
        self.forwards += 1;
        self.cache = vec![Vec::new(); self.classes.len()];
        let mut data = Vec::new();
        for c in self.classes.clone() {
            data.extend(self.dist(c, 0)?);
        }
        Dists::new(self.classes.len(), 1, self.v, data)
    }
    fn forward(&mut self, tokens: &[u32], width: usize) -> Result<Dists> {
        let b = self.classes.len();
        if tokens.len() != b * width || width == 0 {
            return Err(SpecError::arg("TableModel::forward", "bad window"));
        }
        if self.cached() + width > self.n - 1 {
            // Only positions 0..N−1 have distributions: feeding token N−1 is a decoder bug.
            return Err(SpecError::arg(
                "TableModel::forward",
                format!(
                    "{} cached + {width} fed exceeds N − 1 = {}",
                    self.cached(),
                    self.n - 1
                ),
            ));
        }
        self.forwards += 1;
        let mut data = Vec::with_capacity(b * width * self.v);
        for r in 0..b {
            let class = self.classes[r];
            for j in 0..width {
                let x = tokens[r * width + j];
                if x as usize >= self.v {
                    return Err(SpecError::arg("TableModel::forward", "token out of range"));
                }
                let prev = self.cache[r].last().copied().unwrap_or(0);
                let code = prev * (self.v as u64 + 1) + u64::from(x) + 1;
                self.cache[r].push(code);
                data.extend(self.dist(class, code)?);
            }
        }
        Dists::new(b, width, self.v, data)
    }
    fn rollback(&mut self, len: usize) -> Result<()> {
        if len > self.cached() {
            return Err(SpecError::arg("TableModel::rollback", "past the cache"));
        }
        if self.broken_rollback {
            // Drops the right number of entries but keeps the newest ones.
            for c in &mut self.cache {
                let drop = c.len() - len;
                c.drain(..drop);
            }
        } else {
            for c in &mut self.cache {
                c.truncate(len);
            }
        }
        Ok(())
    }
}

/// Pearson χ² p-value of `counts` against probabilities `probs` (sum 1) with `total` draws,
/// merging cells (smallest expected first) until every merged cell expects ≥ 5; df = cells − 1.
/// Cells with probability 0 must have count 0 (else the p-value is 0).
pub fn chi2_pvalue(counts: &[u64], probs: &[f64], total: u64) -> f64 {
    let mut cells: Vec<(f64, u64)> = Vec::new();
    for (&c, &p) in counts.iter().zip(probs) {
        if p == 0.0 {
            if c > 0 {
                return 0.0;
            }
            continue;
        }
        cells.push((p * total as f64, c));
    }
    cells.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut merged: Vec<(f64, u64)> = Vec::new();
    let mut acc = (0.0, 0u64);
    for (e, c) in cells {
        acc.0 += e;
        acc.1 += c;
        if acc.0 >= 5.0 {
            merged.push(acc);
            acc = (0.0, 0);
        }
    }
    if acc.0 > 0.0 {
        match merged.last_mut() {
            Some(last) => {
                last.0 += acc.0;
                last.1 += acc.1;
            }
            None => merged.push(acc),
        }
    }
    if merged.len() < 2 {
        return 1.0;
    }
    let stat: f64 = merged
        .iter()
        .map(|&(e, c)| {
            let d = c as f64 - e;
            d * d / e
        })
        .sum();
    let df = (merged.len() - 1) as f64;
    ChiSquared::new(df).map_or(0.0, |d| d.sf(stat))
}

/// Asymptotic two-sided Kolmogorov–Smirnov p-value of `samples` against `cdf`.
pub fn ks_pvalue(samples: &mut [f64], cdf: impl Fn(f64) -> f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len() as f64;
    let mut d: f64 = 0.0;
    for (i, &x) in samples.iter().enumerate() {
        let f = cdf(x);
        d = d.max((i as f64 + 1.0) / n - f).max(f - i as f64 / n);
    }
    let lambda = (n.sqrt() + 0.12 + 0.11 / n.sqrt()) * d;
    let mut p = 0.0;
    for k in 1..=100 {
        let k = f64::from(k);
        p += 2.0 * (-1f64).powf(k - 1.0) * (-2.0 * k * k * lambda * lambda).exp();
    }
    p.clamp(0.0, 1.0)
}
