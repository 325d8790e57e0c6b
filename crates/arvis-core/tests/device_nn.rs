//! Normalisation, softmax, layout, index and modulation ops against naive f64 references
//! (tests/common), one generic body per op family run on each device (`device_tests!`:
//! `<name>::cpu` and `<name>::gpu`). Odd sizes straddle the GPU row kernels' workgroups (32 to 256 wide);
//! shapes stay tiny because CI runs the GPU half on lavapipe.

mod common;

use arvis_core::gpu::GpuContext;
use arvis_core::{Device, Error, Tensor, Tolerance};
use common::*;

const EW: Tolerance = Tolerance::ELEMENTWISE;

/// Checks `got` (any device) against an f64 reference, and that it stayed on `device`.
fn check(device: Device, what: &str, got: &Tensor, want: &[f64]) -> TestResult {
    assert_eq!(got.device(), device, "{what}: result left the device");
    let v = got.try_to_vec()?;
    EW.check(&v, want).map_err(|e| format!("{what}: {e}"))?;
    Ok(())
}

fn softmax_case(device: Device) -> TestResult {
    let shapes: [&[usize]; 8] = [
        &[1],
        &[7],
        &[257],
        &[1031],
        &[3, 1, 5],
        &[4, 33, 3],
        &[2, 257],
        &[3, 2, 2, 5],
    ];
    for (i, shape) in shapes.into_iter().enumerate() {
        let x = randn(shape, 100 + i as u64).scale(4.0)?;
        let (xs, xd) = (f64s(&x), x.to_device(device)?);
        for dim in 0..shape.len() {
            let want = along_axis(&xs, shape, dim, naive_softmax);
            let what = format!("softmax {shape:?} dim {dim}");
            check(device, &what, &xd.softmax(dim as isize)?, &want)?;
            let want = along_axis(&xs, shape, dim, naive_log_softmax);
            let what = format!("log_softmax {shape:?} dim {dim}");
            check(device, &what, &xd.log_softmax(dim as isize)?, &want)?;
        }
        // Negative dims count from the end.
        let want = along_axis(&xs, shape, shape.len() - 1, naive_softmax);
        check(device, "softmax dim -1", &xd.softmax(-1)?, &want)?;
    }
    // Masks: an all −inf row is NaN (as in PyTorch), −inf entries get probability 0 (log −inf),
    // large logits do not overflow; along the first dim too (strided rows).
    let ninf = f32::NEG_INFINITY;
    let rows = [
        [ninf, ninf, ninf, ninf, ninf],
        [ninf, 0.0, 1000.0, 1000.0, ninf],
        [1.0, 2.0, ninf, 0.5, -3.0],
    ];
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let x = Tensor::from_vec(flat, &[3, 5])?;
    let xs = f64s(&x);
    let xd = x.to_device(device)?;
    for dim in 0..2 {
        for log in [false, true] {
            let want = along_axis(&xs, &[3, 5], dim, |r| naive_softmax_masked(r, log));
            let got = if log {
                xd.log_softmax(dim as isize)?
            } else {
                xd.softmax(dim as isize)?
            };
            check(device, &format!("masked dim {dim} log {log}"), &got, &want)?;
        }
    }
    assert!(matches!(xd.softmax(2), Err(Error::Dim { .. })));
    // Empty tensors pass through.
    let e = Tensor::zeros(&[0, 3]).to_device(device)?;
    assert_eq!(e.softmax(1)?.shape(), &[0, 3]);
    Ok(())
}

