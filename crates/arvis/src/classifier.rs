//! [`MnistClassifier`]: the small CNN digit classifier that scores generated MNIST digits.
//!
//! Trained by `xtask/py/train_classifier_mnist.py` (test accuracy in the file's `arvis.config`)
//! and embedded in the library ([`MnistClassifier::builtin`], about 1.2 MB). Architecture, with
//! input `[B, 1, 28, 28]` in `[0, 1]`:
//!
//! ```text
//! conv1 3×3 pad 1 1→32 + ReLU, conv2 3×3 pad 1 32→32 + ReLU, max-pool 2×2 (→ 14×14),
//! conv3 3×3 pad 1 32→64 + ReLU, conv4 3×3 pad 1 64→64 + ReLU, max-pool 2×2 (→ 7×7),
//! flatten (C, H, W) → fc1 3136→128 + ReLU  = the 128-d features
//!                   → fc2 128→10            = the logits
//! ```
//!
//! The file also carries the feature statistics of real MNIST images ([`FeatureStats`] of the
//! 10k test and 10k validation images) and the features of 1000 test images (100 per class,
//! row `i` has label `i mod 10`), the references of [`crate::eval`].

use std::path::Path;

use arvis_core::ops::Conv2dParams;
use arvis_core::{Tensor, Weights};

use crate::error::{Error, Result};
use crate::eval::FeatureStats;

/// `arvis.family` of a classifier file.
pub const FAMILY: &str = "mnist-classifier";
/// Side of the classifier's square input.
pub const INPUT_SIDE: usize = 28;
/// Number of digit classes.
pub const NUM_CLASSES: usize = 10;
/// Width of the penultimate (fc1 + ReLU) features.
pub const FEATURE_DIM: usize = 128;

/// Channels of the four convolutions, `(in, out)`.
const CONVS: [(usize, usize); 4] = [(1, 32), (32, 32), (32, 64), (64, 64)];
/// Flattened size after the second pool: 64 × 7 × 7.
const FLAT: usize = 64 * 7 * 7;

/// Weight and bias of one layer.
#[derive(Clone, Debug)]
struct Layer {
    weight: Tensor,
    bias: Tensor,
}

impl Layer {
    fn load(w: &Weights, name: &str, shape: &[usize]) -> Result<Self> {
        Ok(Layer {
            weight: w.get(&format!("{name}.weight"), shape)?,
            bias: w.get(&format!("{name}.bias"), &shape[..1])?,
        })
    }
}

/// The MNIST CNN classifier with the real-data feature statistics it was shipped with.
#[derive(Clone, Debug)]
pub struct MnistClassifier {
    convs: Vec<Layer>,
    fc1: Layer,
    fc2: Layer,
    test_stats: FeatureStats,
    valid_stats: FeatureStats,
    reference_features: Tensor,
    test_accuracy: Option<f64>,
    fd_valid_by_n: Vec<RealFd>,
}

/// The Fréchet distance of `n` real (validation) images to the test statistics, over disjoint
/// random subsets: FD is biased upward at small sample counts, so a generated sample is fairly
/// compared with real images of the same size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RealFd {
    /// Images per subset.
    pub n: usize,
    /// Mean FD over the subsets.
    pub mean: f64,
    /// Standard deviation over the subsets (0 with one subset).
    pub sd: f64,
    /// Number of disjoint subsets measured.
    pub subsets: usize,
}

/// Metadata key of the [`RealFd`] table (written by `train_classifier_mnist.py`).
pub const META_FD_VALID_BY_N: &str = "arvis.fd_valid_by_n";

/// Reads the optional [`META_FD_VALID_BY_N`] table: `{"n": [..], "mean": [..], "sd": [..],
/// "subsets": [..]}`, equal lengths, `n` strictly increasing.
fn read_fd_table(w: &Weights) -> Result<Vec<RealFd>> {
    if w.metadata()
        .is_none_or(|m| !m.contains_key(META_FD_VALID_BY_N))
    {
        return Ok(Vec::new());
    }
    let v = w.metadata_json(META_FD_VALID_BY_N)?;
    let bad = |what: &str| Error::BadMetadata {
        path: w.path().to_path_buf(),
        msg: format!("`{META_FD_VALID_BY_N}`: {what}"),
    };
    let column = |key: &str| -> Result<Vec<f64>> {
        v[key]
            .as_array()
            .ok_or_else(|| bad(&format!("`{key}` must be an array")))?
            .iter()
            .map(|x| {
                x.as_f64()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| bad(&format!("`{key}` must hold finite numbers >= 0")))
            })
            .collect()
    };
    let (n, mean, sd, subsets) = (
        column("n")?,
        column("mean")?,
        column("sd")?,
        column("subsets")?,
    );
    if [mean.len(), sd.len(), subsets.len()] != [n.len(); 3] {
        return Err(bad("columns of different lengths"));
    }
    if n.windows(2).any(|p| p[0] >= p[1]) || n.iter().any(|x| x.fract() != 0.0 || *x < 1.0) {
        return Err(bad("`n` must be strictly increasing positive integers"));
    }
    Ok((0..n.len())
        .map(|i| RealFd {
            n: n[i] as usize,
            mean: mean[i],
            sd: sd[i],
            subsets: subsets[i] as usize,
        })
        .collect())
}

