//! The linear-algebra and image ops (matmul, linear with fused activations, packed products,
//! conv2d, resampling) against naive f64 references on each device (`device_tests!`:
//! `<op>::cpu` and `<op>::gpu`), with odd sizes that leave partial tiles on every edge.
//!
//! Every op this binary runs on the GPU has a WGSL kernel, so the shared context's host-fallback
//! counter must stay 0 for the whole process (tests run in parallel threads of one process:
//! any op added here that still round-trips through the host would fail every GPU case).

mod common;

use arvis_core::ops::{
    Activation, Conv2dParams, Conv3x3Winograd, PackedMatrix, Padding2d, WeightStorage, round_to_f16,
};
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

fn packed_case(device: Device) -> TestResult {
    let shapes: [(&[usize], usize); 4] =
        [(&[1, 33], 65), (&[7, 65], 7), (&[2, 3, 33], 1), (&[5], 40)];
    for (i, (sx, n)) in shapes.into_iter().enumerate() {
        let d = *sx.last().expect("rank >= 1");
        let x = randn(sx, 600 + i as u64);
        let w = randn(&[n, d], 700 + i as u64).scale(0.5)?;
        let w_kn = w.transpose(0, 1)?;
        let bias = randn(&[n], 800 + i as u64);
        let xd = on(&x, device)?;
        for with_bias in [false, true] {
            let b = with_bias.then_some(&bias);
            let bd = b.map(|b| on(b, device)).transpose()?;
            let packs = [
                (
                    "from_linear",
                    PackedMatrix::from_linear(&on(&w, device)?, bd.as_ref())?,
                ),
                (
                    "from_kn",
                    PackedMatrix::from_kn(&on(&w_kn, device)?, bd.as_ref())?,
                ),
            ];
            for (how, p) in &packs {
                assert_eq!(p.device(), device);
                assert_eq!((p.k(), p.n(), p.has_bias()), (d, n, with_bias));
                let (want, shape) = naive_linear(&x, &w, b, Activation::None);
                let got = xd.matmul_packed(p)?;
                assert_eq!(got.shape(), shape.as_slice());
                let what = format!("matmul_packed {how} {sx:?} n={n} bias={with_bias}");
                check(Tolerance::MATMUL, &what, device, &got, &want)?;
                for act in ACTS {
                    let (want, _) = naive_linear(&x, &w, b, act);
                    let got = xd.matmul_packed_act(p, act)?;
                    let what = format!("matmul_packed_act {act:?} {how} {sx:?} bias={with_bias}");
                    check(Tolerance::MATMUL, &what, device, &got, &want)?;
                }
            }
        }
    }
    // Shape errors on either device; device mismatches.
    let p = PackedMatrix::from_linear(&on(&randn(&[4, 3], 1), device)?, None)?;
    assert!(matches!(
        on(&randn(&[2, 5], 2), device)?.matmul_packed(&p),
        Err(Error::Shape { .. })
    ));
    assert!(
        PackedMatrix::from_linear(
            &on(&randn(&[4, 3], 1), device)?,
            Some(&on(&randn(&[3], 2), device)?)
        )
        .is_err()
    );
    assert!(PackedMatrix::from_kn(&on(&randn(&[2, 4, 3], 1), device)?, None).is_err());
    if device == Device::Gpu {
        let cpu_packed = PackedMatrix::from_linear(&randn(&[4, 3], 1), None)?;
        let x = randn(&[2, 3], 3);
        assert!(matches!(
            on(&x, device)?.matmul_packed(&cpu_packed),
            Err(Error::Device { .. })
        ));
        assert!(matches!(x.matmul_packed(&p), Err(Error::Device { .. })));
        assert!(matches!(
            PackedMatrix::from_linear(&on(&randn(&[4, 3], 1), device)?, Some(&randn(&[4], 2))),
            Err(Error::Device { .. })
        ));
    }
    assert_no_host_fallback(device)
}

/// `(x, w, bias)` shapes and stride/padding of one convolution: `[n, c, h, w]`, `[o, c, kh, kw]`,
/// stride (y, x), padding `[top, bottom, left, right]`.
type ConvCase = ([usize; 4], [usize; 4], (usize, usize), [usize; 4]);

