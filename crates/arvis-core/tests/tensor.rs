//! Tensor constructors, shape helpers and the shared tolerance type.

use arvis_core::{Error, SeededRng, Tensor, Tolerance};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn constructors_and_shape_helpers() -> TestResult {
    let t = Tensor::from_vec((0..24).map(|v| v as f32).collect(), &[2, 3, 4])?;
    assert_eq!((t.rank(), t.numel(), t.dim(-1)?, t.dim(0)?), (3, 24, 4, 2));
    assert!(matches!(
        t.dim(3),
        Err(Error::Dim {
            dim: 3,
            rank: 3,
            ..
        })
    ));
    assert!(matches!(t.dim(-4), Err(Error::Dim { .. })));
    assert!(matches!(
        Tensor::from_vec(vec![0.0; 5], &[2, 3]),
        Err(Error::ElementCount {
            len: 5,
            expected: 6,
            ..
        })
    ));
    assert_eq!(Tensor::zeros(&[2, 0]).numel(), 0);
    assert_eq!(Tensor::scalar(3.5).to_scalar()?, 3.5);
    assert!(Tensor::ones(&[2]).to_scalar().is_err());
    assert_eq!(Tensor::arange(4).to_vec(), vec![0.0, 1.0, 2.0, 3.0]);
    // Clones share data; ops never mutate their inputs.
    let c = t.clone();
    let _ = t.add_scalar(1.0);
    assert_eq!(c.to_vec(), t.to_vec());
    // A transposed ndarray view is copied into standard layout.
    let a = ndarray::Array2::from_shape_fn((2, 3), |(i, j)| (i * 3 + j) as f32);
    let tt = Tensor::from_ndarray(a.t());
    assert_eq!(tt.shape(), &[3, 2]);
    assert_eq!(tt.to_vec(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    Ok(())
}

#[test]
fn seeded_constructors_are_deterministic_and_distributed() {
    let a = Tensor::randn(&[1000], &mut SeededRng::new(3));
    let b = Tensor::randn(&[1000], &mut SeededRng::new(3));
    let c = Tensor::randn(&[1000], &mut SeededRng::new(4));
    assert_eq!(a.to_vec(), b.to_vec());
    assert_ne!(a.to_vec(), c.to_vec());
    let v = Tensor::randn(&[100_000], &mut SeededRng::new(5)).to_vec();
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
    // Standard errors: mean 0.0032, variance 0.0045; allow 5 sigma.
    assert!(
        mean.abs() < 0.016 && (var - 1.0).abs() < 0.023,
        "mean {mean} var {var}"
    );
    let u = Tensor::uniform(&[10_000], -2.0, 3.0, &mut SeededRng::new(6)).to_vec();
    assert!(u.iter().all(|&x| (-2.0..3.0).contains(&x)));
    let um = u.iter().map(|&x| x as f64).sum::<f64>() / u.len() as f64;
    assert!((um - 0.5).abs() < 0.08, "uniform mean {um}");
}

#[test]
fn tolerance_accepts_close_and_rejects_far() {
    let tol = Tolerance::ELEMENTWISE;
    assert!(
        tol.check(&[1.0f32, -2.0, 0.0], &[1.00005f64, -2.0001, 5e-6])
            .is_ok()
    );
    let err = tol
        .check(&[1.0f32, 2.0, 3.0], &[1.0f64, 2.1, 3.5])
        .expect_err("must fail");
    assert_eq!((err.index, err.count), (2, 2));
    assert!(tol.check(&[f32::NAN], &[1.0f64]).is_err());
    assert!(tol.check(&[f32::NAN], &[f64::NAN]).is_ok());
    assert!(tol.check(&[f32::INFINITY], &[f64::INFINITY]).is_ok());
    assert!(tol.check(&[f32::INFINITY], &[f64::NEG_INFINITY]).is_err());
    assert!(tol.check(&[1.0f32], &[1.0f64, 2.0]).is_err());
    assert!(Tolerance::MATMUL.check(&[100.05f32], &[100.0f64]).is_ok());
    assert!(
        Tolerance::ELEMENTWISE
            .check(&[100.05f32], &[100.0f64])
            .is_err()
    );
}
