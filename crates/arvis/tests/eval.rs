//! The evaluation maths against closed forms (Fréchet distance, Jacobi eigendecomposition,
//! feature statistics, class fidelity, nearest-neighbour diversity) and `evaluate` end to end on
//! a tiny random VAR.

use arvis::classifier::MnistClassifier;
use arvis::core::{Device, SeededRng, Tensor, Weights};
use arvis::eval::{
    EvalProgress, EvalSettings, FeatureStats, class_fidelity, evaluate, evaluate_with,
    frechet_distance, nn_distances, nn_diversity, symmetric_eigen,
};
use arvis::models::var::random::{random_weights_bytes, tiny_configs};
use arvis::{Error, Pipeline};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn close(got: f64, want: f64, tol: f64, what: &str) -> TestResult {
    if (got - want).abs() <= tol * (1.0 + want.abs()) {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {got}, want {want} (|Δ| = {:e})",
            (got - want).abs()
        )
        .into())
    }
}

fn diag(d: &[f64]) -> Vec<f64> {
    let n = d.len();
    let mut m = vec![0.0; n * n];
    (0..n).for_each(|i| m[i * n + i] = d[i]);
    m
}

fn mm(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut o = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            o[i * n + j] = (0..n).map(|k| a[i * n + k] * b[k * n + j]).sum();
        }
    }
    o
}

fn transpose(a: &[f64], n: usize) -> Vec<f64> {
    let mut o = vec![0.0; n * n];
    (0..n).for_each(|i| (0..n).for_each(|j| o[j * n + i] = a[i * n + j]));
    o
}

/// A random orthogonal matrix (Gram–Schmidt of a Gaussian matrix).
fn orthogonal(n: usize, rng: &mut SeededRng) -> Vec<f64> {
    let mut cols: Vec<Vec<f64>> = Vec::new();
    while cols.len() < n {
        let mut v: Vec<f64> = (0..n).map(|_| rng.normal_f64()).collect();
        for c in &cols {
            let dot: f64 = v.iter().zip(c).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(c).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-6 {
            cols.push(v.into_iter().map(|a| a / norm).collect());
        }
    }
    let mut q = vec![0.0; n * n];
    (0..n).for_each(|i| (0..n).for_each(|j| q[i * n + j] = cols[j][i]));
    q
}

/// `Q diag(d) Qᵀ`.
fn rotated(q: &[f64], d: &[f64]) -> Vec<f64> {
    let n = d.len();
    mm(&mm(q, &diag(d), n), &transpose(q, n), n)
}

/// A random SPD matrix `A Aᵀ / k` from `k` Gaussian columns (rank-deficient when `k < n`).
fn random_psd(n: usize, k: usize, rng: &mut SeededRng) -> Vec<f64> {
    let a: Vec<f64> = (0..n * k).map(|_| rng.normal_f64()).collect();
    let mut s = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            s[i * n + j] = (0..k).map(|l| a[i * k + l] * a[j * k + l]).sum::<f64>() / k as f64;
        }
    }
    s
}

fn sqrt_diff2(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x.sqrt() - y.sqrt()).powi(2))
        .sum()
}

#[test]
fn frechet_of_diagonal_covariances() -> TestResult {
    let (a, b) = ([1.0, 4.0, 0.25, 9.0], [4.0, 1.0, 0.25, 0.0]);
    let (mu1, mu2) = ([0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 0.0, 3.5]);
    let mean_term = 1.0 + 4.0 + 0.25;
    let want = mean_term + sqrt_diff2(&a, &b);
    close(
        frechet_distance(&mu1, &diag(&a), &mu2, &diag(&b))?,
        want,
        1e-12,
        "diagonal",
    )?;
    // One dimension: (μ₁ − μ₂)² + (σ₁ − σ₂)².
    let fd = frechet_distance(&[0.5], &[0.09], &[-1.0], &[4.0])?;
    close(fd, 1.5f64.powi(2) + (0.3f64 - 2.0).powi(2), 1e-12, "1-d")
}