const CONVS: [ConvCase; 8] = [
    ([1, 1, 1, 1], [1, 1, 1, 1], (1, 1), [0, 0, 0, 0]),
    ([2, 3, 7, 9], [5, 3, 3, 3], (1, 1), [1, 1, 1, 1]),
    // The VQ-VAE downsample: stride 2, pad (0, 1, 0, 1).
    ([1, 4, 8, 8], [7, 4, 3, 3], (2, 2), [0, 1, 0, 1]),
    // Pointwise.
    ([2, 5, 6, 5], [3, 5, 1, 1], (1, 1), [0, 0, 0, 0]),
    // A 5×3 kernel, mixed strides, asymmetric padding.
    ([1, 3, 9, 7], [17, 3, 5, 3], (2, 1), [2, 0, 1, 2]),
    // Depth (c·9 = 180) over several tiles, channels over a row tile.
    ([1, 20, 6, 6], [18, 20, 3, 3], (1, 1), [1, 1, 1, 1]),
    ([1, 2, 5, 5], [65, 2, 3, 3], (1, 1), [1, 1, 1, 1]),
    // Output pixels over several column tiles.
    ([1, 2, 11, 13], [3, 2, 3, 3], (1, 1), [1, 1, 1, 1]),
];

/// `WeightStorage::F16`: the product of the half-rounded weights (f32 accumulation) on both
/// devices — the GPU reading packed halves, the CPU the rounded values as f32 — at the f32
/// matmul tolerance, and the f32 product at f16's; odd `k·n` (a zero pad half), bias on and
/// off, every fused activation, a tall `x` (the 4-row register tiles).
fn packed_f16_case(device: Device) -> TestResult {
    let shapes: [(&[usize], usize); 5] = [
        (&[3, 33], 65),
        (&[17, 65], 7),
        (&[2, 3, 7], 5),
        (&[5], 40),
        (&[1, 1], 1),
    ];
    for (i, (sx, n)) in shapes.into_iter().enumerate() {
        let d = *sx.last().expect("rank >= 1");
        let x = randn(sx, 900 + i as u64);
        let w = randn(&[n, d], 950 + i as u64).scale(0.5)?;
        let w16 = w.map(round_to_f16)?;
        let w_kn = w.transpose(0, 1)?;
        let bias = randn(&[n], 980 + i as u64);
        let xd = on(&x, device)?;
        for with_bias in [false, true] {
            let b = with_bias.then_some(&bias);
            let bd = b.map(|b| on(b, device)).transpose()?;
            let f16 = WeightStorage::F16;
            let packs = [
                (
                    "from_linear_with",
                    PackedMatrix::from_linear_with(&on(&w, device)?, bd.as_ref(), f16)?,
                ),
                (
                    "from_kn_with",
                    PackedMatrix::from_kn_with(&on(&w_kn, device)?, bd.as_ref(), f16)?,
                ),
            ];
            for (how, p) in &packs {
                assert_eq!(p.device(), device);
                assert_eq!(p.storage(), WeightStorage::F16);
                assert_eq!((p.k(), p.n(), p.has_bias()), (d, n, with_bias));
                for act in ACTS {
                    let got = xd.matmul_packed_act(p, act)?;
                    let what = format!("f16 {how} {act:?} {sx:?} n={n} bias={with_bias}");
                    let (want16, shape) = naive_linear(&x, &w16, b, act);
                    assert_eq!(got.shape(), shape.as_slice());
                    check(Tolerance::MATMUL, &what, device, &got, &want16)?;
                    let (want32, _) = naive_linear(&x, &w, b, act);
                    check(
                        Tolerance::F16,
                        &format!("{what} vs f32"),
                        device,
                        &got,
                        &want32,
                    )?;
                }
            }
        }
    }
    // Exact values through a one-term product: ties round to even (1 + 2⁻¹¹ → 1,
    // 1 + 3·2⁻¹¹ → 1 + 2⁻⁹), the largest half (−65519 → −65504; −70000 overflows to −inf on the host), subnormals, the low/high half of each word in
    // order (3 columns: the last word carries a zero pad half).
    let vals = [1.0 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11), -65519.0];
    let sub = [2f32.powi(-20), -3.0e-8, 0.1];
    for col in [vals, sub] {
        let w = Tensor::from_vec(col.to_vec(), &[3, 1])?;
        let p = PackedMatrix::from_linear_with(&on(&w, device)?, None, WeightStorage::F16)?;
        let got = on(&Tensor::from_vec(vec![1.0], &[1, 1])?, device)?
            .matmul_packed(&p)?
            .try_to_vec()?;
        let want: Vec<f32> = col.iter().map(|&v| round_to_f16(v)).collect();
        assert_eq!(got, want, "{device:?}: {col:?}");
    }
    assert_eq!(round_to_f16(1.0 + 2f32.powi(-11)), 1.0);
    assert_eq!(
        round_to_f16(1.0 + 3.0 * 2f32.powi(-11)),
        1.0 + 2f32.powi(-9)
    );
    assert_eq!(round_to_f16(-70000.0), f32::NEG_INFINITY);
    assert_no_host_fallback(device)
}

