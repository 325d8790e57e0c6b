//! Every op against its naive f64 reference on random inputs with odd sizes, one generic body per
//! op run on each device (`device_tests!`: `<op>::cpu` and `<op>::gpu`). GPU shapes stay tiny:
//! CI runs them on lavapipe.

mod common;

use arvis_core::{Device, Tensor, Tolerance};
use common::*;

/// `t` moved to `device`.
fn on(t: &Tensor, device: Device) -> arvis_core::Result<Tensor> {
    t.to_device(device)
}

/// Checks `got` (any device) against an f64 reference.
fn check(tol: Tolerance, what: &str, got: &Tensor, want: &[f64]) -> TestResult {
    let got = got.try_to_vec()?;
    tol.check(&got, want).map_err(|e| format!("{what}: {e}"))?;
    Ok(())
}

fn unary_case(device: Device) -> TestResult {
    type Op = fn(&Tensor) -> arvis_core::Result<Tensor>;
    type Case = (&'static str, Op, Box<dyn Fn(f64) -> f64>);
    let erf = |x: f64| libm::erf(x);
    let cases: Vec<Case> = vec![
        ("silu", Tensor::silu, Box::new(|v| v / (1.0 + (-v).exp()))),
        (
            "gelu_tanh",
            Tensor::gelu_tanh,
            Box::new(|v| {
                0.5 * v
                    * (1.0
                        + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())
            }),
        ),
        (
            "gelu_erf",
            Tensor::gelu_erf,
            Box::new(move |v| 0.5 * v * (1.0 + erf(v / 2f64.sqrt()))),
        ),
        (
            "sigmoid",
            Tensor::sigmoid,
            Box::new(|v| 1.0 / (1.0 + (-v).exp())),
        ),
        ("exp", Tensor::exp, Box::new(f64::exp)),
        ("tanh", Tensor::tanh, Box::new(f64::tanh)),
    ];
    for (i, n) in [1usize, 255, 257, 1031].into_iter().enumerate() {
        let x = randn(&[n], 7 + i as u64).scale(3.0)?;
        let xs = f64s(&x);
        let xd = on(&x, device)?;
        for (name, op, f) in &cases {
            let want: Vec<f64> = xs.iter().map(|&v| f(v)).collect();
            check(Tolerance::ELEMENTWISE, name, &op(&xd)?, &want)?;
        }
        let want: Vec<f64> = xs.iter().map(|&v| v.clamp(-0.5, 1.25)).collect();
        check(
            Tolerance::ELEMENTWISE,
            "clamp",
            &xd.clamp(-0.5, 1.25)?,
            &want,
        )?;
        let want: Vec<f64> = xs.iter().map(|&v| 1.5 * v - 0.25).collect();
        check(
            Tolerance::ELEMENTWISE,
            "affine",
            &xd.affine(1.5, -0.25)?,
            &want,
        )?;
        assert_eq!(xd.silu()?.device(), device);
    }
    Ok(())
}

fn binary_case(device: Device) -> TestResult {
    type Op = fn(&Tensor, &Tensor) -> arvis_core::Result<Tensor>;
    type Case = (&'static str, Op, fn(f64, f64) -> f64);
    let ops: [Case; 4] = [
        ("add", Tensor::add, |a, b| a + b),
        ("sub", Tensor::sub, |a, b| a - b),
        ("mul", Tensor::mul, |a, b| a * b),
        ("div", Tensor::div, |a, b| a / b),
    ];
    let shapes: [(&[usize], &[usize]); 6] = [
        (&[37], &[37]),
        (&[3, 1, 5], &[4, 1]),
        (&[2, 3, 7], &[7]),
        (&[1], &[2, 5]),
        (&[2, 1, 3, 1, 2], &[5, 1, 1, 2]),
        (&[], &[3]),
    ];
    for (i, (sa, sb)) in shapes.into_iter().enumerate() {
        let a = randn(sa, 30 + i as u64);
        // Keep divisors away from zero.
        let b = randn(sb, 60 + i as u64).map(|v| if v.abs() < 0.2 { 0.7 } else { v })?;
        let (ad, bd) = (on(&a, device)?, on(&b, device)?);
        for (name, op, f) in ops {
            let got = op(&ad, &bd)?;
            let (want, shape) = naive_broadcast(&f64s(&a), sa, &f64s(&b), sb, f);
            assert_eq!(got.shape(), shape.as_slice(), "{name} {sa:?} {sb:?}");
            check(Tolerance::ELEMENTWISE, name, &got, &want)?;
        }
    }
    Ok(())
}

device_tests! {
    unary_ops_match_f64: unary_case;
    binary_ops_broadcast_like_numpy: binary_case;
}
