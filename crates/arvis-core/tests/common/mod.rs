//! Naive f64 reference implementations, written for clarity, not speed: the independent oracle
//! every CPU (and later GPU) kernel is checked against.
#![allow(dead_code, missing_docs)]

use arvis_core::{SeededRng, Tensor};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, &mut SeededRng::new(seed))
}

pub fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_vec().iter().map(|&v| v as f64).collect()
}

pub fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

/// Row-major strides.
pub fn strides(s: &[usize]) -> Vec<usize> {
    let mut st = vec![1; s.len()];
    for i in (0..s.len().saturating_sub(1)).rev() {
        st[i] = st[i + 1] * s[i + 1];
    }
    st
}

/// Multi-index of a flat index.
pub fn unravel(mut flat: usize, s: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; s.len()];
    for d in (0..s.len()).rev() {
        idx[d] = flat % s[d];
        flat /= s[d];
    }
    idx
}

pub fn naive_matmul(
    a: &[f64],
    sa: &[usize],
    b: &[f64],
    sb: &[usize],
    ta: bool,
    tb: bool,
) -> (Vec<f64>, Vec<usize>) {
    let (ra, ca) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (rb, cb) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    let (m, k) = if ta { (ca, ra) } else { (ra, ca) };
    let n = if tb { rb } else { cb };
    let (ba, bb) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
    let rank = ba.len().max(bb.len());
    let pad = |s: &[usize]| {
        let mut v = vec![1; rank - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (pa, pb) = (pad(ba), pad(bb));
    let bo: Vec<usize> = pa.iter().zip(&pb).map(|(&x, &y)| x.max(y)).collect();
    let mut out = Vec::new();
    for flat in 0..numel(&bo) {
        let idx = unravel(flat, &bo);
        let off = |p: &[usize]| {
            let st = strides(p);
            idx.iter()
                .zip(p)
                .zip(&st)
                .map(|((&i, &d), &s)| if d == 1 { 0 } else { i * s })
                .sum::<usize>()
        };
        let (oa, ob) = (off(&pa) * ra * ca, off(&pb) * rb * cb);
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0;
                for p in 0..k {
                    let av = if ta {
                        a[oa + p * ca + i]
                    } else {
                        a[oa + i * ca + p]
                    };
                    let bv = if tb {
                        b[ob + j * cb + p]
                    } else {
                        b[ob + p * cb + j]
                    };
                    acc += av * bv;
                }
                out.push(acc);
            }
        }
    }
    let mut s = bo;
    s.extend([m, n]);
    (out, s)
}

/// Numpy broadcasting by explicit index mapping.
pub fn naive_broadcast(
    a: &[f64],
    sa: &[usize],
    b: &[f64],
    sb: &[usize],
    f: fn(f64, f64) -> f64,
) -> (Vec<f64>, Vec<usize>) {
    let rank = sa.len().max(sb.len());
    let pad = |s: &[usize]| {
        let mut v = vec![1; rank - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (pa, pb) = (pad(sa), pad(sb));
    let so: Vec<usize> = pa.iter().zip(&pb).map(|(&x, &y)| x.max(y)).collect();
    let (sta, stb) = (strides(&pa), strides(&pb));
    let out = (0..numel(&so))
        .map(|flat| {
            let idx = unravel(flat, &so);
            let ia: usize = (0..rank)
                .map(|d| if pa[d] == 1 { 0 } else { idx[d] * sta[d] })
                .sum();
            let ib: usize = (0..rank)
                .map(|d| if pb[d] == 1 { 0 } else { idx[d] * stb[d] })
                .sum();
            f(a[ia], b[ib])
        })
        .collect();
    (out, so)
}

/// Applies `f` to every 1-D fibre along `axis`.
pub fn along_axis(x: &[f64], s: &[usize], axis: usize, f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let outer: usize = s[..axis].iter().product();
    let n = s[axis];
    let inner: usize = s[axis + 1..].iter().product();
    let mut out = vec![0.0; x.len()];
    for o in 0..outer {
        for j in 0..inner {
            let fib: Vec<f64> = (0..n).map(|i| x[(o * n + i) * inner + j]).collect();
            for (i, v) in f(&fib).into_iter().enumerate() {
                out[(o * n + i) * inner + j] = v;
            }
        }
    }
    out
}

pub fn naive_softmax(r: &[f64]) -> Vec<f64> {
    let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = r.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

pub fn naive_conv2d(
    x: &[f64],
    sx: [usize; 4],
    w: &[f64],
    sw: [usize; 4],
    bias: Option<&[f64]>,
    stride: (usize, usize),
    pad: [usize; 4], // top, bottom, left, right
) -> (Vec<f64>, [usize; 4]) {
    let [n, c, h, wd] = sx;
    let [o, _, kh, kw] = sw;
    let ho = (h + pad[0] + pad[1] - kh) / stride.0 + 1;
    let wo = (wd + pad[2] + pad[3] - kw) / stride.1 + 1;
    let mut out = vec![0.0; n * o * ho * wo];
    for ni in 0..n {
        for oc in 0..o {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = bias.map_or(0.0, |b| b[oc]);
                    for ci in 0..c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * stride.0 + ky) as isize - pad[0] as isize;
                                let ix = (ox * stride.1 + kx) as isize - pad[2] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                acc += x[((ni * c + ci) * h + iy as usize) * wd + ix as usize]
                                    * w[((oc * c + ci) * kh + ky) * kw + kx];
                            }
                        }
                    }
                    out[((ni * o + oc) * ho + oy) * wo + ox] = acc;
                }
            }
        }
    }
    (out, [n, o, ho, wo])
}