fn layer_and_rms_norm_case(device: Device) -> TestResult {
    let shapes: [&[usize]; 6] = [&[1, 1], &[5, 7], &[2, 3, 257], &[1, 1031], &[3, 1], &[4]];
    for (i, shape) in shapes.into_iter().enumerate() {
        let c = *shape.last().unwrap_or(&1);
        // A large mean: the variance must not cancel.
        let x = randn(shape, 200 + i as u64).add_scalar(3.0)?;
        let w = randn(&[c], 210 + i as u64);
        let b = randn(&[c], 220 + i as u64);
        let (xs, ws, bs) = (f64s(&x), f64s(&w), f64s(&b));
        let (xd, wd, bd) = (
            x.to_device(device)?,
            w.to_device(device)?,
            b.to_device(device)?,
        );
        let last = shape.len() - 1;
        for eps in [1e-6f32, 1e-5] {
            let e = eps as f64;
            for (use_w, use_b) in [(true, true), (true, false), (false, true), (false, false)] {
                let (wr, br) = (use_w.then_some(&ws[..]), use_b.then_some(&bs[..]));
                let want = along_axis(&xs, shape, last, |r| naive_layer_norm(r, wr, br, e));
                let got = xd.layer_norm(use_w.then_some(&wd), use_b.then_some(&bd), eps)?;
                let what = format!("layer_norm {shape:?} w {use_w} b {use_b} eps {eps}");
                check(device, &what, &got, &want)?;
            }
            for use_w in [true, false] {
                let wr = use_w.then_some(&ws[..]);
                let want = along_axis(&xs, shape, last, |r| naive_rms_norm(r, wr, e));
                let got = xd.rms_norm(use_w.then_some(&wd), eps)?;
                check(
                    device,
                    &format!("rms_norm {shape:?} w {use_w}"),
                    &got,
                    &want,
                )?;
            }
        }
    }
    let x = randn(&[2, 4], 0).to_device(device)?;
    let w3 = randn(&[3], 1).to_device(device)?;
    let w5 = randn(&[5], 1).to_device(device)?;
    assert!(matches!(
        x.layer_norm(Some(&w3), None, 1e-6),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        x.layer_norm(None, Some(&w5), 1e-6),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        x.rms_norm(Some(&w5), 1e-6),
        Err(Error::Shape { .. })
    ));
    Ok(())
}

fn group_norm_case(device: Device) -> TestResult {
    let cases: [(&[usize], usize); 7] = [
        (&[1, 4, 1, 1], 2),
        (&[2, 6, 5, 3], 3),
        (&[1, 64, 9, 7], 32),
        (&[3, 8, 11], 8),
        (&[2, 5, 4, 4], 1),
        (&[2, 4], 2),
        (&[1, 6, 13, 20], 2),
    ];
    for (i, (shape, groups)) in cases.into_iter().enumerate() {
        let c = shape[1];
        let x = randn(shape, 300 + i as u64).scale(2.0)?.add_scalar(1.5)?;
        let w = randn(&[c], 330 + i as u64);
        let b = randn(&[c], 360 + i as u64);
        let (xs, ws, bs) = (f64s(&x), f64s(&w), f64s(&b));
        let (xd, wd, bd) = (
            x.to_device(device)?,
            w.to_device(device)?,
            b.to_device(device)?,
        );
        for (use_w, use_b) in [(true, true), (false, false), (true, false), (false, true)] {
            let (wr, br) = (use_w.then_some(&ws[..]), use_b.then_some(&bs[..]));
            let want = naive_group_norm(&xs, shape, groups, wr, br, 1e-6);
            let got = xd.group_norm(groups, use_w.then_some(&wd), use_b.then_some(&bd), 1e-6)?;
            let what = format!("group_norm {shape:?} groups {groups} w {use_w} b {use_b}");
            check(device, &what, &got, &want)?;
        }
    }
    let x = randn(&[1, 6, 2, 2], 0).to_device(device)?;
    for groups in [0, 4] {
        assert!(matches!(
            x.group_norm(groups, None, None, 1e-6),
            Err(Error::Arg { .. })
        ));
    }
    let w = randn(&[5], 0).to_device(device)?;
    assert!(matches!(
        x.group_norm(2, Some(&w), None, 1e-6),
        Err(Error::Shape { .. })
    ));
    Ok(())
}

fn l2_normalize_case(device: Device) -> TestResult {
    for (i, shape) in [&[3usize, 5, 8][..], &[1031], &[2, 1, 257]]
        .into_iter()
        .enumerate()
    {
        let x = randn(shape, 400 + i as u64);
        let (xs, xd) = (f64s(&x), x.to_device(device)?);
        for dim in 0..shape.len() {
            let want = along_axis(&xs, shape, dim, |r| naive_l2_normalize(r, 1e-12));
            let what = format!("l2_normalize {shape:?} dim {dim}");
            check(device, &what, &xd.l2_normalize(dim as isize, 1e-12)?, &want)?;
        }
    }
    // The eps floor: a zero vector stays zero instead of NaN; a tiny one is divided by eps.
    let z = Tensor::zeros(&[2, 4])
        .to_device(device)?
        .l2_normalize(-1, 1e-12)?;
    assert!(z.to_vec().iter().all(|&v| v == 0.0));
    let t = Tensor::full(&[3], 1e-3).to_device(device)?;
    check(device, "eps", &t.l2_normalize(0, 0.5)?, &[2e-3; 3])?;
    Ok(())
}