#[test]
fn frechet_of_identical_distributions_is_zero() -> TestResult {
    let mut rng = SeededRng::new(1);
    for (n, k) in [(5, 50), (40, 200), (128, 60)] {
        let s = random_psd(n, k, &mut rng);
        let mu: Vec<f64> = (0..n).map(|_| rng.normal_f64()).collect();
        let fd = frechet_distance(&mu, &s, &mu, &s)?;
        let tr: f64 = (0..n).map(|i| s[i * n + i]).sum();
        assert!(
            fd >= 0.0 && fd <= 1e-9 * tr,
            "n {n}, k {k}: FD {fd} (trace {tr})"
        );
    }
    Ok(())
}

/// Absolute accuracy of `√λ` for a zero eigenvalue known to `ε·‖M‖`: `√(ε‖M‖)`. Singular
/// covariances therefore get `FD` to about `1e-7` relative, full-rank ones to `1e-12`.
const SINGULAR_TOL: f64 = 1e-6;

#[test]
fn frechet_of_rotated_commuting_covariances() -> TestResult {
    // Σ₁ = Q D₁ Qᵀ, Σ₂ = Q D₂ Qᵀ commute: FD = ‖μ₁ − μ₂‖² + Σ (√d₁ − √d₂)².
    let mut rng = SeededRng::new(2);
    let n = 16;
    let q = orthogonal(n, &mut rng);
    let z = vec![0.0; n];
    let d1: Vec<f64> = (0..n).map(|i| 0.1 + i as f64).collect();
    let d2: Vec<f64> = (0..n).map(|i| 3.0 / (1.0 + i as f64)).collect();
    let mu2: Vec<f64> = (0..n).map(|i| i as f64 * 0.1).collect();
    let want = mu2.iter().map(|m| m * m).sum::<f64>() + sqrt_diff2(&d1, &d2);
    let fd = frechet_distance(&z, &rotated(&q, &d1), &mu2, &rotated(&q, &d2))?;
    close(fd, want, 1e-11, "rotated commuting")?;
    // Singular Σ₂ (every fourth eigenvalue 0).
    let d3: Vec<f64> = d2
        .iter()
        .enumerate()
        .map(|(i, &v)| if i % 4 == 0 { 0.0 } else { v })
        .collect();
    let fd = frechet_distance(&z, &rotated(&q, &d1), &z, &rotated(&q, &d3))?;
    close(fd, sqrt_diff2(&d1, &d3), SINGULAR_TOL, "rotated singular")?;
    // Σ₁ = I against a rotated Σ₂: Σ (1 − √λ)².
    let fd = frechet_distance(&z, &diag(&vec![1.0; n]), &z, &rotated(&q, &d1))?;
    close(
        fd,
        sqrt_diff2(&vec![1.0; n], &d1),
        1e-11,
        "identity vs rotated",
    )
}

#[test]
fn frechet_of_non_commuting_2x2_matches_the_closed_form() -> TestResult {
    // For 2×2 PSD matrices, tr √(Σ₁Σ₂) = √(tr(Σ₁Σ₂) + 2 √(det Σ₁ · det Σ₂)).
    let mut rng = SeededRng::new(3);
    for _ in 0..20 {
        let s1 = random_psd(2, 3, &mut rng);
        let s2 = random_psd(2, 3, &mut rng);
        let det = |s: &[f64]| s[0] * s[3] - s[1] * s[2];
        let p = mm(&s1, &s2, 2);
        let tr_sqrt = (p[0] + p[3] + 2.0 * (det(&s1) * det(&s2)).max(0.0).sqrt()).sqrt();
        let want = s1[0] + s1[3] + s2[0] + s2[3] - 2.0 * tr_sqrt;
        let fd = frechet_distance(&[0.0, 0.0], &s1, &[0.0, 0.0], &s2)?;
        close(fd, want.max(0.0), 1e-10, "2x2")?;
    }
    Ok(())
}

