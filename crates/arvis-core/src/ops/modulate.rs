//! The fused AdaLN modulation `x·(1 + scale) + shift` (VAR, MAR and DiT blocks), one pass
//! instead of an add, a mul and an add.

use ndarray::{ArrayD, IxDyn, Zip};
use rayon::prelude::*;

use super::broadcast::{PAR_MIN, broadcast_shapes};
use crate::error::{Error, Result};
use crate::gpu::ops::elementwise;
use crate::tensor::{Tensor, gpu_context};

impl Tensor {
    /// AdaLN modulation `self·(1 + scale) + shift`, with `scale` and `shift` broadcast against
    /// `self` as in [`Tensor::add`] (numpy rules; typically `self` `[B, L, C]`, `scale`/`shift`
    /// `[B, 1, C]`). Per element `(1 + scale)` is formed first, as the unfused
    /// `x.mul(&scale.add_scalar(1.0)?)?.add(&shift)?`.
    ///
    /// Errors: [`Error::Broadcast`] when the shapes do not broadcast together,
    /// [`Error::Device`] when the operands are on different devices.
    pub fn modulate(&self, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
        const OP: &str = "modulate";
        let bad = |rhs: &Tensor| Error::Broadcast {
            op: OP,
            lhs: self.shape().to_vec(),
            rhs: rhs.shape().to_vec(),
        };
        let with_scale = broadcast_shapes(self.shape(), scale.shape()).ok_or_else(|| bad(scale))?;
        let out_shape = broadcast_shapes(&with_scale, shift.shape()).ok_or_else(|| bad(shift))?;
        if let Some(ctx) = gpu_context(OP, &[self, scale, shift])? {
            return elementwise::modulate(&ctx, self, scale, shift, &out_shape);
        }
        let f = |x: f32, s: f32, b: f32| x * (1.0 + s) + b;
        if [self, scale, shift].iter().all(|t| t.shape() == out_shape) {
            let (x, s, b) = (self.data(), scale.data(), shift.data());
            let mut out = vec![0.0f32; x.len()];
            let kernel = |(o, ((&x, &s), &b)): (&mut f32, ((&f32, &f32), &f32))| *o = f(x, s, b);
            if out.len() >= PAR_MIN {
                out.par_iter_mut()
                    .zip(x.par_iter().zip(s.par_iter()).zip(b.par_iter()))
                    .for_each(kernel);
            } else {
                out.iter_mut().zip(x.iter().zip(s).zip(b)).for_each(kernel);
            }
            return Tensor::from_vec(out, &out_shape);
        }
        let dim = IxDyn(&out_shape);
        let (xa, sa, ba) = (self.to_ndarray(), scale.to_ndarray(), shift.to_ndarray());
        let (Some(xv), Some(sv), Some(bv)) = (
            xa.broadcast(dim.clone()),
            sa.broadcast(dim.clone()),
            ba.broadcast(dim.clone()),
        ) else {
            return Err(bad(scale));
        };
        let mut o = ArrayD::<f32>::zeros(dim);
        Zip::from(&mut o)
            .and(&xv)
            .and(&sv)
            .and(&bv)
            .par_for_each(|o, &x, &s, &b| *o = f(x, s, b));
        Ok(Tensor::from_ndarray(o))
    }
}
