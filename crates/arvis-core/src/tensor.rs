//! [`Tensor`]: an f32, row-major, cheaply clonable tensor.
//!
//! The storage is an enum, CPU array or GPU buffer, and every op dispatches on it, so model code
//! is written once (see `shared/design.md`). On the CPU the data is an [`ndarray::ArcArray`]
//! that is **always in standard (C-contiguous) layout**; every constructor and op upholds this,
//! so kernels can work on plain slices. On the GPU it is a contiguous [`GpuBuffer`] shared by
//! clones (reshapes are free), recorded into the device's command batch by every op.

use std::sync::Arc;

use ndarray::{ArcArray, IxDyn};

use crate::error::{Error, Result};
use crate::gpu::{GpuBuffer, GpuContext};
use crate::rng::SeededRng;

/// Where a tensor's data lives.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Storage {
    /// Host memory: a shared, contiguous ndarray.
    Cpu(ArcArray<f32, IxDyn>),
    /// A wgpu storage buffer.
    Gpu(GpuStorage),
}

/// A tensor's data on the GPU: a row-major buffer, its shape and the device's context.
#[derive(Clone, Debug)]
pub struct GpuStorage {
    buffer: Arc<GpuBuffer>,
    shape: Vec<usize>,
    ctx: GpuContext,
}

impl GpuStorage {
    /// The buffer (shared by the tensor's clones and reshapes).
    pub fn buffer(&self) -> &GpuBuffer {
        &self.buffer
    }

    /// The device's context.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
}

/// The device a tensor lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Device {
    /// Host CPU (rayon-parallel kernels).
    Cpu,
    /// The GPU of the process-wide [`GpuContext::shared`] (WGSL kernels through wgpu).
    Gpu,
}

impl Device {
    /// `cpu` or `gpu`.
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Gpu => "gpu",
        }
    }
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

    /// A tensor of `shape` filled with `value` on the same device (and GPU context) as `self`
    /// (`torch`'s `new_full`).
    ///
    /// Errors: [`Error::Gpu`] when the device allocation fails.
    pub fn new_full(&self, shape: &[usize], value: f32) -> Result<Tensor> {
        match &self.storage {
            Storage::Cpu(_) => Ok(Self::full(shape, value)),
            Storage::Gpu(g) => {
                let n = numel(shape);
                let buffer = if value == 0.0 {
                    GpuBuffer::zeros(&g.ctx, n)?
                } else {
                    // Small constants only in practice (biases, masks): an upload is simplest.
                    GpuBuffer::upload(&g.ctx, &vec![value; n])?
                };
                Tensor::from_gpu(&g.ctx, buffer, shape)
            }
        }
    }

    /// Zeros of `shape` on `self`'s device ([`Tensor::new_full`] with 0).
    pub fn new_zeros(&self, shape: &[usize]) -> Result<Tensor> {
        self.new_full(shape, 0.0)
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

    /// Wraps a GPU buffer of `numel(shape)` values.
    ///
    /// Errors: [`Error::ElementCount`] when the lengths differ.
    pub fn from_gpu(ctx: &GpuContext, buffer: GpuBuffer, shape: &[usize]) -> Result<Self> {
        Self::from_gpu_shared(ctx, Arc::new(buffer), shape)
    }

    /// [`Tensor::from_gpu`] over a buffer other tensors may share.
    pub fn from_gpu_shared(
        ctx: &GpuContext,
        buffer: Arc<GpuBuffer>,
        shape: &[usize],
    ) -> Result<Self> {
        let expected = numel(shape);
        if buffer.len() != expected {
            return Err(Error::ElementCount {
                op: "from_gpu",
                len: buffer.len(),
                shape: shape.to_vec(),
                expected,
            });
        }
        Ok(Tensor {
            storage: Storage::Gpu(GpuStorage {
                buffer,
                shape: shape.to_vec(),
                ctx: ctx.clone(),
            }),
        })
    }

    /// The GPU storage, if the tensor lives on the GPU.
    pub fn as_gpu(&self) -> Option<&GpuStorage> {
        match &self.storage {
            Storage::Gpu(g) => Some(g),
            Storage::Cpu(_) => None,
        }
    }

    /// A copy on `device` (a cheap clone when it is already there). `Device::Gpu` uploads to
    /// [`GpuContext::shared`]; use [`Tensor::to_gpu`] for another context.
    ///
    /// Errors: [`Error::Gpu`] when no adapter exists, the tensor exceeds the binding limit, or a
    /// download fails.
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        match device {
            Device::Cpu => self.to_cpu(),
            Device::Gpu => self.to_gpu(GpuContext::shared()?),
        }
    }

    /// A copy on the device (and GPU context) `other` lives on.
    pub fn to_device_of(&self, other: &Tensor) -> Result<Tensor> {
        match &other.storage {
            Storage::Cpu(_) => self.to_cpu(),
            Storage::Gpu(g) => self.to_gpu(&g.ctx),
        }
    }

    /// A copy on `ctx`'s device (a clone when it is already there).
    pub fn to_gpu(&self, ctx: &GpuContext) -> Result<Tensor> {
        match &self.storage {
            Storage::Gpu(g) if g.ctx.same_device(ctx) => Ok(self.clone()),
            Storage::Gpu(_) => self.to_cpu()?.to_gpu(ctx),
            Storage::Cpu(_) => {
                let buffer = GpuBuffer::upload(ctx, self.data())?;
                Tensor::from_gpu(ctx, buffer, self.shape())
            }
        }
    }

    /// A copy in host memory (a clone when it is already there; a GPU tensor is downloaded,
    /// which submits the device's pending work and waits for it).
    pub fn to_cpu(&self) -> Result<Tensor> {
        match &self.storage {
            Storage::Cpu(_) => Ok(self.clone()),
            Storage::Gpu(g) => {
                let data = g.buffer.download(&g.ctx)?;
                Tensor::from_vec(data, &g.shape)
            }
        }
    }

    /// Same data, new shape of equal element count; no copy on either device. Internal: the
    /// caller has validated the shape.
    pub(crate) fn with_shape(&self, shape: &[usize]) -> Result<Tensor> {
        match &self.storage {
            Storage::Gpu(g) => Tensor::from_gpu_shared(&g.ctx, Arc::clone(&g.buffer), shape),
            Storage::Cpu(a) => {
                let a = a
                    .clone()
                    .into_shape_with_order(IxDyn(shape))
                    .map_err(|e| Error::arg("reshape", e.to_string()))?;
                Ok(Tensor::from_array(a))
            }
        }
    }

    /// The shape (dimension sizes).
    pub fn shape(&self) -> &[usize] {
        match &self.storage {
            Storage::Cpu(a) => a.shape(),
            Storage::Gpu(g) => &g.shape,
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
            Storage::Gpu(_) => Device::Gpu,
        }
    }

    /// The underlying storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Copies the data out in row-major order.
    ///
    /// # Panics
    /// When a GPU download fails (device lost); library code on the GPU path uses
    /// [`Tensor::try_to_vec`].
    pub fn to_vec(&self) -> Vec<f32> {
        match &self.storage {
            Storage::Cpu(_) => self.data().to_vec(),
            Storage::Gpu(_) => self.try_to_vec().expect("GPU download failed"),
        }
    }

    /// Copies the data out in row-major order (downloading a GPU tensor).
    ///
    /// Errors: [`Error::Gpu`] when the download fails or the device reported an error.
    pub fn try_to_vec(&self) -> Result<Vec<f32>> {
        match &self.storage {
            Storage::Cpu(_) => Ok(self.data().to_vec()),
            Storage::Gpu(g) => g.buffer.download(&g.ctx),
        }
    }

    /// The data as an ndarray (a cheap shared handle on the CPU).
    ///
    /// # Panics
    /// When a GPU download fails, as [`Tensor::to_vec`].
    pub fn to_ndarray(&self) -> ArcArray<f32, IxDyn> {
        match &self.storage {
            Storage::Cpu(a) => a.clone(),
            Storage::Gpu(_) => self.to_cpu().expect("GPU download failed").to_ndarray(),
        }
    }

    /// The single value of a one-element tensor.
    pub fn to_scalar(&self) -> Result<f32> {
        match self.try_to_vec()?.as_slice() {
            [v] => Ok(*v),
            _ => Err(Error::shape(
                "to_scalar",
                "exactly one element",
                self.shape(),
            )),
        }
    }

    /// Row-major view of the CPU data. CPU kernels use this; the invariant that CPU arrays are
    /// in standard layout makes it infallible.
    ///
    /// # Panics
    /// On a GPU tensor: every op dispatches on the device before reaching a CPU kernel, so this
    /// is an internal bug.
    pub(crate) fn data(&self) -> &[f32] {
        match &self.storage {
            Storage::Cpu(a) => a.as_slice().expect("invariant: CPU tensors are contiguous"),
            Storage::Gpu(_) => panic!("internal: a CPU kernel was given a GPU tensor"),
        }
    }
}

