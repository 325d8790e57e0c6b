//! The MNIST classifier against PyTorch (`tests/golden/classifier_check.safetensors`, made with
//! the classifier by `xtask/py/train_classifier_mnist.py`), the 2×2 max-pool against a naive
//! version, the input conversion, and the stored feature statistics.

use arvis::classifier::{MnistClassifier, max_pool2x2, to_classifier_input};
use arvis::core::{SeededRng, Tensor, Tolerance, Weights};

mod common;

use common::with_metadata;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const ASSET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/classifier_mnist.safetensors"
);
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/classifier_check.safetensors"
);

#[test]
fn classifier_matches_pytorch() -> TestResult {
    let clf = MnistClassifier::load(ASSET)?;
    let g = Weights::open(GOLDEN)?;
    let images = g.get("golden.images", &[16, 1, 28, 28])?;
    let (logits, features) = clf.forward(&images)?;
    assert_eq!(logits.shape(), &[16, 10]);
    assert_eq!(features.shape(), &[16, 128]);
    let want_logits = g.get("golden.logits", &[16, 10])?;
    let want_features = g.get("golden.features", &[16, 128])?;
    Tolerance::MATMUL
        .check(&logits.to_vec(), &want_logits.to_vec())
        .map_err(|m| format!("logits: {m}"))?;
    Tolerance::MATMUL
        .check(&features.to_vec(), &want_features.to_vec())
        .map_err(|m| format!("features: {m}"))?;
    assert_eq!(logits.argmax(-1)?, want_logits.argmax(-1)?);
    Ok(())
}

#[test]
fn builtin_is_the_asset_and_classifies_the_golden_digits() -> TestResult {
    let builtin = MnistClassifier::builtin()?;
    let file = MnistClassifier::load(ASSET)?;
    let g = Weights::open(GOLDEN)?;
    let images = g.get("golden.images", &[16, 1, 28, 28])?;
    let (a, _) = builtin.forward(&images)?;
    let (b, _) = file.forward(&images)?;
    assert_eq!(a.to_vec(), b.to_vec());
    let labels: Vec<u32> = g
        .get("golden.labels", &[16])?
        .to_vec()
        .iter()
        .map(|&l| l as u32)
        .collect();
    let correct = a
        .argmax(-1)?
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p == l)
        .count();
    assert!(
        correct >= 15,
        "{correct}/16 golden digits classified correctly"
    );
    let acc = builtin
        .test_accuracy()
        .ok_or("no test_accuracy in arvis.config")?;
    assert!(acc >= 0.985, "recorded test accuracy {acc}");
    Ok(())
}

#[test]
fn forward_rejects_wrong_shapes() -> TestResult {
    let clf = MnistClassifier::builtin()?;
    assert!(clf.forward(&Tensor::zeros(&[2, 3, 28, 28])).is_err());
    assert!(clf.forward(&Tensor::zeros(&[2, 1, 32, 32])).is_err());
    assert!(clf.forward(&Tensor::zeros(&[1, 28, 28])).is_err());
    // A classifier file must say it is one.
    let err = MnistClassifier::load(GOLDEN)
        .err()
        .ok_or("golden file loaded as a classifier")?;
    assert!(err.to_string().contains("arvis.family"), "{err}");
    Ok(())
}

/// Naive max-pool: the maximum over each 2×2 window, indices computed from scratch.
fn max_pool_naive(x: &Tensor) -> Vec<f32> {
    let s = x.shape();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let d = x.to_vec();
    let mut out = Vec::new();
    for b in 0..n {
        for ch in 0..c {
            for i in 0..h / 2 {
                for j in 0..w / 2 {
                    let mut m = f32::NEG_INFINITY;
                    for di in 0..2 {
                        for dj in 0..2 {
                            let v = d[((b * c + ch) * h + 2 * i + di) * w + 2 * j + dj];
                            m = m.max(v);
                        }
                    }
                    out.push(m);
                }
            }
        }
    }
    out
}

#[test]
fn max_pool_matches_naive() -> TestResult {
    let mut rng = SeededRng::new(7);
    for shape in [[2, 3, 28, 28], [1, 1, 2, 2], [3, 2, 7, 9], [1, 4, 14, 5]] {
        let x = Tensor::randn(&shape, &mut rng);
        let y = max_pool2x2(&x)?;
        assert_eq!(y.shape(), &[shape[0], shape[1], shape[2] / 2, shape[3] / 2]);
        assert_eq!(y.to_vec(), max_pool_naive(&x), "shape {shape:?}");
    }
    let nan = Tensor::from_vec(vec![1.0, f32::NAN, 0.0, 2.0], &[1, 1, 2, 2])?;
    assert!(max_pool2x2(&nan)?.to_vec()[0].is_nan());
    assert!(max_pool2x2(&Tensor::zeros(&[1, 1, 1, 4])).is_err());
    assert!(max_pool2x2(&Tensor::zeros(&[4, 4])).is_err());
    Ok(())
}

