//! Shared helpers of the tokenizer tests: in-memory safetensors files and naive f64 references
//! (written for clarity, not speed) of every op the VQ-VAE uses.
#![allow(dead_code, missing_docs, clippy::needless_range_loop)]

use std::collections::HashMap;

use arvis_core::{SeededRng, Tensor, Tolerance, Weights};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, &mut SeededRng::new(seed))
}

pub fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_vec().iter().map(|&v| v as f64).collect()
}

/// A safetensors file in memory holding `tensors` (F32) and `metadata`.
pub fn weights_from(
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<Weights, Box<dyn std::error::Error>> {
    use safetensors::tensor::TensorView;
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| {
            let b = t.to_vec().iter().flat_map(|v| v.to_le_bytes()).collect();
            (n.clone(), t.shape().to_vec(), b)
        })
        .collect();
    let mut views = Vec::new();
    for (n, s, b) in &bytes {
        views.push((
            n.as_str(),
            TensorView::new(safetensors::Dtype::F32, s.clone(), b)?,
        ));
    }
    let data = safetensors::serialize(views, metadata)?;
    Ok(Weights::from_bytes("test.safetensors", data)?)
}

/// Compares with a tolerance, turning a mismatch into an error that names `what`.
pub fn check(
    tol: Tolerance,
    what: &str,
    got: &[f32],
    want: &[f64],
) -> Result<(), Box<dyn std::error::Error>> {
    tol.check(got, want)
        .map_err(|m| format!("{what}: {m}").into())
}

/// A naive NCHW tensor in f64.
#[derive(Clone, Debug)]
pub struct T4 {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub d: Vec<f64>,
}

impl T4 {
    pub fn zeros(n: usize, c: usize, h: usize, w: usize) -> Self {
        T4 {
            n,
            c,
            h,
            w,
            d: vec![0.0; n * c * h * w],
        }
    }

    pub fn from(t: &Tensor) -> Self {
        let s = t.shape();
        T4 {
            n: s[0],
            c: s[1],
            h: s[2],
            w: s[3],
            d: f64s(t),
        }
    }

    pub fn at(&self, n: usize, c: usize, y: usize, x: usize) -> f64 {
        self.d[((n * self.c + c) * self.h + y) * self.w + x]
    }

    pub fn at_mut(&mut self, n: usize, c: usize, y: usize, x: usize) -> &mut f64 {
        &mut self.d[((n * self.c + c) * self.h + y) * self.w + x]
    }

    pub fn add(&self, o: &T4) -> T4 {
        let mut r = self.clone();
        r.d.iter_mut().zip(&o.d).for_each(|(a, b)| *a += b);
        r
    }

    pub fn map(&self, f: impl Fn(f64) -> f64) -> T4 {
        let mut r = self.clone();
        r.d.iter_mut().for_each(|v| *v = f(*v));
        r
    }
}

/// `nn.Conv2d` with zero padding `(top, bottom, left, right)` and stride `s`.
pub fn conv(x: &T4, w: &Tensor, b: &Tensor, s: usize, pad: [usize; 4]) -> T4 {
    let ws = w.shape();
    let (o, kh, kw) = (ws[0], ws[2], ws[3]);
    let (wd, bd) = (f64s(w), f64s(b));
    let [pt, pb, pl, pr] = pad;
    let ho = (x.h + pt + pb - kh) / s + 1;
    let wo = (x.w + pl + pr - kw) / s + 1;
    let mut out = T4::zeros(x.n, o, ho, wo);
    for n in 0..x.n {
        for oc in 0..o {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = bd[oc];
                    for ic in 0..x.c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * s + ky) as isize - pt as isize;
                                let ix = (ox * s + kx) as isize - pl as isize;
                                if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
                                    continue;
                                }
                                acc += wd[((oc * x.c + ic) * kh + ky) * kw + kx]
                                    * x.at(n, ic, iy as usize, ix as usize);
                            }
                        }
                    }
                    *out.at_mut(n, oc, oy, ox) = acc;
                }
            }
        }
    }
    out
}

/// Size-preserving stride-1 conv (padding k/2).
pub fn conv_same(x: &T4, w: &Tensor, b: &Tensor) -> T4 {
    let p = w.shape()[2] / 2;
    conv(x, w, b, 1, [p, p, p, p])
}

pub fn group_norm(x: &T4, groups: usize, w: &Tensor, b: &Tensor, eps: f64) -> T4 {
    let (wd, bd) = (f64s(w), f64s(b));
    let cpg = x.c / groups;
    let mut out = x.clone();
    for n in 0..x.n {
        for g in 0..groups {
            let mut vals = Vec::new();
            for c in g * cpg..(g + 1) * cpg {
                for y in 0..x.h {
                    for xx in 0..x.w {
                        vals.push(x.at(n, c, y, xx));
                    }
                }
            }
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
            let inv = 1.0 / (var + eps).sqrt();
            for c in g * cpg..(g + 1) * cpg {
                for y in 0..x.h {
                    for xx in 0..x.w {
                        *out.at_mut(n, c, y, xx) = (x.at(n, c, y, xx) - mean) * inv * wd[c] + bd[c];
                    }
                }
            }
        }
    }
    out
}

