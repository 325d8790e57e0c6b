//! [`TokenOrder`]: the order in which an autoregressive model emits the codes of a token map.

/// The generation order of a `h × w` token map.
///
/// Tokenizers take and return codes in raster order (row-major over `(y, x)`); a model that
/// generates in another order maps its step `t` to a raster position with
/// [`TokenOrder::position`]. Only raster order exists today; next-scale (VAR),
/// next-neighbour and random orders are planned variants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenOrder {
    /// Left to right, top to bottom (LlamaGen): step `t` is position `t`.
    #[default]
    Raster,
}

impl TokenOrder {
    /// The raster position (`y·w + x`) generated at step `t` of a `h × w` map, `None` when
    /// `t ≥ h·w`.
    pub fn position(self, t: usize, h: usize, w: usize) -> Option<usize> {
        match self {
            TokenOrder::Raster => (t < h * w).then_some(t),
        }
    }

    /// `(y, x)` generated at step `t` of a `h × w` map (`None` when `t ≥ h·w`).
    pub fn coords(self, t: usize, h: usize, w: usize) -> Option<(usize, usize)> {
        self.position(t, h, w).map(|p| (p / w, p % w))
    }

    /// The raster positions of all `h·w` steps, in generation order.
    pub fn positions(self, h: usize, w: usize) -> Vec<usize> {
        (0..h * w).filter_map(|t| self.position(t, h, w)).collect()
    }

    /// Reorders one map's codes from generation order to raster order.
    pub fn to_raster<T: Copy + Default>(self, codes: &[T], h: usize, w: usize) -> Vec<T> {
        let mut out = vec![T::default(); codes.len()];
        for (t, &c) in codes.iter().enumerate() {
            if let Some(p) = self.position(t, h, w) {
                out[p] = c;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::TokenOrder;

    #[test]
    fn raster_is_the_identity() {
        let o = TokenOrder::Raster;
        assert_eq!(o.positions(2, 3), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(o.coords(4, 2, 3), Some((1, 1)));
        assert_eq!(o.position(6, 2, 3), None);
        assert_eq!(o.to_raster(&[5u32, 4, 3, 2], 2, 2), vec![5, 4, 3, 2]);
    }
}