fn permute_case(device: Device) -> TestResult {
    let cases: [(&[usize], &[usize]); 12] = [
        (&[5, 7], &[1, 0]),
        (&[5, 7], &[0, 1]),
        (&[1, 9], &[1, 0]),
        (&[2, 3, 4], &[2, 0, 1]),
        (&[2, 3, 4], &[0, 2, 1]),
        (&[3, 1, 5], &[2, 1, 0]),
        (&[2, 3, 4, 5], &[3, 2, 1, 0]),
        (&[2, 3, 4, 5], &[1, 3, 0, 2]),
        (&[2, 3, 4, 5], &[0, 2, 3, 1]),
        (&[2, 3, 1, 4, 5], &[4, 0, 3, 2, 1]),
        (&[2, 3, 2, 3, 2], &[0, 1, 4, 2, 3]),
        // More dims than the GPU kernel indexes, none mergeable.
        (&[2, 2, 2, 2, 2, 2, 2, 2, 2], &[8, 7, 6, 5, 4, 3, 2, 1, 0]),
    ];
    for (i, (shape, perm)) in cases.into_iter().enumerate() {
        let x = randn(shape, 500 + i as u64);
        let (want, so) = naive_permute(&x.to_vec(), shape, perm);
        let got = x.to_device(device)?.permute(perm)?;
        assert_eq!(got.shape(), so.as_slice(), "permute {shape:?} {perm:?}");
        assert_eq!(got.device(), device);
        assert_eq!(got.try_to_vec()?, want, "permute {shape:?} {perm:?}");
    }
    let x = randn(&[2, 3, 4, 5], 1);
    let xd = x.to_device(device)?;
    let (want, _) = naive_permute(&x.to_vec(), &[2, 3, 4, 5], &[0, 3, 2, 1]);
    let t = xd.transpose(1, -1)?;
    assert_eq!(t.shape(), &[2, 5, 4, 3]);
    assert_eq!(t.try_to_vec()?, want);
    assert!(matches!(xd.permute(&[0, 0, 1, 2]), Err(Error::Arg { .. })));
    assert!(matches!(xd.permute(&[0, 1, 2]), Err(Error::Arg { .. })));
    assert!(matches!(xd.transpose(0, 4), Err(Error::Dim { .. })));
    Ok(())
}

fn concat_case(device: Device) -> TestResult {
    let base = [3usize, 4, 5];
    for dim in 0..3 {
        let mut parts = Vec::new();
        for (k, len) in [2usize, 1, 0, 3].into_iter().enumerate() {
            let mut s = base.to_vec();
            s[dim] = len;
            parts.push(randn(&s, 600 + 10 * dim as u64 + k as u64));
        }
        let host: Vec<(Vec<f32>, Vec<usize>)> = parts
            .iter()
            .map(|p| (p.to_vec(), p.shape().to_vec()))
            .collect();
        let refs: Vec<(&[f32], &[usize])> = host
            .iter()
            .map(|(v, s)| (v.as_slice(), s.as_slice()))
            .collect();
        let (want, so) = naive_concat(&refs, dim);
        let on: Vec<Tensor> = parts
            .iter()
            .map(|p| p.to_device(device))
            .collect::<arvis_core::Result<_>>()?;
        let got = Tensor::concat(&on.iter().collect::<Vec<_>>(), dim as isize)?;
        assert_eq!(got.shape(), so.as_slice(), "concat dim {dim}");
        assert_eq!(got.device(), device);
        assert_eq!(got.try_to_vec()?, want, "concat dim {dim}");
        // Negative dim, a single input.
        let one = Tensor::concat(&[&on[0]], dim as isize - 3)?;
        assert_eq!(one.try_to_vec()?, parts[0].to_vec());
    }
    let a = randn(&[2, 3], 0).to_device(device)?;
    let b = randn(&[2, 4], 1).to_device(device)?;
    assert!(matches!(
        Tensor::concat(&[&a, &b], 0),
        Err(Error::Shape { .. })
    ));
    assert_eq!(Tensor::concat(&[&a, &b], 1)?.shape(), &[2, 7]);
    assert!(matches!(Tensor::concat(&[], 0), Err(Error::Arg { .. })));
    Ok(())
}