#[test]
fn frechet_known_value_and_symmetry() -> TestResult {
    // numpy: eigvals(Σ₁Σ₂) and eigh both give 10.077471550541178.
    let s1 = [2.0, 1.0, 0.0, 1.0, 2.0, 0.5, 0.0, 0.5, 1.0];
    let s2 = [1.0, 0.0, 0.3, 0.0, 4.0, 0.0, 0.3, 0.0, 0.5];
    let fd = frechet_distance(&[0.0, 0.0, 1.0], &s1, &[1.0, 2.0, -1.0], &s2)?;
    close(fd, 10.077471550541178, 1e-12, "known value")?;
    let mut rng = SeededRng::new(4);
    let z = vec![0.0; 30];
    for (k, tol) in [(100, 1e-11), (10, SINGULAR_TOL)] {
        let (a, b) = (random_psd(30, k, &mut rng), random_psd(30, 100, &mut rng));
        let (ab, ba) = (
            frechet_distance(&z, &a, &z, &b)?,
            frechet_distance(&z, &b, &z, &a)?,
        );
        close(ab, ba, tol, "symmetry")?;
    }
    // Point masses: only the means count.
    close(
        frechet_distance(&[1.0, 2.0], &[0.0; 4], &[0.0, 0.0], &[0.0; 4])?,
        5.0,
        0.0,
        "points",
    )?;
    // Dimensions that are zero in both covariances (dead units) change nothing.
    let (a, b) = (random_psd(6, 20, &mut rng), random_psd(6, 3, &mut rng));
    let pad = |s: &[f64]| -> Vec<f64> {
        // 6×6 → 9×9 with zero rows/columns at 0, 4 and 8.
        let map = [1, 2, 3, 5, 6, 7];
        let mut o = vec![0.0; 81];
        (0..6).for_each(|i| (0..6).for_each(|j| o[map[i] * 9 + map[j]] = s[i * 6 + j]));
        o
    };
    let (m1, m2) = ([0.5, 0.0, 1.0, -1.0, 2.0, 0.0], [0.0; 6]);
    let (m1p, m2p) = ([0.0, 0.5, 0.0, 1.0, 1.0, -1.0, 2.0, 0.0, 0.0], [0.0; 9]);
    let small = frechet_distance(&m1, &a, &m2, &b)?;
    close(
        frechet_distance(&m1p, &pad(&a), &m2p, &pad(&b))?,
        small + 1.0,
        1e-12,
        "padded",
    )?;
    // Mismatched sizes and non-finite values are errors.
    assert!(frechet_distance(&[0.0], &[1.0], &[0.0, 0.0], &[1.0]).is_err());
    assert!(frechet_distance(&[0.0], &[f64::NAN], &[0.0], &[1.0]).is_err());
    Ok(())
}

#[test]
fn jacobi_eigendecomposition() -> TestResult {
    // The second-difference matrix tridiag(−1, 2, −1): λₖ = 2 − 2 cos(kπ/(n+1)).
    let n = 25;
    let mut t = vec![0.0; n * n];
    for i in 0..n {
        t[i * n + i] = 2.0;
        if i + 1 < n {
            t[i * n + i + 1] = -1.0;
            t[(i + 1) * n + i] = -1.0;
        }
    }
    let e = symmetric_eigen(&t, n)?;
    for (k, &l) in e.values.iter().enumerate() {
        let want = 2.0 - 2.0 * ((k + 1) as f64 * std::f64::consts::PI / (n + 1) as f64).cos();
        close(l, want, 1e-13, "tridiagonal eigenvalue")?;
    }
    // A random symmetric indefinite matrix: V diag(λ) Vᵀ = A and VᵀV = I.
    let mut rng = SeededRng::new(5);
    let n = 30;
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v = rng.normal_f64();
            a[i * n + j] = v;
            a[j * n + i] = v;
        }
    }
    let e = symmetric_eigen(&a, n)?;
    assert!(e.values.windows(2).all(|w| w[0] <= w[1]), "ascending");
    assert!(e.values[0] < 0.0, "indefinite");
    let back = rotated(&e.vectors, &e.values);
    let vtv = mm(&transpose(&e.vectors, n), &e.vectors, n);
    for i in 0..n * n {
        close(back[i], a[i], 1e-12, "reconstruction")?;
        close(
            vtv[i],
            if i % (n + 1) == 0 { 1.0 } else { 0.0 },
            1e-12,
            "orthonormality",
        )?;
    }
    assert!(symmetric_eigen(&[1.0, 2.0, 3.0], 2).is_err());
    Ok(())
}

