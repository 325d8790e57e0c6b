//! Where the model's tensors come from: a weights file, a seeded random initialisation (demos
//! and tests), or a dry run that records every name and shape. One construction code path
//! serves all three, so the random model and the shape list always match what `load` reads.

use std::cell::RefCell;

use arvis_core::{SeededRng, Tensor, WeightsScope};

use crate::error::Result;

/// How a tensor is initialised by the random backend.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Init {
    /// Conv weight `[O, I, kh, kw]`: normal with std `1/√(I·kh·kw)`.
    Conv,
    /// Bias: normal with std 0.02.
    Bias,
    /// GroupNorm weight: `1 + 0.1·N(0,1)`.
    NormWeight,
    /// GroupNorm bias: `0.1·N(0,1)`.
    NormBias,
    /// Codebook: standard normal.
    Embedding,
}

pub(crate) enum Backend<'w> {
    Weights(WeightsScope<'w>),
    Random(Box<RefCell<SeededRng>>),
    Record(RefCell<Vec<(String, Vec<usize>)>>),
}

/// A prefixed view over a [`Backend`], like `WeightsScope`.
pub(crate) struct Params<'b, 'w> {
    backend: &'b Backend<'w>,
    prefix: String,
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

impl<'b, 'w> Params<'b, 'w> {
    pub(crate) fn new(backend: &'b Backend<'w>) -> Self {
        Params {
            backend,
            prefix: String::new(),
        }
    }

    /// A nested view (`p.scope("encoder").scope("conv_in")`).
    pub(crate) fn scope(&self, sub: impl std::fmt::Display) -> Params<'b, 'w> {
        Params {
            backend: self.backend,
            prefix: join(&self.prefix, &sub.to_string()),
        }
    }

    /// The tensor `name` under this view, which must have `shape`.
    pub(crate) fn get(&self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let full = join(&self.prefix, name);
        match self.backend {
            Backend::Weights(scope) => Ok(scope.get(&full, shape)?),
            Backend::Record(names) => {
                names.borrow_mut().push((full, shape.to_vec()));
                Ok(Tensor::zeros(shape))
            }
            Backend::Random(rng) => {
                let mut rng = rng.borrow_mut();
                let n = Tensor::randn(shape, &mut rng);
                Ok(match init {
                    Init::Conv => {
                        let fan_in: usize = shape.iter().skip(1).product();
                        n.scale(1.0 / (fan_in.max(1) as f32).sqrt())?
                    }
                    Init::Bias => n.scale(0.02)?,
                    Init::NormWeight => n.affine(0.1, 1.0)?,
                    Init::NormBias => n.scale(0.1)?,
                    Init::Embedding => n,
                })
            }
        }
    }
}