fn narrow_case(device: Device) -> TestResult {
    let shape = [3usize, 7, 5];
    let x = randn(&shape, 700);
    let (xs, xd) = (x.to_vec(), x.to_device(device)?);
    for axis in 0..3 {
        let n = shape[axis];
        for (start, len) in [(0, 1), (0, n), (n - 1, 1), (1, n - 2), (n, 0), (0, 0)] {
            let (want, so) = naive_narrow(&xs, &shape, axis, start, len);
            let got = xd.narrow(axis as isize, start, len)?;
            let what = format!("narrow dim {axis} {start}+{len}");
            assert_eq!(got.shape(), so.as_slice(), "{what}");
            assert_eq!(got.device(), device);
            assert_eq!(got.try_to_vec()?, want, "{what}");
        }
        assert!(matches!(
            xd.narrow(axis as isize, n - 1, 2),
            Err(Error::Arg { .. })
        ));
        assert!(matches!(
            xd.narrow(axis as isize, usize::MAX, 2),
            Err(Error::Arg { .. })
        ));
    }
    // split and chunk go through narrow.
    let parts = xd.split(&[2, 0, 5], 1)?;
    let sizes: Vec<usize> = parts.iter().map(|p| p.shape()[1]).collect();
    assert_eq!(sizes, [2, 0, 5]);
    let back = Tensor::concat(&parts.iter().collect::<Vec<_>>(), 1)?;
    assert_eq!(back.try_to_vec()?, xs);
    let chunks = xd.chunk(5, -1)?;
    for (k, c) in chunks.iter().enumerate() {
        assert_eq!(c.try_to_vec()?, naive_narrow(&xs, &shape, 2, k, 1).0);
    }
    assert!(matches!(xd.split(&[1, 1], 0), Err(Error::Arg { .. })));
    assert!(matches!(xd.chunk(2, 1), Err(Error::Arg { .. })));
    Ok(())
}

fn embedding_case(device: Device) -> TestResult {
    for (v, d) in [(11usize, 6usize), (3, 257), (300, 1)] {
        let table = randn(&[v, d], 800 + v as u64);
        let (ts, td) = (table.to_vec(), table.to_device(device)?);
        let ids: Vec<u32> = [0, v - 1, 3 % v, 3 % v, 0, v / 2]
            .iter()
            .map(|&i| i as u32)
            .collect();
        let got = td.embedding(&ids)?;
        assert_eq!(got.shape(), &[ids.len(), d]);
        assert_eq!(got.device(), device);
        let want: Vec<f32> = ids
            .iter()
            .flat_map(|&i| ts[i as usize * d..(i as usize + 1) * d].iter().copied())
            .collect();
        assert_eq!(got.try_to_vec()?, want);
        // No ids: an empty result.
        assert_eq!(td.embedding(&[])?.shape(), &[0, d]);
        // Out of range ids are rejected before any launch, whatever their position.
        for bad in [vec![v as u32], vec![0, 1, u32::MAX]] {
            match td.embedding(&bad) {
                Err(Error::Arg { op, msg }) => {
                    assert_eq!(op, "embedding");
                    assert!(msg.contains("out of range"), "{msg}");
                }
                other => panic!("expected an out-of-range error, got {other:?}"),
            }
        }
    }
    let not_2d = randn(&[2, 3, 4], 0).to_device(device)?;
    assert!(matches!(not_2d.embedding(&[0]), Err(Error::Shape { .. })));
    Ok(())
}