#[test]
fn feature_stats_match_the_two_pass_formula() -> TestResult {
    let mut rng = SeededRng::new(6);
    let (n, d) = (57, 6);
    let x = Tensor::randn(&[n, d], &mut rng).affine(2.0, 1.0)?;
    let s = FeatureStats::from_features(&x)?;
    let v: Vec<f64> = x.to_vec().into_iter().map(f64::from).collect();
    for j in 0..d {
        let mj = (0..n).map(|i| v[i * d + j]).sum::<f64>() / n as f64;
        close(s.mean()[j], mj, 1e-12, "mean")?;
        for k in 0..d {
            let mk = (0..n).map(|i| v[i * d + k]).sum::<f64>() / n as f64;
            let c = (0..n)
                .map(|i| (v[i * d + j] - mj) * (v[i * d + k] - mk))
                .sum::<f64>()
                / (n - 1) as f64;
            close(s.cov()[j * d + k], c, 1e-12, "covariance")?;
        }
    }
    // Rank-deficient statistics (5 samples in 20-d) still give a finite, non-negative distance.
    let a = FeatureStats::from_features(&Tensor::randn(&[5, 20], &mut rng))?;
    let b = FeatureStats::from_features(&Tensor::randn(&[500, 20], &mut rng))?;
    let fd = a.frechet_distance(&b)?;
    assert!(fd.is_finite() && fd > 0.0, "{fd}");
    assert!(a.frechet_distance(&a)? < 1e-9);
    assert!(FeatureStats::from_features(&Tensor::zeros(&[1, 4])).is_err());
    Ok(())
}

#[test]
fn class_fidelity_counts() -> TestResult {
    let labels = [0, 1, 2, 0, 1, 2];
    let preds = [0, 1, 1, 0, 2, 2];
    let f = class_fidelity(&labels, &preds, 3)?;
    close(f.overall, 4.0 / 6.0, 1e-15, "overall")?;
    assert_eq!(f.per_class, vec![1.0, 0.5, 0.5]);
    assert_eq!(f.counts, vec![2, 2, 2]);
    assert_eq!(f.confusion[1], vec![0, 1, 1]);
    assert!(class_fidelity(&[0], &[3], 3).is_err());
    assert!(class_fidelity(&[0, 1], &[0], 3).is_err());
    Ok(())
}

#[test]
fn nn_diversity_definitions() -> TestResult {
    // Points on a line: 0, 1, 3, 7 → NN distances 1, 1, 2, 4.
    let line = [0.0f32, 1.0, 3.0, 7.0];
    assert_eq!(nn_distances(&line, 1), vec![1.0, 1.0, 2.0, 4.0]);
    // Reference: a 2-d grid with spacing 1 (NN distance 1 everywhere).
    let grid: Vec<f32> = (0..16)
        .flat_map(|i| [(i % 4) as f32, (i / 4) as f32])
        .collect();
    let reference = Tensor::from_vec(grid.clone(), &[16, 2])?;
    // Generated: the same grid, but with every other point duplicated → 8 groups of 2 copies.
    let dup: Vec<f32> = (0..8)
        .flat_map(|i| [grid[4 * i], grid[4 * i + 1], grid[4 * i], grid[4 * i + 1]])
        .collect();
    let d = nn_diversity(&Tensor::from_vec(dup, &[16, 2])?, &reference)?;
    assert_eq!((d.group_size, d.groups), (16, 1));
    close(d.nn_real, 1.0, 1e-12, "nn_real")?;
    close(d.nn_generated, 0.0, 1e-12, "nn_generated")?;
    close(d.near_duplicate_fraction, 1.0, 1e-12, "duplicates")?;
    close(
        d.real_near_duplicate_fraction,
        0.0,
        1e-12,
        "real duplicates",
    )?;
    // The grid against itself, twice over (two groups of 16): ratio 1, no duplicates.
    let twice = Tensor::concat(&[&reference, &reference], 0)?;
    let d = nn_diversity(&twice, &reference)?;
    assert_eq!((d.group_size, d.groups), (16, 2));
    close(d.ratio, 1.0, 1e-12, "ratio")?;
    close(d.near_duplicate_fraction, 0.0, 1e-12, "no duplicates")?;
    // Fewer generated than reference: only the first M reference rows are used.
    let d = nn_diversity(&reference.narrow(0, 0, 4)?, &reference)?;
    assert_eq!(d.group_size, 4);
    assert!(nn_diversity(&Tensor::zeros(&[1, 2]), &reference).is_err());
    Ok(())
}

