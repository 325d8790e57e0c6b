//! [`Tensor`]: an f32, row-major, cheaply clonable tensor.
//!
//! The storage is an enum so that a GPU buffer can join the CPU array later without touching
//! model code: every op dispatches on the storage (see `shared/design.md`). On the CPU the data
//! is an [`ndarray::ArcArray`] that is **always in standard (C-contiguous) layout**; every
//! constructor and op upholds this, so kernels can work on plain slices.

use ndarray::{ArcArray, IxDyn};

use crate::error::{Error, Result};
use crate::rng::SeededRng;

/// Where a tensor's data lives.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Storage {
    /// Host memory: a shared, contiguous ndarray.
    Cpu(ArcArray<f32, IxDyn>),
}

/// The device a tensor lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Device {
    /// Host CPU (rayon-parallel kernels).
    Cpu,
}

/// An f32 tensor in row-major layout. Cloning is `O(1)` (the data is shared).
#[derive(Clone, Debug)]
pub struct Tensor {
    storage: Storage,
}

/// Product of a shape's dimensions (1 for a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    /// Wraps a contiguous array. Internal: callers guarantee standard layout.
    pub(crate) fn from_array(a: ArcArray<f32, IxDyn>) -> Self {
        debug_assert!(a.is_standard_layout());
        Tensor {
            storage: Storage::Cpu(a),
        }
    }

    /// Builds a tensor from a row-major buffer; `data.len()` must equal the shape's product.
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Result<Self> {
        let expected = numel(shape);
        if data.len() != expected {
            return Err(Error::ElementCount {
                op: "from_vec",
                len: data.len(),
                shape: shape.to_vec(),
                expected,
            });
        }
        let a = ArcArray::from_shape_vec(IxDyn(shape), data).map_err(|e| Error::Arg {
            op: "from_vec",
            msg: e.to_string(),
        })?;
        Ok(Self::from_array(a))
    }

    /// Copies a slice into a new tensor.
    pub fn from_slice(data: &[f32], shape: &[usize]) -> Result<Self> {
        Self::from_vec(data.to_vec(), shape)
    }

    /// Wraps any ndarray (copied into standard layout if it is not already).
    pub fn from_ndarray<S, D>(a: ndarray::ArrayBase<S, D>) -> Self
    where
        S: ndarray::Data<Elem = f32>,
        D: ndarray::Dimension,
    {
        let a = a.into_dyn();
        let owned = a.as_standard_layout().into_owned();
        Self::from_array(owned.into_shared())
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self::full(shape, 0.0)
    }

    /// A tensor of ones.
    pub fn ones(shape: &[usize]) -> Self {
        Self::full(shape, 1.0)
    }

    /// A tensor filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Self {
        Self::from_array(ArcArray::from_elem(IxDyn(shape), value))
    }

    /// A rank-0 tensor holding `value`.
    pub fn scalar(value: f32) -> Self {
        Self::full(&[], value)
    }

    /// Standard-normal draws from `rng` (in row-major order).
    pub fn randn(shape: &[usize], rng: &mut SeededRng) -> Self {
        let data = rng.normal_vec(numel(shape));
        Self::from_array(ArcArray::from_shape_vec(IxDyn(shape), data).expect("length matches"))
    }

    /// Uniform draws in `[lo, hi)` from `rng` (in row-major order).
    pub fn uniform(shape: &[usize], lo: f32, hi: f32, rng: &mut SeededRng) -> Self {
        let data = (0..numel(shape))
            .map(|_| lo + (hi - lo) * rng.uniform_f32())
            .collect();
        Self::from_array(ArcArray::from_shape_vec(IxDyn(shape), data).expect("length matches"))
    }

    /// `[0, 1, .., n-1]` as f32.
    pub fn arange(n: usize) -> Self {
        let data = (0..n).map(|i| i as f32).collect();
        Self::from_array(ArcArray::from_shape_vec(IxDyn(&[n]), data).expect("length matches"))
    }

    /// The shape (dimension sizes).
    pub fn shape(&self) -> &[usize] {
        match &self.storage {
            Storage::Cpu(a) => a.shape(),
        }
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape().len()
    }

    /// Total number of elements.
    pub fn numel(&self) -> usize {
        numel(self.shape())
    }

    /// Size of dimension `dim` (negative counts from the end).
    pub fn dim(&self, dim: isize) -> Result<usize> {
        let d = self.axis("dim", dim)?;
        Ok(self.shape()[d])
    }

    /// Resolves a possibly negative dimension index against this tensor's rank.
    pub fn axis(&self, op: &'static str, dim: isize) -> Result<usize> {
        resolve_axis(op, dim, self.rank())
    }

    /// The device holding the data.
    pub fn device(&self) -> Device {
        match &self.storage {
            Storage::Cpu(_) => Device::Cpu,
        }
    }

    /// The underlying storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Copies the data out in row-major order.
    pub fn to_vec(&self) -> Vec<f32> {
        self.data().to_vec()
    }

    /// The data as an ndarray (a cheap shared handle on the CPU).
    pub fn to_ndarray(&self) -> ArcArray<f32, IxDyn> {
        match &self.storage {
            Storage::Cpu(a) => a.clone(),
        }
    }

    /// The single value of a one-element tensor.
    pub fn to_scalar(&self) -> Result<f32> {
        match self.data() {
            [v] => Ok(*v),
            _ => Err(Error::shape(
                "to_scalar",
                "exactly one element",
                self.shape(),
            )),
        }
    }

    /// Row-major view of the CPU data. Kernels use this; the invariant that CPU arrays are in
    /// standard layout makes it infallible.
    pub(crate) fn data(&self) -> &[f32] {
        match &self.storage {
            Storage::Cpu(a) => a.as_slice().expect("invariant: CPU tensors are contiguous"),
        }
    }
}

/// Resolves `dim` (negative counts from the end) against `rank`.
pub(crate) fn resolve_axis(op: &'static str, dim: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    let d = if dim < 0 { dim + r } else { dim };
    if d < 0 || d >= r {
        return Err(Error::Dim { op, dim, rank });
    }
    Ok(d as usize)
}

/// Splits `shape` around `axis` into `(outer, n, inner)` element counts.
pub(crate) fn outer_n_inner(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        numel(&shape[..axis]),
        shape[axis],
        numel(&shape[axis + 1..]),
    )
}