impl MnistClassifier {
    /// The classifier embedded in this build ([`crate::builtin::CLASSIFIER_MNIST`],
    /// `crates/arvis/assets/classifier_mnist.safetensors`).
    pub fn builtin() -> Result<Self> {
        Self::from_weights(&crate::builtin::classifier_mnist_weights()?)
    }

    /// Opens a classifier `.safetensors` file (as written by `train_classifier_mnist.py`).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_weights(&Weights::open(path.as_ref())?)
    }

    /// Builds the classifier from open weights: checks `arvis.family` = `"mnist-classifier"`,
    /// reads every layer with its expected shape and the `stats.*` tensors.
    pub fn from_weights(w: &Weights) -> Result<Self> {
        let family = w.metadata_str(arvis_core::weights::META_FAMILY)?;
        if family != FAMILY {
            return Err(Error::Usage(format!(
                "{}: `arvis.family` is `{family}`, not an MNIST classifier (`{FAMILY}`)",
                w.path().display()
            )));
        }
        let convs = CONVS
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout))| Layer::load(w, &format!("conv{}", i + 1), &[cout, cin, 3, 3]))
            .collect::<Result<Vec<_>>>()?;
        let stats = |split: &str| -> Result<FeatureStats> {
            let mu = w.get(&format!("stats.{split}_mu"), &[FEATURE_DIM])?;
            let sigma = w.get(&format!("stats.{split}_sigma"), &[FEATURE_DIM, FEATURE_DIM])?;
            FeatureStats::from_tensors(&mu, &sigma)
        };
        let reference_features = w.get_any("stats.test_ref_features")?;
        if reference_features.rank() != 2 || reference_features.shape()[1] != FEATURE_DIM {
            return Err(arvis_core::Error::TensorShape {
                path: w.path().to_path_buf(),
                name: "stats.test_ref_features".into(),
                expected: vec![1000, FEATURE_DIM],
                found: reference_features.shape().to_vec(),
            }
            .into());
        }
        let test_accuracy = w
            .metadata_json(arvis_core::weights::META_CONFIG)
            .ok()
            .and_then(|c| c.get("test_accuracy").and_then(serde_json::Value::as_f64));
        Ok(MnistClassifier {
            convs,
            fc1: Layer::load(w, "fc1", &[FEATURE_DIM, FLAT])?,
            fc2: Layer::load(w, "fc2", &[NUM_CLASSES, FEATURE_DIM])?,
            test_stats: stats("test")?,
            valid_stats: stats("valid")?,
            reference_features,
            test_accuracy,
            fd_valid_by_n: read_fd_table(w)?,
        })
    }

    /// Runs the network on `x` `[B, 1, 28, 28]` in `[0, 1]`: returns the logits `[B, 10]` and
    /// the fc1 + ReLU features `[B, 128]`.
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let s = x.shape();
        if s.len() != 4 || s[1..] != [1, INPUT_SIDE, INPUT_SIDE] {
            return Err(arvis_core::Error::Shape {
                op: "MnistClassifier::forward",
                expected: "[B, 1, 28, 28]".into(),
                found: s.to_vec(),
            }
            .into());
        }
        let p = Conv2dParams::new(1, 1);
        let conv = |h: &Tensor, l: &Layer| -> Result<Tensor> {
            Ok(relu(&h.conv2d(&l.weight, Some(&l.bias), p)?)?)
        };
        let mut h = conv(x, &self.convs[0])?;
        h = max_pool2x2(&conv(&h, &self.convs[1])?)?;
        h = conv(&h, &self.convs[2])?;
        h = max_pool2x2(&conv(&h, &self.convs[3])?)?;
        let flat = h.reshape(&[s[0], FLAT])?;
        let features = relu(&flat.linear(&self.fc1.weight, Some(&self.fc1.bias))?)?;
        let logits = features.linear(&self.fc2.weight, Some(&self.fc2.bias))?;
        Ok((logits, features))
    }

    /// Statistics of the features of the 10k MNIST test images.
    pub fn test_stats(&self) -> &FeatureStats {
        &self.test_stats
    }

    /// The real-image FD reference measured at the sample count closest to `n` (in ratio), if the
    /// file has the table ([`META_FD_VALID_BY_N`]).
    pub fn real_fd_near(&self, n: usize) -> Option<RealFd> {
        let dist = |r: &RealFd| (r.n as f64 / n.max(1) as f64).ln().abs();
        self.fd_valid_by_n
            .iter()
            .min_by(|a, b| dist(a).total_cmp(&dist(b)))
            .copied()
    }

    /// Statistics of the features of the 10k MNIST validation images (held out from training).
    pub fn valid_stats(&self) -> &FeatureStats {
        &self.valid_stats
    }

    /// Features `[R, 128]` of real test images, class-interleaved (row `i` has label `i mod
    /// 10`), so any prefix whose length is a multiple of 10 is class-balanced.
    pub fn reference_features(&self) -> &Tensor {
        &self.reference_features
    }

    /// Test accuracy recorded by the training script, if the file says.
    pub fn test_accuracy(&self) -> Option<f64> {
        self.test_accuracy
    }
}

