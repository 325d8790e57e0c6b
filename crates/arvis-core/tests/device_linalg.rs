//! The linear-algebra and image ops (matmul, linear with fused activations, packed products,
//! conv2d, resampling) against naive f64 references on each device (`device_tests!`:
//! `<op>::cpu` and `<op>::gpu`), with odd sizes that leave partial tiles on every edge.
//!
//! Every op this binary runs on the GPU has a WGSL kernel, so the shared context's host-fallback
//! counter must stay 0 for the whole process (tests run in parallel threads of one process:
//! any op added here that still round-trips through the host would fail every GPU case).

mod common;

use arvis_core::ops::{Activation, Conv2dParams, Conv3x3Winograd, PackedMatrix, Padding2d};
use arvis_core::{Device, Error, Tensor, Tolerance};
use common::*;

/// `t` moved to `device`.
fn on(t: &Tensor, device: Device) -> arvis_core::Result<Tensor> {
    t.to_device(device)
}

/// Checks `got` (on `device`) against an f64 reference.
fn check(tol: Tolerance, what: &str, device: Device, got: &Tensor, want: &[f64]) -> TestResult {
    assert_eq!(got.device(), device, "{what}: result on the wrong device");
    let got = got.try_to_vec()?;
    tol.check(&got, want).map_err(|e| format!("{what}: {e}"))?;
    Ok(())
}

/// On the GPU: no op of this process has taken the host round trip.
fn assert_no_host_fallback(device: Device) -> TestResult {
    if device == Device::Gpu {
        let n = arvis_core::gpu::GpuContext::shared()?.host_fallbacks();
        assert_eq!(
            n, 0,
            "{n} GPU op(s) ran through the host instead of a kernel"
        );
    }
    Ok(())
}

fn act_f64(act: Activation, v: f64) -> f64 {
    match act {
        Activation::GeluTanh => {
            0.5 * v
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())
        }
        Activation::Silu => v / (1.0 + (-v).exp()),
        Activation::GeluErf => 0.5 * v * (1.0 + libm::erf(v / 2f64.sqrt())),
        _ => v,
    }
}

const ACTS: [Activation; 4] = [
    Activation::None,
    Activation::GeluTanh,
    Activation::Silu,
    Activation::GeluErf,
];

fn matmul_case(device: Device) -> TestResult {
    // (lhs, rhs, trans_a, trans_b), shapes as stored.
    let cases: [(&[usize], &[usize], bool, bool); 14] = [
        (&[1, 1], &[1, 1], false, false),
        (&[7, 33], &[33, 65], false, false),
        (&[65, 7], &[7, 33], false, false),
        (&[33, 65], &[65, 1], false, false),
        (&[1, 65], &[65, 7], false, false),
        (&[33, 7], &[65, 33], true, true),
        (&[7, 65], &[7, 33], true, false),
        (&[33, 7], &[65, 7], false, true),
        // Batched, shared rhs (folded into one tall product) and per-batch rhs.
        (&[2, 3, 7, 33], &[33, 5], false, false),
        (&[3, 7, 33], &[3, 33, 65], false, false),
        (&[3, 33, 7], &[3, 65, 33], true, true),
        // Broadcast batch dims on either side, a shared lhs.
        (&[2, 1, 5, 7], &[3, 7, 4], false, false),
        (&[4, 7], &[2, 9, 7], false, true),
        // An empty depth: zeros.
        (&[3, 0], &[0, 4], false, false),
    ];
    for (i, (sa, sb, ta, tb)) in cases.into_iter().enumerate() {
        let a = randn(sa, 100 + i as u64);
        let b = randn(sb, 200 + i as u64);
        let got = on(&a, device)?.matmul_t(&on(&b, device)?, ta, tb)?;
        let (want, shape) = naive_matmul(&f64s(&a), sa, &f64s(&b), sb, ta, tb);
        assert_eq!(got.shape(), shape.as_slice(), "{sa:?} {sb:?} {ta} {tb}");
        let what = format!("matmul {sa:?}·{sb:?} t=({ta},{tb})");
        check(Tolerance::MATMUL, &what, device, &got, &want)?;
    }
    assert_no_host_fallback(device)
}

fn matmul_errors_case(device: Device) -> TestResult {
    let t = |s: &[usize]| on(&randn(s, 1), device);
    assert!(matches!(
        t(&[3, 4])?.matmul(&t(&[5, 2])?),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        t(&[2, 3, 4])?.matmul(&t(&[3, 4, 2])?),
        Err(Error::Broadcast { .. })
    ));
    assert!(t(&[4])?.matmul(&t(&[4, 2])?).is_err());
    assert!(matches!(
        t(&[2, 4])?.linear(&t(&[3, 5])?, None),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        t(&[2, 4])?.linear(&t(&[3, 4])?, Some(&t(&[4])?)),
        Err(Error::Shape { .. })
    ));
    if device == Device::Gpu {
        let cpu = randn(&[4, 2], 2);
        assert!(matches!(
            t(&[3, 4])?.matmul(&cpu),
            Err(Error::Device { .. })
        ));
        assert!(matches!(
            t(&[3, 4])?.linear(&t(&[2, 4])?, Some(&randn(&[2], 3))),
            Err(Error::Device { .. })
        ));
    }
    assert_no_host_fallback(device)
}

/// `act(x · wᵀ + bias)` in f64.
fn naive_linear(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    act: Activation,
) -> (Vec<f64>, Vec<usize>) {
    let d = *x.shape().last().expect("rank >= 1");
    let rows = x.numel() / d;
    let (mut want, _) = naive_matmul(&f64s(x), &[rows, d], &f64s(w), w.shape(), false, true);
    let n = w.shape()[0];
    let b = bias.map(f64s);
    for (i, v) in want.iter_mut().enumerate() {
        *v = act_f64(act, *v + b.as_ref().map_or(0.0, |b| b[i % n]));
    }
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank >= 1") = n;
    (want, shape)
}

fn linear_case(device: Device) -> TestResult {
    let shapes: [(&[usize], usize); 4] =
        [(&[1, 1], 1), (&[7, 33], 65), (&[2, 3, 65], 7), (&[17], 33)];
    for (i, (sx, n)) in shapes.into_iter().enumerate() {
        let d = *sx.last().expect("rank >= 1");
        let x = randn(sx, 300 + i as u64);
        let w = randn(&[n, d], 400 + i as u64).scale(0.5)?;
        let bias = randn(&[n], 500 + i as u64);
        let (xd, wd, bd) = (on(&x, device)?, on(&w, device)?, on(&bias, device)?);
        for with_bias in [false, true] {
            let (b, bdev) = if with_bias {
                (Some(&bias), Some(&bd))
            } else {
                (None, None)
            };
            let (want, shape) = naive_linear(&x, &w, b, Activation::None);
            let got = xd.linear(&wd, bdev)?;
            assert_eq!(got.shape(), shape.as_slice());
            check(
                Tolerance::MATMUL,
                &format!("linear {sx:?} n={n} bias={with_bias}"),
                device,
                &got,
                &want,
            )?;
            for act in ACTS {
                let (want, _) = naive_linear(&x, &w, b, act);
                let got = xd.linear_act(&wd, bdev, act)?;
                let what = format!("linear_act {act:?} {sx:?} n={n} bias={with_bias}");
                check(Tolerance::MATMUL, &what, device, &got, &want)?;
            }
        }
    }
    assert_no_host_fallback(device)
}

device_tests! {
    matmul_matches_f64: matmul_case;
    matmul_shape_errors: matmul_errors_case;
    linear_and_fused_activations: linear_case;
}
