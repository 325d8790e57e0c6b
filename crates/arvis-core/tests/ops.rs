//! Every CPU op against a naive f64 reference (tests/common), on random inputs with odd sizes
//! and size-1 dims.

mod common;

use arvis_core::ops::{
    Conv2dParams, Conv3x3Winograd, PackedMatrix, Padding2d, gelu_erf, gelu_tanh, silu,
};
use arvis_core::{Error, Tensor, Tolerance};
use common::*;

type BinaryOp = fn(&Tensor, &Tensor) -> arvis_core::Result<Tensor>;
type BinaryCase = (&'static str, BinaryOp, fn(f64, f64) -> f64);
type ConvCase = ([usize; 4], usize, usize, usize, [usize; 4]);
type Reference = Box<dyn Fn(f64) -> f64>;

const EW: Tolerance = Tolerance::ELEMENTWISE;
const MM: Tolerance = Tolerance::MATMUL;

#[test]
fn matmul_matches_naive_with_batches_and_transposes() -> TestResult {
    // (lhs shape, rhs shape, trans_a, trans_b)
    let cases: &[(&[usize], &[usize], bool, bool)] = &[
        (&[1, 1], &[1, 1], false, false),
        (&[3, 5], &[5, 7], false, false),
        (&[5, 3], &[5, 7], true, false),
        (&[3, 5], &[7, 5], false, true),
        (&[5, 3], &[7, 5], true, true),
        (&[2, 3, 17, 33], &[33, 9], false, false), // shared rhs folds the batch
        (&[2, 3, 17, 33], &[9, 33], false, true),
        (&[4, 1, 6, 5], &[3, 5, 2], false, false), // batch broadcast both ways
        (&[1, 6, 5], &[4, 7, 5], false, true),
        (&[129, 67], &[67, 131], false, false), // big enough to go parallel
        (&[3, 0, 4], &[4, 2], false, false),
        (&[2, 4, 0], &[0, 3], false, false), // k = 0 → zeros
    ];
    for (i, &(sa, sb, ta, tb)) in cases.iter().enumerate() {
        let a = randn(sa, 10 + i as u64);
        let b = randn(sb, 100 + i as u64);
        let got = a.matmul_t(&b, ta, tb)?;
        let (want, shape) = naive_matmul(&f64s(&a), sa, &f64s(&b), sb, ta, tb);
        assert_eq!(got.shape(), &shape[..], "case {i}");
        MM.check(&got.to_vec(), &want)
            .map_err(|e| format!("case {i}: {e}"))?;
    }
    Ok(())
}

#[test]
fn matmul_rejects_bad_shapes() {
    let a = randn(&[2, 3], 1);
    assert!(matches!(
        a.matmul(&randn(&[4, 2], 2)),
        Err(Error::Shape { op: "matmul", .. })
    ));
    assert!(matches!(
        a.matmul(&randn(&[3], 2)),
        Err(Error::Shape { .. })
    ));
    let a = randn(&[2, 2, 3], 1);
    assert!(matches!(
        a.matmul(&randn(&[3, 3, 4], 2)),
        Err(Error::Broadcast { .. })
    ));
}

#[test]
fn linear_matches_naive() -> TestResult {
    for (i, (lead, d_in, d_out, with_bias)) in [
        (vec![1], 1, 1, true),
        (vec![7], 13, 5, true),
        (vec![2, 3], 33, 65, false),
        (vec![300], 64, 96, true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut sx = lead.clone();
        sx.push(d_in);
        let x = randn(&sx, i as u64);
        let w = randn(&[d_out, d_in], 50 + i as u64);
        let b = randn(&[d_out], 90 + i as u64);
        let got = x.linear(&w, with_bias.then_some(&b))?;
        let rows: usize = lead.iter().product();
        let (mut want, _) = naive_matmul(
            &f64s(&x),
            &[rows, d_in],
            &f64s(&w),
            &[d_out, d_in],
            false,
            true,
        );
        if with_bias {
            let bb = f64s(&b);
            for (j, v) in want.iter_mut().enumerate() {
                *v += bb[j % d_out];
            }
        }
        let mut so = lead.clone();
        so.push(d_out);
        assert_eq!(got.shape(), &so[..]);
        MM.check(&got.to_vec(), &want)
            .map_err(|e| format!("case {i}: {e}"))?;
    }
    let x = randn(&[2, 3], 0);
    assert!(x.linear(&randn(&[4, 2], 1), None).is_err());
    assert!(x.linear(&randn(&[4, 3], 1), Some(&randn(&[3], 2))).is_err());
    Ok(())
}

/// `matmul_packed` (both packings, every tile height 1..=12 and a partial last panel) against
/// the naive product; the portable kernel is the same code path on machines without AVX-512.
#[test]
fn matmul_packed_matches_naive() -> TestResult {
    for (i, (lead, k, n, with_bias)) in [
        (vec![1], 1, 1, true),
        (vec![2], 7, 32, false),
        (vec![5], 64, 33, true),
        (vec![12], 19, 64, true),
        (vec![13], 40, 70, false),
        (vec![2, 3, 5], 33, 95, true), // 30 rows: two full tiles and one of 6
        (vec![61], 130, 17, true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut sx = lead.clone();
        sx.push(k);
        let x = randn(&sx, 200 + i as u64);
        let w = randn(&[n, k], 300 + i as u64);
        let b = randn(&[n], 400 + i as u64);
        let bias = with_bias.then_some(&b);
        let rows: usize = lead.iter().product();
        let (mut want, _) = naive_matmul(&f64s(&x), &[rows, k], &f64s(&w), &[n, k], false, true);
        if with_bias {
            let bb = f64s(&b);
            for (j, v) in want.iter_mut().enumerate() {
                *v += bb[j % n];
            }
        }
        let mut so = lead.clone();
        so.push(n);
        let from_linear = x.matmul_packed(&PackedMatrix::from_linear(&w, bias)?)?;
        let from_kn = x.matmul_packed(&PackedMatrix::from_kn(&w.transpose(0, 1)?, bias)?)?;
        for got in [from_linear, from_kn] {
            assert_eq!(got.shape(), &so[..]);
            MM.check(&got.to_vec(), &want)
                .map_err(|e| format!("case {i}: {e}"))?;
        }
    }
    let p = PackedMatrix::from_linear(&randn(&[4, 3], 1), None)?;
    assert!(randn(&[2, 4], 0).matmul_packed(&p).is_err());
    assert!(PackedMatrix::from_linear(&randn(&[4, 3], 1), Some(&randn(&[3], 2))).is_err());
    assert!(PackedMatrix::from_kn(&randn(&[2, 4, 3], 1), None).is_err());
    Ok(())
}

#[test]
fn broadcast_binary_ops_match_naive() -> TestResult {
    let cases: &[(&[usize], &[usize])] = &[
        (&[4, 5], &[4, 5]),
        (&[2, 3, 7], &[7]),
        (&[7], &[2, 3, 7]),
        (&[2, 1, 3], &[4, 1]),
        (&[3, 1], &[1, 5]),
        (&[2, 3, 4], &[1, 3, 1]),
        (&[1], &[3, 2]),
        (&[5, 4], &[]),
        (&[200, 129], &[200, 1]),
        (&[130, 257], &[257]), // large: parallel path
    ];
    let ops: [BinaryCase; 4] = [
        ("add", Tensor::add, |a, b| a + b),
        ("sub", Tensor::sub, |a, b| a - b),
        ("mul", Tensor::mul, |a, b| a * b),
        ("div", Tensor::div, |a, b| a / b),
    ];
    for (i, &(sa, sb)) in cases.iter().enumerate() {
        let a = randn(sa, i as u64);
        // Keep divisors away from zero.
        let b = randn(sb, 40 + i as u64).map(|v| if v.abs() < 0.1 { 0.5 } else { v })?;
        for (name, op, f) in ops {
            let got = op(&a, &b)?;
            let (want, so) = naive_broadcast(&f64s(&a), sa, &f64s(&b), sb, f);
            assert_eq!(got.shape(), &so[..], "{name} case {i}");
            EW.check(&got.to_vec(), &want)
                .map_err(|e| format!("{name} case {i}: {e}"))?;
        }
    }
    assert!(matches!(
        randn(&[2, 3], 0).add(&randn(&[4], 1)),
        Err(Error::Broadcast { .. })
    ));
    Ok(())
}

#[test]
fn activations_match_closed_forms() -> TestResult {
    let x = randn(&[3, 1001], 5).scale(3.0)?;
    let xs = f64s(&x);
    let erf = statrs::function::erf::erf;
    let refs: [(&str, Tensor, Reference); 3] = [
        ("silu", x.silu()?, Box::new(|v: f64| v / (1.0 + (-v).exp()))),
        (
            "gelu_tanh",
            x.gelu_tanh()?,
            Box::new(|v: f64| {
                0.5 * v
                    * (1.0
                        + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())
            }),
        ),
        (
            "gelu_erf",
            x.gelu_erf()?,
            Box::new(move |v: f64| 0.5 * v * (1.0 + erf(v / 2f64.sqrt()))),
        ),
    ];
    for (name, got, f) in refs {
        let want: Vec<f64> = xs.iter().map(|&v| f(v)).collect();
        EW.check(&got.to_vec(), &want)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    // Extreme inputs stay finite and take the right limits.
    for v in [-100.0f32, -20.0, 20.0, 100.0] {
        assert!(silu(v).is_finite() && gelu_erf(v).is_finite() && gelu_tanh(v).is_finite());
    }
    assert_eq!(gelu_erf(100.0), 100.0);
    assert_eq!(gelu_erf(-100.0), 0.0);
    Ok(())
}

#[test]
fn softmax_and_log_softmax_match_naive_on_every_dim() -> TestResult {
    for (i, shape) in [
        vec![1],
        vec![7],
        vec![3, 1, 5],
        vec![4, 33, 3],
        vec![64, 1000],
    ]
    .iter()
    .enumerate()
    {
        let x = randn(shape, i as u64).scale(4.0)?;
        for dim in 0..shape.len() {
            let want = along_axis(&f64s(&x), shape, dim, naive_softmax);
            EW.check(&x.softmax(dim as isize)?.to_vec(), &want)
                .map_err(|e| format!("softmax {shape:?} dim {dim}: {e}"))?;
            let want_log = along_axis(&f64s(&x), shape, dim, |r| {
                naive_softmax(r).iter().map(|p| p.ln()).collect()
            });
            EW.check(&x.log_softmax(dim as isize)?.to_vec(), &want_log)
                .map_err(|e| format!("log_softmax {shape:?} dim {dim}: {e}"))?;
        }
    }
    // -inf entries (masks) get probability 0; large logits do not overflow.
    let x = Tensor::from_vec(vec![f32::NEG_INFINITY, 0.0, 1000.0, 1000.0], &[4])?;
    assert_eq!(x.softmax(-1)?.to_vec(), vec![0.0, 0.0, 0.5, 0.5]);
    assert!(matches!(x.softmax(1), Err(Error::Dim { .. })));
    Ok(())
}

#[test]
fn layer_and_rms_norm_match_naive() -> TestResult {
    for (i, shape) in [vec![1, 1], vec![5, 7], vec![2, 3, 1024], vec![1, 129]]
        .iter()
        .enumerate()
    {
        let c = *shape.last().unwrap_or(&1);
        let x = randn(shape, i as u64).add_scalar(3.0)?;
        let w = randn(&[c], 10 + i as u64);
        let b = randn(&[c], 20 + i as u64);
        let (ws, bs) = (f64s(&w), f64s(&b));
        for eps in [1e-6f32, 1e-5] {
            let (ws, bs) = (&ws, &bs);
            let ln = |affine: bool| {
                move |r: &[f64]| {
                    let n = r.len() as f64;
                    let m = r.iter().sum::<f64>() / n;
                    let v = r.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
                    r.iter()
                        .enumerate()
                        .map(|(j, x)| {
                            let y = (x - m) / (v + eps as f64).sqrt();
                            if affine { y * ws[j] + bs[j] } else { y }
                        })
                        .collect::<Vec<_>>()
                }
            };
            let last = shape.len() - 1;
            let want = along_axis(&f64s(&x), shape, last, ln(true));
            EW.check(&x.layer_norm(Some(&w), Some(&b), eps)?.to_vec(), &want)?;
            let want = along_axis(&f64s(&x), shape, last, ln(false));
            EW.check(&x.layer_norm(None, None, eps)?.to_vec(), &want)?;
            let rms = |r: &[f64]| {
                let ms = r.iter().map(|x| x * x).sum::<f64>() / r.len() as f64;
                r.iter()
                    .enumerate()
                    .map(|(j, x)| x / (ms + eps as f64).sqrt() * ws[j])
                    .collect::<Vec<_>>()
            };
            EW.check(
                &x.rms_norm(Some(&w), eps)?.to_vec(),
                &along_axis(&f64s(&x), shape, last, rms),
            )?;
        }
    }
    let x = randn(&[2, 4], 0);
    assert!(x.layer_norm(Some(&randn(&[3], 1)), None, 1e-6).is_err());
    assert!(x.rms_norm(Some(&randn(&[5], 1)), 1e-6).is_err());
    Ok(())
}

#[test]
fn group_norm_matches_naive() -> TestResult {
    for (i, (shape, groups)) in [
        (vec![1, 4, 1, 1], 2),
        (vec![2, 6, 5, 3], 3),
        (vec![1, 64, 9, 7], 32),
        (vec![3, 8, 11], 8),
        (vec![2, 5, 4, 4], 1),
    ]
    .into_iter()
    .enumerate()
    {
        let c = shape[1];
        let x = randn(&shape, i as u64).scale(2.0)?.add_scalar(1.5)?;
        let w = randn(&[c], 30 + i as u64);
        let b = randn(&[c], 60 + i as u64);
        let (xs, ws, bs) = (f64s(&x), f64s(&w), f64s(&b));
        let want = naive_group_norm(&xs, &shape, groups, Some(&ws), Some(&bs), 1e-6);
        EW.check(
            &x.group_norm(groups, Some(&w), Some(&b), 1e-6)?.to_vec(),
            &want,
        )
        .map_err(|e| format!("case {i}: {e}"))?;
    }
    let x = randn(&[1, 6, 2, 2], 0);
    assert!(matches!(
        x.group_norm(4, None, None, 1e-6),
        Err(Error::Arg { .. })
    ));
    assert!(matches!(
        x.group_norm(0, None, None, 1e-6),
        Err(Error::Arg { .. })
    ));
    Ok(())
}

#[test]
fn l2_normalize_matches_naive() -> TestResult {
    let shape = [3, 5, 8];
    let x = randn(&shape, 3);
    for dim in 0..3 {
        let want = along_axis(&f64s(&x), &shape, dim, |r| {
            let n = r.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            r.iter().map(|v| v / n).collect()
        });
        EW.check(&x.l2_normalize(dim as isize, 1e-12)?.to_vec(), &want)?;
    }
    // The eps floor: a zero vector stays zero instead of NaN.
    let z = Tensor::zeros(&[2, 4]).l2_normalize(-1, 1e-12)?;
    assert!(z.to_vec().iter().all(|&v| v == 0.0));
    Ok(())
}

#[test]
fn conv2d_matches_naive_for_strides_and_paddings() -> TestResult {
    // (input NCHW, out channels, kernel, stride, padding top/bottom/left/right)
    let cases: &[ConvCase] = &[
        ([1, 1, 1, 1], 1, 1, 1, [0; 4]),
        ([2, 3, 7, 5], 4, 3, 1, [1; 4]),
        ([1, 5, 8, 8], 3, 3, 2, [0, 1, 0, 1]), // VQ-VAE downsample: F.pad (0,1,0,1), stride 2
        ([1, 4, 9, 6], 2, 3, 2, [0, 1, 0, 1]),
        ([2, 6, 5, 4], 7, 1, 1, [0; 4]), // pointwise fast path
        ([1, 2, 6, 7], 3, 5, 1, [2; 4]),
        ([1, 3, 4, 4], 2, 3, 1, [0; 4]),
        ([1, 2, 3, 9], 2, 2, 3, [1, 0, 2, 1]),
        ([1, 64, 70, 120], 3, 3, 1, [1; 4]), // several im2col row blocks
        ([1, 2, 2, 1], 2, 3, 1, [0, 1, 5, 0]), // window entirely in the padding for some taps
        ([1, 1, 3, 2], 1, 1, 1, [2, 2, 4, 4]),
    ];
    for (i, &(sx, o, k, s, pad)) in cases.iter().enumerate() {
        let x = randn(&sx, i as u64);
        let w = randn(&[o, sx[1], k, k], 20 + i as u64);
        let b = randn(&[o], 40 + i as u64);
        let p = Conv2dParams {
            stride: (s, s),
            padding: Padding2d {
                top: pad[0],
                bottom: pad[1],
                left: pad[2],
                right: pad[3],
            },
        };
        for bias in [true, false] {
            let got = x.conv2d(&w, bias.then_some(&b), p)?;
            let bv = f64s(&b);
            let (want, so) = naive_conv2d(
                &f64s(&x),
                sx,
                &f64s(&w),
                [o, sx[1], k, k],
                bias.then_some(&bv[..]),
                (s, s),
                pad,
            );
            assert_eq!(got.shape(), &so[..], "case {i}");
            MM.check(&got.to_vec(), &want)
                .map_err(|e| format!("case {i}: {e}"))?;
        }
    }
    assert_eq!(
        Padding2d::from_torch_pad([0, 1, 0, 1]),
        Padding2d {
            top: 0,
            bottom: 1,
            left: 0,
            right: 1
        }
    );
    let x = randn(&[1, 2, 3, 3], 0);
    assert!(
        x.conv2d(&randn(&[1, 3, 3, 3], 1), None, Conv2dParams::default())
            .is_err()
    );
    assert!(
        x.conv2d(&randn(&[1, 2, 5, 5], 1), None, Conv2dParams::default())
            .is_err()
    );
    assert!(
        x.conv2d(&randn(&[1, 2, 1, 1], 1), None, Conv2dParams::new(0, 0))
            .is_err()
    );
    Ok(())
}

/// Winograd F(4×4, 3×3), forced through [`Conv3x3Winograd`] (small shapes that `conv2d` would
/// send to im2col): spatial sizes not divisible by 4, one tile, a 1×1 input, Cin ≠ Cout,
/// batches, symmetric and asymmetric padding, with and without bias.
#[test]
fn winograd_conv3x3_matches_naive() -> TestResult {
    // (input NCHW, out channels, padding top/bottom/left/right)
    let cases: &[([usize; 4], usize, [usize; 4])] = &[
        ([1, 3, 7, 9], 5, [1; 4]),
        ([2, 4, 13, 13], 6, [0; 4]),
        ([2, 5, 13, 13], 3, [1; 4]),
        ([1, 2, 5, 6], 2, [0, 1, 2, 0]),
        ([2, 8, 9, 7], 16, [2, 0, 1, 3]),
        ([1, 1, 3, 3], 1, [0; 4]), // one output
        ([1, 3, 1, 1], 2, [1; 4]), // 1×1 input, all taps but the centre in the padding
        ([1, 2, 4, 8], 3, [0, 0, 1, 1]),
        ([1, 17, 16, 17], 18, [1; 4]),
        ([1, 2, 2, 1], 2, [0, 1, 5, 0]), // taps wholly in the padding
        ([1, 2, 2, 3], 3, [6, 5, 0, 0]), // tile rows wholly in the padding
        ([1, 2, 0, 3], 3, [2, 3, 1, 1]), // an empty input: the output is the bias
    ];
    for (i, &(sx, o, pad)) in cases.iter().enumerate() {
        let x = randn(&sx, 60 + i as u64);
        let w = randn(&[o, sx[1], 3, 3], 80 + i as u64);
        let b = randn(&[o], 100 + i as u64);
        let padding = Padding2d {
            top: pad[0],
            bottom: pad[1],
            left: pad[2],
            right: pad[3],
        };
        let wino = Conv3x3Winograd::new(&w)?;
        assert_eq!((wino.in_channels(), wino.out_channels()), (sx[1], o));
        for bias in [true, false] {
            let got = wino.apply(&x, bias.then_some(&b), padding)?;
            let bv = f64s(&b);
            let (want, so) = naive_conv2d(
                &f64s(&x),
                sx,
                &f64s(&w),
                [o, sx[1], 3, 3],
                bias.then_some(&bv[..]),
                (1, 1),
                pad,
            );
            assert_eq!(got.shape(), &so[..], "case {i}");
            MM.check(&got.to_vec(), &want)
                .map_err(|e| format!("case {i} (bias {bias}): {e}"))?;
        }
    }
    Ok(())
}

/// Decoder-sized channels (a 1×320×17×17 → 320 conv, weights scaled like a trained layer's,
/// std 1/√(9·Cin)): the transforms' rounding accumulated over 320 channels stays inside the
/// conv tolerance.
#[test]
fn winograd_conv3x3_large_channels_matches_naive() -> TestResult {
    let (c, o, hw) = (320, 320, 17);
    let x = randn(&[1, c, hw, hw], 7);
    let w = randn(&[o, c, 3, 3], 8).scale(1.0 / ((9 * c) as f32).sqrt())?;
    let b = randn(&[o], 9);
    let got = Conv3x3Winograd::new(&w)?.apply(&x, Some(&b), Padding2d::same(1))?;
    let bv = f64s(&b);
    let (want, _) = naive_conv2d(
        &f64s(&x),
        [1, c, hw, hw],
        &f64s(&w),
        [o, c, 3, 3],
        Some(&bv[..]),
        (1, 1),
        [1; 4],
    );
    MM.check(&got.to_vec(), &want)?;
    Ok(())
}

/// `conv2d` dispatches: a shape past the Winograd threshold gives exactly the
/// [`Conv3x3Winograd`] result, one below it exactly the im2col result, and both agree with
/// each other within the conv tolerance.
#[test]
fn conv2d_dispatches_between_winograd_and_im2col() -> TestResult {
    let p = Conv2dParams::new(1, 1);
    for (sx, o, winograd) in [
        ([1, 32, 32, 32], 32, true),
        ([2, 128, 15, 15], 128, true),
        ([1, 32, 16, 16], 32, false),
        ([1, 8, 64, 64], 16, false),  // too few input channels
        ([1, 64, 70, 120], 3, false), // too few output channels
    ] {
        let x = randn(&sx, 1);
        let w = randn(&[o, sx[1], 3, 3], 2).scale(1.0 / ((9 * sx[1]) as f32).sqrt())?;
        let b = randn(&[o], 3);
        let got = x.conv2d(&w, Some(&b), p)?.to_vec();
        let wino = Conv3x3Winograd::new(&w)?
            .apply(&x, Some(&b), p.padding)?
            .to_vec();
        let im2col = x.conv2d_im2col(&w, Some(&b), p)?.to_vec();
        assert_eq!(&got, if winograd { &wino } else { &im2col }, "{sx:?}");
        MM.check(&wino, &im2col)?;
    }
    // Strided and non-3×3 convolutions never take the Winograd path.
    let x = randn(&[1, 64, 40, 40], 4);
    let w = randn(&[64, 64, 3, 3], 5);
    let p2 = Conv2dParams::new(2, 1);
    assert_eq!(
        x.conv2d(&w, None, p2)?.to_vec(),
        x.conv2d_im2col(&w, None, p2)?.to_vec()
    );
    Ok(())
}

#[test]
fn winograd_conv3x3_rejects_bad_shapes() {
    assert!(Conv3x3Winograd::new(&randn(&[2, 3, 5, 5], 1)).is_err());
    assert!(Conv3x3Winograd::new(&randn(&[2, 3, 3], 1)).is_err());
    let wino = Conv3x3Winograd::new(&randn(&[2, 3, 3, 3], 1)).expect("valid weight");
    let pad = Padding2d::same(1);
    assert!(wino.apply(&randn(&[1, 4, 5, 5], 2), None, pad).is_err());
    assert!(wino.apply(&randn(&[3, 5, 5], 2), None, pad).is_err());
    assert!(
        wino.apply(&randn(&[1, 3, 5, 5], 2), Some(&randn(&[3], 3)), pad)
            .is_err()
    );
    // 2×2 unpadded: the 3×3 window does not fit.
    assert!(
        wino.apply(&randn(&[1, 3, 2, 2], 2), None, Padding2d::default())
            .is_err()
    );
}

#[test]
fn resampling_matches_naive() -> TestResult {
    // bicubic: up, down, non-square, identity, 1 → n (VAR's first scale).
    for (i, (h, w, oh, ow)) in [
        (1, 1, 16, 16),
        (2, 3, 16, 13),
        (13, 13, 16, 16),
        (16, 16, 5, 7),
        (5, 5, 5, 5),
        (8, 10, 3, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let x = randn(&[2, 3, h, w], i as u64);
        let got = x.resize_bicubic(oh, ow)?;
        assert_eq!(got.shape(), &[2, 3, oh, ow]);
        let xs = f64s(&x);
        let want: Vec<f64> = (0..6)
            .flat_map(|p| naive_bicubic(&xs[p * h * w..(p + 1) * h * w], h, w, oh, ow))
            .collect();
        EW.check(&got.to_vec(), &want)
            .map_err(|e| format!("bicubic case {i}: {e}"))?;
    }
    // area: VAR's downsampling chain from 16, with overlapping windows at 13, 10, 6, 5, 3.
    for (i, (h, w, oh, ow)) in [
        (16, 16, 13, 13),
        (16, 16, 10, 10),
        (16, 16, 6, 5),
        (16, 16, 1, 1),
        (7, 9, 7, 9),
        (5, 3, 2, 2),
    ]
    .into_iter()
    .enumerate()
    {
        let x = randn(&[1, 4, h, w], 50 + i as u64);
        let got = x.resize_area(oh, ow)?;
        let xs = f64s(&x);
        let want: Vec<f64> = (0..4)
            .flat_map(|p| naive_area(&xs[p * h * w..(p + 1) * h * w], h, w, oh, ow))
            .collect();
        EW.check(&got.to_vec(), &want)
            .map_err(|e| format!("area case {i}: {e}"))?;
    }
    // nearest ×2
    let x = randn(&[2, 3, 5, 4], 9);
    let up = x.upsample_nearest2x()?;
    assert_eq!(up.shape(), &[2, 3, 10, 8]);
    let (xs, us) = (x.to_vec(), up.to_vec());
    for (flat, &u) in us.iter().enumerate() {
        let [p, y, xx] = [flat / 80, (flat / 8) % 10, flat % 8];
        assert_eq!(u, xs[p * 20 + (y / 2) * 4 + xx / 2]);
    }
    assert!(x.resize_bicubic(0, 3).is_err());
    assert!(Tensor::zeros(&[4]).resize_area(2, 2).is_err());
    Ok(())
}

#[test]
fn layout_ops_match_index_arithmetic() -> TestResult {
    let shape = [2, 3, 4, 5];
    let x = randn(&shape, 1);
    let xs = x.to_vec();
    let st = strides(&shape);
    for perm in [[0, 1, 2, 3], [3, 2, 1, 0], [0, 2, 1, 3], [1, 3, 0, 2]] {
        let y = x.permute(&perm)?;
        let so: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        assert_eq!(y.shape(), &so[..]);
        for (flat, &v) in y.to_vec().iter().enumerate() {
            let idx = unravel(flat, &so);
            let src: usize = (0..4).map(|d| idx[d] * st[perm[d]]).sum();
            assert_eq!(v, xs[src]);
        }
    }
    assert!(x.permute(&[0, 0, 1, 2]).is_err());
    assert!(x.permute(&[0, 1, 2]).is_err());
    assert_eq!(x.transpose(1, -1)?.shape(), &[2, 5, 4, 3]);

    // concat then split is the identity, on every dim; concat matches index arithmetic.
    for dim in 0..4 {
        let a = randn(&shape, 2);
        let mut sb = shape.to_vec();
        sb[dim] = 1;
        let b = randn(&sb, 3);
        let c = Tensor::concat(&[&a, &b, &a], dim as isize)?;
        let mut sc = shape.to_vec();
        sc[dim] = 2 * shape[dim] + 1;
        assert_eq!(c.shape(), &sc[..]);
        for (flat, &v) in c.to_vec().iter().enumerate() {
            let mut idx = unravel(flat, &sc);
            let want = if idx[dim] < shape[dim] {
                a.to_vec()[(0..4).map(|d| idx[d] * st[d]).sum::<usize>()]
            } else if idx[dim] == shape[dim] {
                idx[dim] = 0;
                b.to_vec()[(0..4).map(|d| idx[d] * strides(&sb)[d]).sum::<usize>()]
            } else {
                idx[dim] -= shape[dim] + 1;
                a.to_vec()[(0..4).map(|d| idx[d] * st[d]).sum::<usize>()]
            };
            assert_eq!(v, want);
        }
        let parts = c.split(&[shape[dim], 1, shape[dim]], dim as isize)?;
        assert_eq!(parts[0].to_vec(), a.to_vec());
        assert_eq!(parts[1].to_vec(), b.to_vec());
        assert_eq!(parts[2].to_vec(), a.to_vec());
    }
    assert!(Tensor::concat(&[&x, &randn(&[2, 3, 4, 6], 0)], 0).is_err());
    assert!(x.split(&[1, 1], 0).is_ok() && x.split(&[1, 2], 0).is_err());
    assert_eq!(x.chunk(3, 1)?.len(), 3);
    assert!(x.narrow(2, 3, 2).is_err());

    let r = x.reshape(&[6, 20])?;
    assert_eq!(r.to_vec(), xs);
    assert!(matches!(
        x.reshape(&[7, 20]),
        Err(Error::ElementCount { .. })
    ));
    assert_eq!(x.unsqueeze(4)?.shape(), &[2, 3, 4, 5, 1]);
    Ok(())
}

#[test]
fn index_ops_match_naive() -> TestResult {
    let table = randn(&[11, 6], 4);
    let ids = [0u32, 10, 3, 3];
    let e = table.embedding(&ids)?;
    assert_eq!(e.shape(), &[4, 6]);
    for (r, &id) in ids.iter().enumerate() {
        assert_eq!(
            &e.to_vec()[r * 6..(r + 1) * 6],
            &table.to_vec()[id as usize * 6..(id as usize + 1) * 6]
        );
    }
    assert!(matches!(table.embedding(&[11]), Err(Error::Arg { .. })));

    let shape = [3, 7, 4];
    let x = randn(&shape, 8);
    for dim in 0..3 {
        let got = x.argmax(dim as isize)?;
        let want: Vec<f64> = along_axis(&f64s(&x), &shape, dim, |r| {
            let best = (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b });
            vec![best as f64; r.len()]
        });
        // `want` repeats the answer along `dim`; read it at index 0 of that dim.
        let mut reduced = shape.to_vec();
        reduced[dim] = 1;
        for (flat, &g) in got.iter().enumerate() {
            let idx = unravel(flat, &reduced);
            let src: usize = (0..3).map(|d| idx[d] * strides(&shape)[d]).sum();
            assert_eq!(g as f64, want[src]);
        }
    }
    // Ties: the first maximum wins.
    let t = Tensor::from_vec(vec![1.0, 3.0, 3.0, 2.0], &[4])?;
    assert_eq!(t.argmax(0)?, vec![1]);

    let x = randn(&[5, 37], 9);
    for k in [0, 1, 5, 37] {
        let (vals, idx) = x.topk(k)?;
        assert_eq!(vals.shape(), &[5, k]);
        for r in 0..5 {
            let row = &x.to_vec()[r * 37..(r + 1) * 37];
            let mut sorted: Vec<(f32, usize)> = row.iter().copied().zip(0..).collect();
            sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
            for j in 0..k {
                assert_eq!(idx[r * k + j] as usize, sorted[j].1);
                assert_eq!(vals.to_vec()[r * k + j], sorted[j].0);
            }
        }
    }
    assert!(x.topk(38).is_err());
    Ok(())
}