fn conv_case(device: Device) -> TestResult {
    for (i, (sx, sw, stride, pad)) in CONVS.into_iter().enumerate() {
        let x = randn(&sx, 900 + i as u64);
        let w = randn(&sw, 1000 + i as u64).scale(0.3)?;
        let bias = randn(&[sw[0]], 1100 + i as u64);
        let (xd, wd, bd) = (on(&x, device)?, on(&w, device)?, on(&bias, device)?);
        let p = Conv2dParams {
            stride,
            padding: Padding2d {
                top: pad[0],
                bottom: pad[1],
                left: pad[2],
                right: pad[3],
            },
        };
        for with_bias in [false, true] {
            let bdev = with_bias.then_some(&bd);
            let bref = with_bias.then(|| f64s(&bias));
            let (want, shape) =
                naive_conv2d(&f64s(&x), sx, &f64s(&w), sw, bref.as_deref(), stride, pad);
            for (how, got) in [
                ("conv2d", xd.conv2d(&wd, bdev, p)?),
                ("conv2d_im2col", xd.conv2d_im2col(&wd, bdev, p)?),
            ] {
                assert_eq!(got.shape(), shape.as_slice());
                let what = format!("{how} {sx:?} {sw:?} s={stride:?} p={pad:?} bias={with_bias}");
                check(Tolerance::MATMUL, &what, device, &got, &want)?;
            }
            if sw[2..] == [3, 3] && stride == (1, 1) {
                let wino = Conv3x3Winograd::new(&wd)?;
                assert_eq!(wino.device(), device);
                let got = wino.apply(&xd, bdev, p.padding)?;
                let what = format!("winograd {sx:?} {sw:?} p={pad:?} bias={with_bias}");
                check(Tolerance::MATMUL, &what, device, &got, &want)?;
            }
        }
    }
    assert_no_host_fallback(device)
}

fn conv_errors_case(device: Device) -> TestResult {
    let t = |s: &[usize]| on(&randn(s, 1), device);
    let p = Conv2dParams::new(1, 1);
    assert!(matches!(
        t(&[1, 3, 5, 5])?.conv2d(&t(&[2, 4, 3, 3])?, None, p),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        t(&[3, 5, 5])?.conv2d(&t(&[2, 3, 3, 3])?, None, p),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        t(&[1, 3, 5, 5])?.conv2d(&t(&[2, 3, 3, 3])?, Some(&t(&[3])?), p),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        t(&[1, 3, 2, 2])?.conv2d(&t(&[2, 3, 5, 5])?, None, Conv2dParams::new(1, 0)),
        Err(Error::Arg { .. })
    ));
    assert!(matches!(
        t(&[1, 3, 5, 5])?.conv2d(&t(&[2, 3, 3, 3])?, None, Conv2dParams::new(0, 1)),
        Err(Error::Arg { .. })
    ));
    let wino = Conv3x3Winograd::new(&t(&[2, 3, 3, 3])?)?;
    assert!(
        wino.apply(&t(&[1, 4, 5, 5])?, None, Padding2d::same(1))
            .is_err()
    );
    if device == Device::Gpu {
        let cpu_wino = Conv3x3Winograd::new(&randn(&[2, 3, 3, 3], 1))?;
        assert!(matches!(
            cpu_wino.apply(&t(&[1, 3, 5, 5])?, None, Padding2d::same(1)),
            Err(Error::Device { .. })
        ));
        assert!(matches!(
            wino.apply(&randn(&[1, 3, 5, 5], 2), None, Padding2d::same(1)),
            Err(Error::Device { .. })
        ));
        assert!(matches!(
            t(&[1, 3, 5, 5])?.conv2d(&randn(&[2, 3, 3, 3], 2), None, p),
            Err(Error::Device { .. })
        ));
    }
    assert_no_host_fallback(device)
}