/// The GPU context all of `tensors` live on, `None` when all are on the CPU.
///
/// Errors: [`Error::Device`] when they are on different devices.
pub(crate) fn gpu_context(op: &'static str, tensors: &[&Tensor]) -> Result<Option<GpuContext>> {
    let mut ctx: Option<&GpuContext> = None;
    let mut cpu = false;
    for t in tensors {
        match &t.storage {
            Storage::Cpu(_) => cpu = true,
            Storage::Gpu(g) => match ctx {
                Some(c) if !c.same_device(&g.ctx) => {
                    return Err(Error::Device {
                        op,
                        msg: "operands on two different GPU contexts".into(),
                    });
                }
                _ => ctx = Some(&g.ctx),
            },
        }
    }
    match (ctx, cpu) {
        (Some(_), true) => Err(Error::Device {
            op,
            msg: "operands on CPU and GPU: move them with `to_device` first".into(),
        }),
        (c, _) => Ok(c.cloned()),
    }
}

/// The present tensors of a list with optional operands.
pub(crate) fn operands<'a>(ts: &[Option<&'a Tensor>]) -> Vec<&'a Tensor> {
    ts.iter().flatten().copied().collect()
}

/// Runs a CPU op for GPU operands: downloads them, applies `f`, uploads the result to `ctx`.
/// The stop-gap for ops without a WGSL kernel yet; counted by
/// [`GpuContext::host_fallbacks`].
pub(crate) fn via_host(
    ctx: &GpuContext,
    inputs: &[&Tensor],
    f: impl FnOnce(&[Tensor]) -> Result<Tensor>,
) -> Result<Tensor> {
    ctx.count_host_fallback();
    let host: Vec<Tensor> = inputs.iter().map(|t| t.to_cpu()).collect::<Result<_>>()?;
    f(&host)?.to_gpu(ctx)
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