fn argmax_case(device: Device) -> TestResult {
    let shapes: [&[usize]; 5] = [&[3, 7, 4], &[1], &[257], &[2, 1031], &[1031, 2]];
    for (i, shape) in shapes.into_iter().enumerate() {
        // Few distinct values: many ties, which the first index must win.
        let x = randn(shape, 900 + i as u64).scale(2.0)?.map(f32::round)?;
        let (xs, xd) = (f64s(&x), x.to_device(device)?);
        for dim in 0..shape.len() {
            let got = xd.argmax(dim as isize)?;
            let want: Vec<u32> =
                along_axis(&xs, shape, dim, |r| vec![naive_argmax(r) as f64; r.len()])
                    .into_iter()
                    .enumerate()
                    .filter(|(flat, _)| unravel(*flat, shape)[dim] == 0)
                    .map(|(_, v)| v as u32)
                    .collect();
            assert_eq!(got, want, "argmax {shape:?} dim {dim}");
        }
    }
    let nan = f32::NAN;
    let ninf = f32::NEG_INFINITY;
    let rows: [(&[f32], u32); 8] = [
        (&[1.0, 3.0, 3.0, 2.0], 1),
        (&[1.0, nan, 5.0, nan], 1),
        (&[nan, 1.0], 0),
        (&[ninf, ninf, ninf], 0),
        (&[ninf, -1e30, ninf], 1),
        (&[-0.0, 0.0], 0),
        (&[2.0, f32::INFINITY, f32::INFINITY], 1),
        (&[nan, nan, nan], 0),
    ];
    for (row, want) in rows {
        let t = Tensor::from_slice(row, &[row.len()])?.to_device(device)?;
        assert_eq!(t.argmax(0)?, vec![want], "argmax {row:?}");
    }
    // Ties and a NaN past the first 256 elements (a later tree level of the GPU reduction).
    let mut long = vec![0.0f32; 1031];
    long[700] = 4.0;
    long[300] = 4.0;
    long[1030] = 4.0;
    let t = Tensor::from_vec(long.clone(), &[1031])?.to_device(device)?;
    assert_eq!(t.argmax(-1)?, vec![300]);
    long[900] = nan;
    long[1000] = nan;
    let t = Tensor::from_vec(long, &[1, 1031])?.to_device(device)?;
    assert_eq!(t.argmax(1)?, vec![900]);
    let e = Tensor::zeros(&[2, 0]).to_device(device)?;
    assert!(matches!(e.argmax(1), Err(Error::Arg { .. })));
    assert_eq!(e.argmax(0)?, Vec::<u32>::new());
    Ok(())
}

fn modulate_case(device: Device) -> TestResult {
    let cases: [(&[usize], &[usize], &[usize]); 5] = [
        (&[2, 5, 7], &[2, 1, 7], &[2, 1, 7]),
        (&[2, 5, 7], &[2, 5, 7], &[2, 5, 7]),
        (&[3, 257], &[257], &[1, 257]),
        (&[4, 1, 3], &[1, 6, 1], &[3]),
        (&[1031], &[1], &[]),
    ];
    for (i, (sx, ss, sb)) in cases.into_iter().enumerate() {
        let x = randn(sx, 1000 + i as u64);
        let s = randn(ss, 1010 + i as u64).scale(0.5)?;
        let b = randn(sb, 1020 + i as u64);
        let (t, st) = naive_broadcast(&f64s(&x), sx, &f64s(&s), ss, |x, s| x * (1.0 + s));
        let (want, so) = naive_broadcast(&t, &st, &f64s(&b), sb, |y, b| y + b);
        let got = x
            .to_device(device)?
            .modulate(&s.to_device(device)?, &b.to_device(device)?)?;
        assert_eq!(got.shape(), so.as_slice(), "modulate {sx:?} {ss:?} {sb:?}");
        check(
            device,
            &format!("modulate {sx:?} {ss:?} {sb:?}"),
            &got,
            &want,
        )?;
        // The fused op equals the unfused chain it replaces.
        let xd = x.to_device(device)?;
        let unfused = xd
            .mul(&s.to_device(device)?.add_scalar(1.0)?)?
            .add(&b.to_device(device)?)?;
        let u: Vec<f64> = f64s(&unfused);
        check(device, "modulate vs mul/add", &got, &u)?;
    }
    let x = randn(&[2, 3], 0).to_device(device)?;
    let bad = randn(&[4], 0).to_device(device)?;
    let ok = randn(&[3], 0).to_device(device)?;
    assert!(matches!(
        x.modulate(&bad, &ok),
        Err(Error::Broadcast { .. })
    ));
    assert!(matches!(
        x.modulate(&ok, &bad),
        Err(Error::Broadcast { .. })
    ));
    Ok(())
}