/// Applies `f` to each `[h, w]` plane of `x` (`[.., h, w]`).
fn per_plane(x: &Tensor, f: impl Fn(&[f64], usize, usize) -> Vec<f64>) -> Vec<f64> {
    let s = x.shape();
    let (h, w) = (s[s.len() - 2], s[s.len() - 1]);
    f64s(x).chunks(h * w).flat_map(|p| f(p, h, w)).collect()
}

fn resize_case(device: Device) -> TestResult {
    let shapes: [&[usize]; 3] = [&[2, 3, 5, 7], &[16, 16], &[1, 1, 1]];
    for (i, s) in shapes.into_iter().enumerate() {
        let x = randn(s, 1200 + i as u64);
        let xd = on(&x, device)?;
        let (h, w) = (s[s.len() - 2], s[s.len() - 1]);
        let with_hw = |oh: usize, ow: usize| {
            let mut o = s.to_vec();
            let r = o.len();
            o[r - 2] = oh;
            o[r - 1] = ow;
            o
        };
        for factor in [1, 2, 3] {
            let got = xd.upsample_nearest(factor)?;
            assert_eq!(got.shape(), with_hw(h * factor, w * factor).as_slice());
            let want = per_plane(&x, |p, h, w| {
                (0..h * factor * w * factor)
                    .map(|j| p[(j / (w * factor)) / factor * w + (j % (w * factor)) / factor])
                    .collect()
            });
            check(
                Tolerance::ELEMENTWISE,
                &format!("nearest x{factor} {s:?}"),
                device,
                &got,
                &want,
            )?;
        }
        for (oh, ow) in [(11, 16), (13, 9), (3, 2), (h, w), (1, 1)] {
            let got = xd.resize_bicubic(oh, ow)?;
            assert_eq!(got.shape(), with_hw(oh, ow).as_slice());
            let want = per_plane(&x, |p, h, w| naive_bicubic(p, h, w, oh, ow));
            check(
                Tolerance::ELEMENTWISE,
                &format!("bicubic {s:?} → {oh}×{ow}"),
                device,
                &got,
                &want,
            )?;
            let got = xd.resize_area(oh, ow)?;
            assert_eq!(got.shape(), with_hw(oh, ow).as_slice());
            let want = per_plane(&x, |p, h, w| naive_area(p, h, w, oh, ow));
            check(
                Tolerance::ELEMENTWISE,
                &format!("area {s:?} → {oh}×{ow}"),
                device,
                &got,
                &want,
            )?;
        }
    }
    let x = on(&randn(&[2, 4, 4], 1), device)?;
    assert!(matches!(x.upsample_nearest(0), Err(Error::Arg { .. })));
    assert!(matches!(x.resize_bicubic(0, 3), Err(Error::Arg { .. })));
    assert!(matches!(x.resize_area(3, 0), Err(Error::Arg { .. })));
    let v = on(&randn(&[4], 1), device)?;
    assert!(matches!(v.resize_area(2, 2), Err(Error::Shape { .. })));
    assert_no_host_fallback(device)
}

device_tests! {
    matmul_matches_f64: matmul_case;
    matmul_shape_errors: matmul_errors_case;
    linear_and_fused_activations: linear_case;
    matmul_packed_matches_f64: packed_case;
    matmul_packed_f16_weights: packed_f16_case;
    conv2d_matches_f64: conv_case;
    conv2d_errors: conv_errors_case;
    resampling_matches_f64: resize_case;
}