/// A tiny random 10-class VAR whose images are `side`×`side` (one 2× downsample in the VAE).
fn tiny_pipeline(last_pn: usize) -> TestResult<Pipeline> {
    let patch_nums: Vec<usize> = [1, 2, 4, 8, 16]
        .into_iter()
        .filter(|&p| p <= last_pn)
        .collect();
    let (var, vae) = tiny_configs(&patch_nums);
    let bytes = random_weights_bytes(&var, &vae, 3)?;
    Ok(Pipeline::from_weights(
        &Weights::from_bytes("tiny", bytes)?,
        Device::Cpu,
    )?)
}

#[test]
fn evaluate_end_to_end_on_a_tiny_random_var() -> TestResult {
    let pipeline = tiny_pipeline(16)?; // 32×32 images, like the MNIST VAR
    let clf = MnistClassifier::builtin()?;
    let settings = EvalSettings {
        batch_size: 7,
        ..EvalSettings::new(2, 11, 1.5)
    };
    let mut seen = Vec::new();
    let report = evaluate_with(&pipeline, &clf, &settings, &mut |p: EvalProgress| {
        seen.push(p)
    })?;
    assert_eq!(report.samples, 20);
    assert_eq!(seen.len(), 3);
    assert_eq!(seen.last().map(|p| (p.done, p.total)), Some((20, 20)));
    assert_eq!(report.fidelity.counts, vec![2; 10]);
    assert!((0.0..=1.0).contains(&report.fidelity.overall));
    assert!(
        report.fd_generated_test.is_finite() && report.fd_generated_test > report.fd_valid_test
    );
    assert_eq!(report.diversity.group_size, 20);
    assert_eq!(report.settings, settings);
    assert!(report.to_string().contains("class fidelity"));
    assert_eq!(report.to_json()["samples"], 20);
    // Deterministic for a seed; batch seeds differ from each other.
    let again = evaluate_with(&pipeline, &clf, &settings, &mut |_| {})?;
    assert_eq!(again, report);
    let short = evaluate(&pipeline, &clf, 1, 11, 1.5, &mut |_| {})?;
    assert_eq!(short.samples, 10);
    Ok(())
}

#[test]
fn evaluate_rejects_models_that_are_not_mnist_sized() -> TestResult {
    let clf = MnistClassifier::builtin()?;
    let small = tiny_pipeline(4)?; // 8×8 images
    let err = evaluate(&small, &clf, 1, 0, 1.0, &mut |_| {})
        .err()
        .ok_or("8x8 model accepted")?;
    assert!(
        matches!(err, Error::Usage(_)) && err.is_user_error(),
        "{err}"
    );
    let big = tiny_pipeline(16)?;
    let err = evaluate(&big, &clf, 0, 0, 1.0, &mut |_| {})
        .err()
        .ok_or("0 samples accepted")?;
    assert!(matches!(err, Error::Usage(_)), "{err}");
    Ok(())
}
