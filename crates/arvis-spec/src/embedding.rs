//! Token embeddings (a VQ codebook or an LLM input-embedding table) and the nearest-neighbour
//! table built from them: the notion of "similar tokens" the lossy samplers relax over.

use crate::error::{Result, SpecError};

/// `V` vectors of dimension `D`, row-major `f32` (`[V, D]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    vocab: usize,
    dim: usize,
    data: Vec<f32>,
}

impl Embeddings {
    /// Wraps `data` (`vocab · dim` finite values, row `i` = token `i`).
    pub fn new(vocab: usize, dim: usize, data: Vec<f32>) -> Result<Self> {
        if vocab == 0 || dim == 0 || data.len() != vocab * dim {
            return Err(SpecError::arg(
                "Embeddings::new",
                format!("{} values for [{vocab}, {dim}]", data.len()),
            ));
        }
        if let Some(i) = data.iter().position(|x| !x.is_finite()) {
            return Err(SpecError::arg(
                "Embeddings::new",
                format!("value {i} is not finite"),
            ));
        }
        Ok(Embeddings { vocab, dim, data })
    }

    /// Number of tokens `V`.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Dimension `D`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The vector of token `i` (panics if `i >= V`).
    pub fn get(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Squared L2 distance `‖e_a − e_b‖²` in `f64`.
    pub fn sq_dist(&self, a: usize, b: usize) -> f64 {
        self.get(a)
            .iter()
            .zip(self.get(b))
            .map(|(&x, &y)| {
                let d = f64::from(x) - f64::from(y);
                d * d
            })
            .sum()
    }
}

/// For each token, its `width` nearest other tokens by L2 distance between embeddings,
/// nearest first (ties by lower index); the token itself is excluded (LANTERN's
/// `generate_codebook.py` sets the diagonal to infinity). `[V, width]` of `u32`.
#[derive(Clone, Debug, PartialEq)]
pub struct NeighbourTable {
    vocab: usize,
    width: usize,
    ids: Vec<u32>,
}

impl NeighbourTable {
    /// Builds the table from `emb`, keeping `width.min(V − 1)` neighbours per token. Costs
    /// `O(V² D)`; for a 16384-code codebook and `width = 1000` the table is 64 MiB.
    pub fn from_embeddings(emb: &Embeddings, width: usize) -> Result<Self> {
        let v = emb.vocab();
        if u32::try_from(v).is_err() {
            return Err(SpecError::arg(
                "NeighbourTable::from_embeddings",
                format!("vocabulary of {v} does not fit u32 ids"),
            ));
        }
        let width = width.min(v - 1);
        let mut ids = Vec::with_capacity(v * width);
        let mut cand: Vec<(f64, usize)> = Vec::with_capacity(v);
        for x in 0..v {
            cand.clear();
            cand.extend((0..v).filter(|&y| y != x).map(|y| (emb.sq_dist(x, y), y)));
            let cmp = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
            if width > 0 && width < cand.len() {
                cand.select_nth_unstable_by(width - 1, cmp);
            }
            let head = &mut cand[..width];
            head.sort_unstable_by(cmp);
            ids.extend(head.iter().map(|&(_, y)| y as u32));
        }
        Ok(NeighbourTable {
            vocab: v,
            width,
            ids,
        })
    }

    /// Number of tokens `V`.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Neighbours stored per token.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The neighbours of `x`, nearest first (empty if `x >= V`).
    pub fn of(&self, x: usize) -> &[u32] {
        if x >= self.vocab {
            return &[];
        }
        &self.ids[x * self.width..(x + 1) * self.width]
    }
}
