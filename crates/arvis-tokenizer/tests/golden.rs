//! Golden parity with the official PyTorch code: `tests/golden/vqvae_tiny.safetensors`, made by
//! `xtask/py/golden_var.py` (official `VQVAE` with seeded random weights, tiny config with the
//! real structure and scales). Codes must match exactly; latents and images within
//! rel 1e-4 / abs 1e-3.
//!
//! The fixture path can be overridden with `ARVIS_TOKENIZER_GOLDEN`. A missing fixture fails
//! the test (it never passes silently).

mod common;

use std::path::PathBuf;

use arvis_core::{Tensor, Tolerance, Weights};
use arvis_tokenizer::{VqVae, VqVaeConfig};
use common::TestResult;

const TOL: Tolerance = Tolerance::new(1e-4, 1e-3);

fn fixture() -> Result<Weights, Box<dyn std::error::Error>> {
    let path = std::env::var_os("ARVIS_TOKENIZER_GOLDEN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/vqvae_tiny.safetensors"),
        PathBuf::from,
    );
    if !path.exists() {
        return Err(format!(
            "golden fixture {} is missing: generate it with \
             `/work/venv/bin/python xtask/py/golden_var.py --var-repo <FoundationVision/VAR checkout>` \
             (see tests/golden/README.md)",
            path.display()
        )
        .into());
    }
    Ok(Weights::open(&path)?)
}

/// Max |Δ|, max |Δ|/|want| (over |want| > 1e-3) and max |want| of `got` vs `want`.
fn errors(got: &Tensor, want: &Tensor) -> (f64, f64, f64) {
    let (g, w) = (got.to_vec(), want.to_vec());
    let (mut abs, mut rel, mut scale) = (0.0f64, 0.0f64, 0.0f64);
    for (&a, &e) in g.iter().zip(&w) {
        let (a, e) = (a as f64, e as f64);
        let d = (a - e).abs();
        abs = abs.max(d);
        scale = scale.max(e.abs());
        if e.abs() > 1e-3 {
            rel = rel.max(d / e.abs());
        }
    }
    (abs, rel, scale)
}

fn compare(what: &str, got: &Tensor, want: &Tensor) -> TestResult {
    if got.shape() != want.shape() {
        return Err(format!("{what}: shape {:?}, golden {:?}", got.shape(), want.shape()).into());
    }
    let (abs, rel, scale) = errors(got, want);
    println!(
        "{what:>16}: max |Δ| {abs:.3e}, max rel {rel:.3e} (where |want| > 1e-3), \
         max |want| {scale:.3} ({} values)",
        got.numel()
    );
    TOL.check(&got.to_vec(), &want.to_vec())
        .map_err(|m| format!("{what}: {m}").into())
}

fn golden_indices(w: &Weights, n: usize) -> Result<Vec<Vec<u32>>, Box<dyn std::error::Error>> {
    (0..n)
        .map(|si| {
            let t = w.get_any(&format!("golden.idx.{si}"))?;
            Ok(t.to_vec().iter().map(|&v| v as u32).collect())
        })
        .collect()
}

fn load() -> Result<(Weights, VqVaeConfig), Box<dyn std::error::Error>> {
    let w = fixture()?;
    let cfg = VqVaeConfig::from_weights(&w)?;
    Ok((w, cfg))
}

#[test]
fn golden_checkpoint_keys_are_exactly_what_load_reads() -> TestResult {
    let (w, cfg) = load()?;
    common::assert_keys_are(&w, "vae", VqVae::tensor_shapes(&cfg)?)?;
    Ok(())
}

#[test]
fn golden_encode_matches_official() -> TestResult {
    let (w, cfg) = load()?;
    let vae = VqVae::load(&w.scope("vae"), &cfg)?;
    let img = w.get_any("golden.img")?;
    let b = img.shape()[0];

    let f = vae.img_to_latent(&img)?;
    compare("latent f", &f, &w.get_any("golden.f")?)?;

    let (idx, f_hat) = vae.encode(&img)?;
    let want = golden_indices(&w, cfg.patch_nums.len())?;
    for (si, (got, want)) in idx.iter().zip(&want).enumerate() {
        let pn = cfg.patch_nums[si];
        assert_eq!(got.len(), b * pn * pn, "scale {si} length");
        let bad = got.iter().zip(want).filter(|(a, b)| a != b).count();
        assert_eq!(
            bad,
            0,
            "scale {si} (pn {pn}): {bad} of {} codes differ",
            got.len()
        );
    }
    println!(
        "{:>16}: all {} codes equal",
        "indices",
        idx.iter().map(Vec::len).sum::<usize>()
    );
    compare("f_hat (encode)", &f_hat, &w.get_any("golden.fhat")?)?;
    assert_eq!(vae.img_to_indices(&img)?, idx);
    Ok(())
}

#[test]
fn golden_decode_matches_official() -> TestResult {
    let (w, cfg) = load()?;
    let vae = VqVae::load(&w.scope("vae"), &cfg)?;
    let want_idx = golden_indices(&w, cfg.patch_nums.len())?;
    let b = w.get_any("golden.img")?.shape()[0];

    let f_hat = vae.indices_to_fhat(&want_idx, b)?;
    compare("fhat_from_idx", &f_hat, &w.get_any("golden.fhat_from_idx")?)?;

    // The decoder alone, from the official f_hat.
    let golden_fhat = w.get_any("golden.fhat")?;
    let rec = vae.fhat_to_img(&golden_fhat)?;
    compare("rec", &rec, &w.get_any("golden.rec")?)?;
    // And the whole decode chain from the codes.
    let rec2 = vae.indices_to_img(&want_idx, b)?;
    compare("rec (from idx)", &rec2, &w.get_any("golden.rec")?)?;
    Ok(())
}
