//! Ops against outputs recorded from PyTorch (`xtask/py/make_core_fixtures.py`): the semantics
//! that a naive re-implementation could get wrong the same way (interpolation index maps,
//! overlapping area windows, asymmetric padding, GELU's erf) are pinned to torch itself.

use std::path::PathBuf;

use arvis_core::ops::{Conv2dParams, Padding2d};
use arvis_core::{Tensor, Tolerance, Weights};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn fixture() -> arvis_core::Result<Weights> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/torch_ops.safetensors");
    Weights::open(path)
}

fn check(name: &str, got: &Tensor, want: &Tensor, tol: Tolerance) -> TestResult {
    assert_eq!(got.shape(), want.shape(), "{name}: shape");
    tol.check(&got.to_vec(), &want.to_vec())
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(())
}

#[test]
fn bicubic_matches_torch() -> TestResult {
    let w = fixture()?;
    for case in [
        "bicubic_1_to_16",
        "bicubic_5_to_16",
        "bicubic_13_to_16",
        "bicubic_16_to_13",
        "bicubic_7x4_to_9x11",
    ] {
        let x = w.get_any(&format!("{case}.x"))?;
        let y = w.get_any(&format!("{case}.y"))?;
        let s = y.shape();
        let got = x.resize_bicubic(s[2], s[3])?;
        check(case, &got, &y, Tolerance::ELEMENTWISE)?;
    }
    Ok(())
}

#[test]
fn area_and_nearest_match_torch() -> TestResult {
    let w = fixture()?;
    let x = w.get_any("area_16.x")?;
    for o in [13, 10, 8, 6, 5, 4, 3, 2, 1] {
        let y = w.get_any(&format!("area_16_to_{o}.y"))?;
        check(
            &format!("area 16→{o}"),
            &x.resize_area(o, o)?,
            &y,
            Tolerance::ELEMENTWISE,
        )?;
    }
    let x = w.get_any("area_9x7_to_4x3.x")?;
    check(
        "area 9x7→4x3",
        &x.resize_area(4, 3)?,
        &w.get_any("area_9x7_to_4x3.y")?,
        Tolerance::ELEMENTWISE,
    )?;
    let x = w.get_any("nearest2x.x")?;
    // Nearest is a copy: exact.
    assert_eq!(
        x.upsample_nearest2x()?.to_vec(),
        w.get_any("nearest2x.y")?.to_vec()
    );
    Ok(())
}

#[test]
fn activations_match_torch() -> TestResult {
    let w = fixture()?;
    let x = w.get_any("act.x")?;
    check(
        "gelu_erf",
        &x.gelu_erf()?,
        &w.get_any("gelu_erf.y")?,
        Tolerance::ELEMENTWISE,
    )?;
    check(
        "gelu_tanh",
        &x.gelu_tanh()?,
        &w.get_any("gelu_tanh.y")?,
        Tolerance::ELEMENTWISE,
    )?;
    check(
        "silu",
        &x.silu()?,
        &w.get_any("silu.y")?,
        Tolerance::ELEMENTWISE,
    )?;
    Ok(())
}

#[test]
fn norms_and_softmax_match_torch() -> TestResult {
    let w = fixture()?;
    for (case, groups, eps) in [("group_norm_32", 32, 1e-6), ("group_norm_3", 3, 1e-5)] {
        let get = |s: &str| w.get_any(&format!("{case}.{s}"));
        let got = get("x")?.group_norm(groups, Some(&get("w")?), Some(&get("b")?), eps)?;
        check(case, &got, &get("y")?, Tolerance::ELEMENTWISE)?;
    }
    let x = w.get_any("layer_norm.x")?;
    check(
        "layer_norm",
        &x.layer_norm(None, None, 1e-6)?,
        &w.get_any("layer_norm_noaffine.y")?,
        Tolerance::ELEMENTWISE,
    )?;
    let (lw, lb) = (
        w.get_any("layer_norm_affine.w")?,
        w.get_any("layer_norm_affine.b")?,
    );
    check(
        "layer_norm_affine",
        &x.layer_norm(Some(&lw), Some(&lb), 1e-6)?,
        &w.get_any("layer_norm_affine.y")?,
        Tolerance::ELEMENTWISE,
    )?;
    let x3 = x.scale(3.0)?;
    check(
        "softmax",
        &x3.softmax(-1)?,
        &w.get_any("softmax.y")?,
        Tolerance::ELEMENTWISE,
    )?;
    check(
        "log_softmax",
        &x3.log_softmax(-1)?,
        &w.get_any("log_softmax.y")?,
        Tolerance::ELEMENTWISE,
    )?;
    Ok(())
}

#[test]
fn conv2d_matches_torch_including_asymmetric_padding() -> TestResult {
    let w = fixture()?;
    let down = Conv2dParams {
        stride: (2, 2),
        padding: Padding2d::from_torch_pad([0, 1, 0, 1]),
    };
    for (case, p) in [
        ("conv_down", down),
        ("conv_down_odd", down),
        ("conv_same", Conv2dParams::new(1, 1)),
        ("conv_1x1", Conv2dParams::default()),
    ] {
        let get = |s: &str| w.get_any(&format!("{case}.{s}"));
        let got = get("x")?.conv2d(&get("w")?, Some(&get("b")?), p)?;
        check(case, &got, &get("y")?, Tolerance::MATMUL)?;
    }
    Ok(())
}