/// ReLU, `max(x, 0)`.
fn relu(x: &Tensor) -> arvis_core::Result<Tensor> {
    x.map(|v| v.max(0.0))
}

/// 2×2 max-pooling with stride 2 of `[N, C, H, W]` (`F.max_pool2d(x, 2)`): `[N, C, H/2, W/2]`,
/// an odd last row or column is dropped (floor), as in PyTorch.
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    let s = x.shape();
    if s.len() != 4 || s[2] < 2 || s[3] < 2 {
        return Err(arvis_core::Error::Shape {
            op: "max_pool2x2",
            expected: "[N, C, H, W] with H, W >= 2".into(),
            found: s.to_vec(),
        }
        .into());
    }
    let (h, w) = (s[2], s[3]);
    let (ho, wo) = (h / 2, w / 2);
    let data = x.to_vec();
    let mut out = Vec::with_capacity(s[0] * s[1] * ho * wo);
    for plane in data.chunks_exact(h * w) {
        for i in 0..ho {
            let (r0, r1) = (&plane[2 * i * w..][..w], &plane[(2 * i + 1) * w..][..w]);
            for j in 0..wo {
                let m0 = max_nan(r0[2 * j], r0[2 * j + 1]);
                let m1 = max_nan(r1[2 * j], r1[2 * j + 1]);
                out.push(max_nan(m0, m1));
            }
        }
    }
    Ok(Tensor::from_vec(out, &[s[0], s[1], ho, wo])?)
}

/// Maximum that propagates NaN (as PyTorch's max-pool does).
fn max_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

/// Converts generated images `[B, C, H, W]` in `[0, 1]` (C = 1 or 3, H, W ≥ 28) to the
/// classifier's input `[B, 1, 28, 28]`: the mean over channels, then the central 28×28 crop
/// (for the MNIST VAR's 32×32 images: the 2-px border is dropped, undoing the training padding).
pub fn to_classifier_input(images: &Tensor) -> Result<Tensor> {
    let s = images.shape();
    if s.len() != 4 || s[2] < INPUT_SIDE || s[3] < INPUT_SIDE || s[1] == 0 {
        return Err(arvis_core::Error::Shape {
            op: "to_classifier_input",
            expected: "[B, C, H, W] with C >= 1 and H, W >= 28".into(),
            found: s.to_vec(),
        }
        .into());
    }
    let (b, c, h, w) = (s[0], s[1], s[2], s[3]);
    let (top, left) = ((h - INPUT_SIDE) / 2, (w - INPUT_SIDE) / 2);
    let data = images.to_vec();
    let mut out = Vec::with_capacity(b * INPUT_SIDE * INPUT_SIDE);
    for img in data.chunks_exact(c * h * w) {
        for i in 0..INPUT_SIDE {
            for j in 0..INPUT_SIDE {
                let at = (top + i) * w + left + j;
                let sum: f32 = (0..c).map(|ch| img[ch * h * w + at]).sum();
                out.push(sum / c as f32);
            }
        }
    }
    Ok(Tensor::from_vec(out, &[b, 1, INPUT_SIDE, INPUT_SIDE])?)
}