/// Keys cubic kernel, A = -0.75, as a function of distance (the textbook form, not the
/// polynomial factorisation the kernel uses).
pub fn keys(d: f64) -> f64 {
    let a = -0.75;
    let d = d.abs();
    if d <= 1.0 {
        (a + 2.0) * d.powi(3) - (a + 3.0) * d.powi(2) + 1.0
    } else if d < 2.0 {
        a * d.powi(3) - 5.0 * a * d.powi(2) + 8.0 * a * d - 4.0 * a
    } else {
        0.0
    }
}

/// Full 2-D (non-separable) bicubic resample of one plane, PyTorch index semantics.
pub fn naive_bicubic(x: &[f64], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f64> {
    let taps = |i: usize, inp: usize, out: usize| -> Vec<(usize, f64)> {
        let src = (i as f64 + 0.5) * inp as f64 / out as f64 - 0.5;
        let x0 = src.floor() as isize;
        (x0 - 1..=x0 + 2)
            .map(|j| (j.clamp(0, inp as isize - 1) as usize, keys(src - j as f64)))
            .collect()
    };
    let mut out = vec![0.0; oh * ow];
    for oy in 0..oh {
        for ox in 0..ow {
            let mut acc = 0.0;
            for (iy, wy) in taps(oy, h, oh) {
                for (ix, wx) in taps(ox, w, ow) {
                    acc += wy * wx * x[iy * w + ix];
                }
            }
            out[oy * ow + ox] = acc;
        }
    }
    out
}

/// adaptive_avg_pool2d of one plane: window [floor(i*in/out), ceil((i+1)*in/out)).
pub fn naive_area(x: &[f64], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f64> {
    let win = |i: usize, inp: usize, out: usize| {
        let a = (i as f64 * inp as f64 / out as f64).floor() as usize;
        let b = ((i + 1) as f64 * inp as f64 / out as f64).ceil() as usize;
        a..b
    };
    let mut out = vec![0.0; oh * ow];
    for oy in 0..oh {
        for ox in 0..ow {
            let (ry, rx) = (win(oy, h, oh), win(ox, w, ow));
            let cnt = (ry.len() * rx.len()) as f64;
            let mut acc = 0.0;
            for y in ry {
                for x2 in rx.clone() {
                    acc += x[y * w + x2];
                }
            }
            out[oy * ow + ox] = acc / cnt;
        }
    }
    out
}

/// Whether tests on `device` can run ([`arvis_core::gpu::ready_for_tests`]: a missing adapter
/// skips with a message, except under `CI=true`).
pub fn device_ready(device: arvis_core::Device) -> Result<bool, Box<dyn std::error::Error>> {
    Ok(arvis_core::gpu::ready_for_tests(device)?)
}

#[allow(unused_imports)]
pub(crate) use arvis_core::device_tests;

/// Log-softmax of one row, `x − max − ln Σ exp(x − max)` (not `ln(softmax)`, which underflows
/// to −inf for logits far below the maximum).
pub fn naive_log_softmax(r: &[f64]) -> Vec<f64> {
    let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + r.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    r.iter().map(|v| v - lse).collect()
}

/// Softmax along `axis` with PyTorch's rule for a row whose maximum is −inf or NaN: all NaN.
pub fn naive_softmax_masked(r: &[f64], log: bool) -> Vec<f64> {
    let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY || r.iter().any(|v| v.is_nan()) {
        return vec![f64::NAN; r.len()];
    }
    if log {
        naive_log_softmax(r)
    } else {
        naive_softmax(r)
    }
}

/// Layer norm of one row: `(x − mean)/√(var + eps)·w + b` (biased variance).
pub fn naive_layer_norm(r: &[f64], w: Option<&[f64]>, b: Option<&[f64]>, eps: f64) -> Vec<f64> {
    let n = r.len() as f64;
    let m = r.iter().sum::<f64>() / n;
    let v = r.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    r.iter()
        .enumerate()
        .map(|(j, x)| {
            (x - m) / (v + eps).sqrt() * w.map_or(1.0, |w| w[j]) + b.map_or(0.0, |b| b[j])
        })
        .collect()
}

/// RMS norm of one row: `x/√(mean(x²) + eps)·w`.
pub fn naive_rms_norm(r: &[f64], w: Option<&[f64]>, eps: f64) -> Vec<f64> {
    let ms = r.iter().map(|x| x * x).sum::<f64>() / r.len() as f64;
    r.iter()
        .enumerate()
        .map(|(j, x)| x / (ms + eps).sqrt() * w.map_or(1.0, |w| w[j]))
        .collect()
}

/// L2 normalisation of one row: `x / max(‖x‖₂, eps)`.
pub fn naive_l2_normalize(r: &[f64], eps: f64) -> Vec<f64> {
    let n = r.iter().map(|v| v * v).sum::<f64>().sqrt().max(eps);
    r.iter().map(|v| v / n).collect()
}

/// Group norm of `[N, C, *]`: statistics per (sample, group of C/groups channels), then the
/// per-channel affine.
pub fn naive_group_norm(
    x: &[f64],
    shape: &[usize],
    groups: usize,
    w: Option<&[f64]>,
    b: Option<&[f64]>,
    eps: f64,
) -> Vec<f64> {
    let c = shape[1];
    let spatial: usize = shape[2..].iter().product();
    let cpg = c / groups;
    let mut out = vec![0.0; x.len()];
    for n in 0..shape[0] {
        for g in 0..groups {
            let start = (n * c + g * cpg) * spatial;
            let seg = &x[start..start + cpg * spatial];
            let y = naive_layer_norm(seg, None, None, eps);
            for (j, v) in y.into_iter().enumerate() {
                let ch = g * cpg + j / spatial;
                out[start + j] = v * w.map_or(1.0, |w| w[ch]) + b.map_or(0.0, |b| b[ch]);
            }
        }
    }
    out
}

/// `x` permuted (output dim `i` is input dim `perm[i]`) by index arithmetic.
pub fn naive_permute<T: Copy>(x: &[T], shape: &[usize], perm: &[usize]) -> (Vec<T>, Vec<usize>) {
    let so: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let st = strides(shape);
    let out = (0..numel(&so))
        .map(|flat| {
            let idx = unravel(flat, &so);
            x[(0..so.len()).map(|d| idx[d] * st[perm[d]]).sum::<usize>()]
        })
        .collect();
    (out, so)
}

/// Concatenation along `axis` by index arithmetic.
pub fn naive_concat<T: Copy>(parts: &[(&[T], &[usize])], axis: usize) -> (Vec<T>, Vec<usize>) {
    let mut so = parts[0].1.to_vec();
    so[axis] = parts.iter().map(|p| p.1[axis]).sum();
    let out = (0..numel(&so))
        .map(|flat| {
            let mut idx = unravel(flat, &so);
            let mut k = 0;
            while idx[axis] >= parts[k].1[axis] {
                idx[axis] -= parts[k].1[axis];
                k += 1;
            }
            let st = strides(parts[k].1);
            parts[k].0[idx.iter().zip(&st).map(|(i, s)| i * s).sum::<usize>()]
        })
        .collect();
    (out, so)
}

/// The slice `start..start+len` along `axis` by index arithmetic.
pub fn naive_narrow<T: Copy>(
    x: &[T],
    shape: &[usize],
    axis: usize,
    start: usize,
    len: usize,
) -> (Vec<T>, Vec<usize>) {
    let mut so = shape.to_vec();
    so[axis] = len;
    let st = strides(shape);
    let out = (0..numel(&so))
        .map(|flat| {
            let mut idx = unravel(flat, &so);
            idx[axis] += start;
            x[idx.iter().zip(&st).map(|(i, s)| i * s).sum::<usize>()]
        })
        .collect();
    (out, so)
}

/// Index of the maximum of a row: NaN counts as the maximum, the first index wins ties.
pub fn naive_argmax(r: &[f64]) -> usize {
    if let Some(i) = r.iter().position(|v| v.is_nan()) {
        return i;
    }
    (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b })
}

/// The `k` largest of a row with their indices, by a full sort in the order NaN first, then
/// descending value, then ascending index.
pub fn naive_topk(r: &[f32], k: usize) -> (Vec<f32>, Vec<u32>) {
    let mut idx: Vec<usize> = (0..r.len()).collect();
    idx.sort_by(|&a, &b| {
        let (x, y) = (r[a], r[b]);
        match (x.is_nan(), y.is_nan()) {
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            (true, true) => a.cmp(&b),
            _ => y.partial_cmp(&x).expect("no NaN").then(a.cmp(&b)),
        }
    });
    idx.truncate(k);
    (
        idx.iter().map(|&i| r[i]).collect(),
        idx.iter().map(|&i| i as u32).collect(),
    )
}