fn topk_case(device: Device) -> TestResult {
    let nan = f32::NAN;
    let cases: [(&[usize], &[usize]); 6] = [
        (&[1], &[1]),
        (&[3, 7], &[1, 3, 7]),
        (&[2, 257], &[5, 256, 257]),
        (&[2, 1, 1031], &[1, 100, 1031]),
        (&[1, 16384], &[10]),
        // Longer than the device sort: the host path.
        (&[1, 16385], &[3]),
    ];
    for (i, (shape, ks)) in cases.into_iter().enumerate() {
        let n = *shape.last().unwrap_or(&1);
        // Few distinct values (ties), a NaN or two, and ±inf.
        let mut v = randn(shape, 1100 + i as u64)
            .scale(3.0)?
            .map(f32::round)?
            .to_vec();
        if n > 4 {
            v[n / 2] = nan;
            v[n - 1] = f32::INFINITY;
            v[1] = f32::NEG_INFINITY;
            let last = v.len() - 2;
            v[last] = nan;
        }
        let x = Tensor::from_vec(v.clone(), shape)?;
        let xd = x.to_device(device)?;
        for &k in ks {
            let (vals, ids) = xd.topk(k)?;
            let mut so = shape.to_vec();
            *so.last_mut().unwrap_or(&mut 0) = k;
            assert_eq!(vals.shape(), so.as_slice());
            assert_eq!(vals.device(), device);
            let got = vals.try_to_vec()?;
            for r in 0..v.len() / n {
                let (wv, wi) = naive_topk(&v[r * n..(r + 1) * n], k);
                assert_eq!(
                    &ids[r * k..(r + 1) * k],
                    wi.as_slice(),
                    "topk {shape:?} k {k} row {r}"
                );
                let gv = &got[r * k..(r + 1) * k];
                let same = gv
                    .iter()
                    .zip(&wv)
                    .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
                assert!(same, "topk values {shape:?} k {k} row {r}");
            }
        }
    }
    let x = randn(&[4, 9], 0).to_device(device)?;
    let (vals, ids) = x.topk(0)?;
    assert_eq!(vals.shape(), &[4, 0]);
    assert!(ids.is_empty());
    assert!(matches!(x.topk(10), Err(Error::Arg { .. })));
    let e = Tensor::zeros(&[0, 5]).to_device(device)?;
    assert_eq!(e.topk(2)?.0.shape(), &[0, 2]);
    Ok(())
}

/// More rows than one grid dimension holds (65535 workgroups): the row kernels fold the grid.
fn many_rows_case(device: Device) -> TestResult {
    let shape = [65537usize, 2];
    let x = randn(&shape, 1200);
    let (xs, xd) = (f64s(&x), x.to_device(device)?);
    let want = along_axis(&xs, &shape, 1, naive_softmax);
    check(device, "softmax of 65537 rows", &xd.softmax(-1)?, &want)?;
    let want: Vec<u32> = xs.chunks(2).map(|r| naive_argmax(r) as u32).collect();
    assert_eq!(xd.argmax(1)?, want);
    Ok(())
}

device_tests! {
    softmax_and_log_softmax_on_every_dim: softmax_case;
    layer_and_rms_norm_with_and_without_affine: layer_and_rms_norm_case;
    group_norm_with_and_without_affine: group_norm_case;
    l2_normalize_on_every_dim: l2_normalize_case;
    permute_of_rank_2_to_9: permute_case;
    concat_along_every_dim: concat_case;
    narrow_split_chunk_at_the_edges: narrow_case;
    embedding_gathers_and_rejects_bad_ids: embedding_case;
    argmax_ties_nan_and_long_rows: argmax_case;
    modulate_broadcasts_like_add: modulate_case;
    topk_ties_nan_and_long_rows: topk_case;
    row_kernels_past_65535_rows: many_rows_case;
}

/// The ops above run as WGSL kernels: no host round trip on a private context (the shared
/// one's counter sees the other tests).
#[test]
fn nn_ops_need_no_host_round_trip() -> TestResult {
    if !device_ready(Device::Gpu)? {
        return Ok(());
    }
    let ctx = GpuContext::new()?;
    let x = randn(&[2, 4, 3, 5], 1).to_gpu(&ctx)?;
    let w = randn(&[5], 2).to_gpu(&ctx)?;
    let c = randn(&[4], 3).to_gpu(&ctx)?;
    let before = ctx.host_fallbacks();
    let _ = x.softmax(1)?.log_softmax(-1)?;
    let _ = x
        .layer_norm(Some(&w), Some(&w), 1e-5)?
        .rms_norm(Some(&w), 1e-5)?;
    let _ = x
        .group_norm(2, Some(&c), Some(&c), 1e-5)?
        .l2_normalize(2, 1e-12)?;
    let p = x.permute(&[3, 1, 0, 2])?.transpose(0, 1)?;
    let _ = Tensor::concat(&[&x, &x], 2)?.narrow(2, 1, 3)?.chunk(2, 0)?;
    let _ = p.reshape(&[40, 3])?.embedding(&[1, 39, 1])?;
    let _ = x.argmax(1)?;
    let _ = x.topk(3)?;
    let m = x.narrow(1, 0, 1)?;
    let _ = x.modulate(&m, &m)?.try_to_vec()?;
    assert_eq!(ctx.host_fallbacks(), before);
    Ok(())
}