pub fn silu(x: &T4) -> T4 {
    x.map(|v| v / (1.0 + (-v).exp()))
}

/// PyTorch bicubic (align_corners=False, A = -0.75, clamped taps) of one axis: weights matrix
/// `[out][in]`.
pub fn bicubic_matrix(input: usize, output: usize) -> Vec<Vec<f64>> {
    let a = -0.75;
    let c1 = |x: f64| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    let c2 = |x: f64| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    let scale = input as f64 / output as f64;
    (0..output)
        .map(|i| {
            let src = (i as f64 + 0.5) * scale - 0.5;
            let x0 = src.floor();
            let t = src - x0;
            let w = [c2(t + 1.0), c1(t), c1(1.0 - t), c2(2.0 - t)];
            let mut row = vec![0.0; input];
            for (j, wj) in w.iter().enumerate() {
                let idx = (x0 as isize - 1 + j as isize).clamp(0, input as isize - 1) as usize;
                row[idx] += wj;
            }
            row
        })
        .collect()
}

/// `adaptive_avg_pool` of one axis as a weights matrix `[out][in]`.
pub fn area_matrix(input: usize, output: usize) -> Vec<Vec<f64>> {
    (0..output)
        .map(|i| {
            let lo = (i * input) / output;
            let hi = ((i + 1) * input).div_ceil(output);
            let mut row = vec![0.0; input];
            for r in row.iter_mut().take(hi).skip(lo) {
                *r = 1.0 / (hi - lo) as f64;
            }
            row
        })
        .collect()
}

/// Applies per-axis matrices `my` (rows) and `mx` (cols) to every plane.
pub fn resample(x: &T4, my: &[Vec<f64>], mx: &[Vec<f64>]) -> T4 {
    let (oh, ow) = (my.len(), mx.len());
    let mut out = T4::zeros(x.n, x.c, oh, ow);
    for n in 0..x.n {
        for c in 0..x.c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0.0;
                    for iy in 0..x.h {
                        if my[oy][iy] == 0.0 {
                            continue;
                        }
                        for ix in 0..x.w {
                            acc += my[oy][iy] * mx[ox][ix] * x.at(n, c, iy, ix);
                        }
                    }
                    *out.at_mut(n, c, oy, ox) = acc;
                }
            }
        }
    }
    out
}

pub fn bicubic(x: &T4, oh: usize, ow: usize) -> T4 {
    resample(x, &bicubic_matrix(x.h, oh), &bicubic_matrix(x.w, ow))
}

pub fn area(x: &T4, oh: usize, ow: usize) -> T4 {
    resample(x, &area_matrix(x.h, oh), &area_matrix(x.w, ow))
}

/// Opens the golden fixture `tests/golden/<file>` (or the path in the environment variable
/// `env`); a missing file is an error naming the command that makes it.
pub fn open_golden(
    env: &str,
    file: &str,
    make: &str,
) -> Result<Weights, Box<dyn std::error::Error>> {
    let path = std::env::var_os(env).map_or_else(
        || {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/golden")
                .join(file)
        },
        std::path::PathBuf::from,
    );
    if !path.exists() {
        return Err(format!(
            "golden fixture {} is missing: generate it with `{make}` (see tests/golden/README.md)",
            path.display()
        )
        .into());
    }
    Ok(Weights::open(&path)?)
}

/// Checks `got` against the golden `want` at `tol` and prints the largest difference.
pub fn compare(what: &str, got: &Tensor, want: &Tensor, tol: Tolerance) -> TestResult {
    if got.shape() != want.shape() {
        return Err(format!("{what}: shape {:?}, golden {:?}", got.shape(), want.shape()).into());
    }
    let (g, w) = (got.to_vec(), want.to_vec());
    let (mut abs, mut scale) = (0.0f64, 0.0f64);
    for (&a, &e) in g.iter().zip(&w) {
        abs = abs.max((f64::from(a) - f64::from(e)).abs());
        scale = scale.max(f64::from(e).abs());
    }
    println!(
        "{what:>8}: max |Δ| {abs:.3e}, max |want| {scale:.3} ({} values)",
        g.len()
    );
    tol.check(&g, &w).map_err(|m| format!("{what}: {m}").into())
}

/// Asserts that the fixture's tensors under `prefix.` are exactly `shapes` (what a loader
/// reads, names relative to the prefix); returns the expected full names.
pub fn assert_keys_are(
    w: &Weights,
    prefix: &str,
    shapes: Vec<(String, Vec<usize>)>,
) -> Result<std::collections::BTreeSet<String>, Box<dyn std::error::Error>> {
    use std::collections::BTreeSet;
    let want: BTreeSet<String> = shapes
        .into_iter()
        .map(|(n, _)| format!("{prefix}.{n}"))
        .collect();
    let have: BTreeSet<String> = w
        .names()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}.")))
        .map(str::to_owned)
        .collect();
    let unread: Vec<_> = have.difference(&want).collect();
    let missing: Vec<_> = want.difference(&have).collect();
    assert!(
        unread.is_empty() && missing.is_empty(),
        "unread {unread:?}, missing {missing:?}"
    );
    Ok(want)
}