#[test]
fn classifier_input_is_the_channel_mean_of_the_centre_crop() -> TestResult {
    // Pixel (c, y, x) of image b = b + c/10 + y/100 + x/1000 (distinct everywhere).
    let (b, h, w) = (2, 32, 32);
    let mut data = Vec::new();
    for bi in 0..b {
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    data.push(bi as f32 + c as f32 / 10.0 + y as f32 / 100.0 + x as f32 / 1000.0);
                }
            }
        }
    }
    let img = Tensor::from_vec(data, &[b, 3, h, w])?;
    let out = to_classifier_input(&img)?;
    assert_eq!(out.shape(), &[2, 1, 28, 28]);
    let v = out.to_vec();
    for (bi, y, x) in [(0, 0, 0), (1, 27, 27), (1, 5, 20)] {
        let want = bi as f32 + 0.1 + (y + 2) as f32 / 100.0 + (x + 2) as f32 / 1000.0;
        let got = v[(bi * 28 + y) * 28 + x];
        assert!((got - want).abs() < 1e-5, "({bi},{y},{x}): {got} vs {want}");
    }
    // Grey 28×28 passes through unchanged.
    let grey = Tensor::randn(&[1, 1, 28, 28], &mut SeededRng::new(1));
    assert_eq!(to_classifier_input(&grey)?.to_vec(), grey.to_vec());
    assert!(to_classifier_input(&Tensor::zeros(&[1, 3, 16, 16])).is_err());
    Ok(())
}

#[test]
fn validation_vs_test_frechet_distance_is_small_and_positive() -> TestResult {
    let clf = MnistClassifier::builtin()?;
    let (test, valid) = (clf.test_stats(), clf.valid_stats());
    assert_eq!(test.dim(), 128);
    let fd = valid.frechet_distance(test)?;
    // The scale of the features: the distance of the test Gaussian to a point mass at 0.
    let d = test.dim();
    let spread: f64 = test.mean().iter().map(|m| m * m).sum::<f64>()
        + (0..d).map(|i| test.cov()[i * d + i]).sum::<f64>();
    assert!(fd > 0.0, "FD(valid, test) = {fd}");
    assert!(
        fd < 0.01 * spread,
        "FD(valid, test) = {fd}, feature scale {spread}"
    );
    // numpy (eigh, float64, dead units dropped) on the same f32-rounded statistics, recorded by
    // the training script: the two agree to ~3e-10 relative.
    let w = Weights::open(ASSET)?;
    let cfg = w.metadata_json("arvis.config")?;
    let want = cfg["fd_valid_test"].as_f64().ok_or("no fd_valid_test")?;
    assert!((fd - want).abs() <= 1e-8 * want, "{fd} vs numpy {want}");
    // Symmetric, and zero against itself.
    assert!((test.frechet_distance(valid)? - fd).abs() <= 1e-9 * fd);
    assert!(test.frechet_distance(test)? <= 1e-9 * spread);
    // The class-interleaved reference features.
    let r = clf.reference_features();
    assert_eq!(r.shape(), &[1000, 128]);
    Ok(())
}

/// The same-N real-image FD table: present in the embedded file, ordered as FD's small-sample
/// bias demands (larger samples, smaller FD), its 10k entry equal to the validation-vs-test FD
/// computed here from the stored statistics, and looked up by the closest sample count.
#[test]
fn real_fd_table_is_consistent_and_looked_up_by_nearest_n() -> TestResult {
    let clf = MnistClassifier::builtin()?;
    let at = |n| clf.real_fd_near(n).ok_or("no arvis.fd_valid_by_n table");
    let (r100, r1000, r10k) = (at(100)?, at(1000)?, at(10_000)?);
    assert_eq!((r100.n, r1000.n, r10k.n), (100, 1000, 10_000));
    assert!(r100.mean > r1000.mean && r1000.mean > r10k.mean);
    assert!(r1000.subsets >= 2 && r1000.sd > 0.0);
    let full = clf.valid_stats().frechet_distance(clf.test_stats())?;
    assert!((r10k.mean - full).abs() < 1e-3, "{} vs {full}", r10k.mean);
    assert_eq!(at(700)?.n, 500); // ln(700/500) < ln(1000/700)
    assert_eq!(at(800)?.n, 1000);
    assert_eq!(at(1_000_000)?.n, 10_000);
    Ok(())
}

/// A malformed table is an error naming the key, not a silently wrong reference.
#[test]
fn malformed_real_fd_table_is_rejected() -> TestResult {
    let out = with_metadata(
        &std::fs::read(ASSET)?,
        "arvis.fd_valid_by_n",
        r#"{"n":[1000,500],"mean":[1,2],"sd":[0,0],"subsets":[1,1]}"#,
    )?;
    let err = MnistClassifier::from_weights(&Weights::from_bytes("bad", out)?)
        .err()
        .ok_or("accepted a decreasing n column")?;
    assert!(err.to_string().contains("arvis.fd_valid_by_n"), "{err}");
    Ok(())
}
