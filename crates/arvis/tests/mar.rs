//! MAR through the facade: a seeded random MAR file (transformer, head, KL VAE) loads by its
//! family into `Pipeline`, honours `MarOptions`, and the `arvis generate` CLI drives it with
//! `--steps`, `--head-steps`, `--disa`, `--temperature`, `--cfg-schedule`.

use std::path::Path;
use std::process::{Command, Output};

use arvis::core::{Device, Weights};
use arvis::models::mar::random::random_weights_bytes;
use arvis::models::mar::{DiffusionHeadConfig, HeadSteps, KlVaeConfig, MarConfig};
use arvis::tokenizer::image::decode_png;
use arvis::{MarOptions, Pipeline, Sampling, Stage};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn head() -> DiffusionHeadConfig {
    DiffusionHeadConfig {
        token_channels: 16,
        z_channels: 32,
        width: 32,
        depth: 1,
    }
}

fn tiny_bytes() -> TestResult<Vec<u8>> {
    let mar = MarConfig {
        img_size: 64,
        encoder_embed_dim: 32,
        encoder_depth: 1,
        encoder_num_heads: 2,
        decoder_embed_dim: 32,
        decoder_depth: 1,
        decoder_num_heads: 2,
        class_num: 6,
        buffer_size: 4,
        ..MarConfig::mar_base()
    };
    let vae = KlVaeConfig {
        ch: 8,
        norm_groups: 4,
        resolution: 64,
        ..KlVaeConfig::kl16()
    };
    Ok(random_weights_bytes(&mar, &head(), Some(&vae), 3)?)
}

#[test]
fn mar_file_generates_images() -> TestResult {
    let w = Weights::from_bytes("mar_tiny.safetensors", tiny_bytes()?)?;
    let mut p = Pipeline::from_weights(&w, Device::Cpu)?;
    assert_eq!(p.family(), "mar");
    assert_eq!(p.default_sampling(), Sampling::MAR);
    assert_eq!(p.num_classes(), 6);
    p.set_mar_options(MarOptions {
        num_iter: 3,
        head_steps: HeadSteps::Fixed(4),
        ..MarOptions::default()
    });
    assert_eq!(p.num_steps(), 4);
    let req = p.request(vec![1, 5], 9);
    let mut steps = Vec::new();
    let img = p.generate(&req, &mut |s| steps.push((s.done, s.total, s.stage)))?;
    assert_eq!(img.shape(), &[2, 3, 64, 64]);
    let want: Vec<_> = (1..=4)
        .map(|d| (d, 4, if d < 4 { Stage::Tokens } else { Stage::Decode }))
        .collect();
    assert_eq!(steps, want);
    assert!(img.to_vec().iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(img.to_vec(), p.generate(&req, &mut |_| {})?.to_vec());
    Ok(())
}

/// MAR on the GPU through `Pipeline` and `arvis generate --device gpu`: the same seed gives the
/// same image twice, within `|Δ| ≤ 1e-3 + 1e-3·|cpu|` of the CPU's (same draws, only the kernels'
/// float order differs), and the CLI writes it.
#[test]
fn mar_generates_on_the_gpu() -> TestResult {
    if !arvis_core::gpu::ready_for_tests(Device::Gpu)? {
        return Ok(());
    }
    let w = Weights::from_bytes("mar_tiny.safetensors", tiny_bytes()?)?;
    let options = MarOptions {
        num_iter: 3,
        head_steps: HeadSteps::Fixed(4),
        ..MarOptions::default()
    };
    let mut images = Vec::new();
    for device in [Device::Gpu, Device::Cpu] {
        let mut p = Pipeline::from_weights(&w, device)?;
        p.set_mar_options(options);
        let req = p.request(vec![1, 5], 9);
        let img = p.generate(&req, &mut |_| {})?;
        assert_eq!(img.shape(), &[2, 3, 64, 64]);
        assert_eq!(img.device(), device);
        if device == Device::Gpu {
            assert_eq!(img.to_vec(), p.generate(&req, &mut |_| {})?.to_vec());
        }
        images.push(img.to_vec());
    }
    let max = images[0]
        .iter()
        .zip(&images[1])
        .map(|(g, c)| (g - c).abs())
        .fold(0f32, f32::max);
    eprintln!("Pipeline MAR image, GPU vs CPU: max |Δ| {max:.2e}");
    arvis_core::Tolerance::new(1e-3, 1e-3)
        .check(&images[0], &images[1])
        .map_err(|m| format!("GPU vs CPU image: {m}"))?;

    let dir = tempfile::tempdir()?;
    let model = dir.path().join("mar_tiny.safetensors");
    std::fs::write(&model, tiny_bytes()?)?;
    let out = dir.path().join("gpu.png");
    let o = arvis(&[
        "generate",
        "--model",
        s(&model),
        "--device",
        "gpu",
        "--class",
        "2",
        "--steps",
        "3",
        "--head-steps",
        "4",
        "--out",
        s(&out),
        "-q",
    ])?;
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let img = decode_png(&std::fs::read(&out)?)?;
    assert_eq!((img.width(), img.height()), (64, 64));
    Ok(())
}

fn arvis(args: &[&str]) -> std::io::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_arvis"))
        .args(args)
        .output()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

#[test]
fn cli_generates_with_mar_options() -> TestResult {
    let dir = tempfile::tempdir()?;
    let model = dir.path().join("mar_tiny.safetensors");
    std::fs::write(&model, tiny_bytes()?)?;
    let run = |out: &Path, extra: &[&str]| -> TestResult<Output> {
        let mut args = vec![
            "generate",
            "--model",
            s(&model),
            "--class",
            "2",
            "--class",
            "4",
            "--seed",
            "1",
            "--steps",
            "4",
            "--out",
            s(out),
            "-q",
        ];
        args.extend_from_slice(extra);
        Ok(arvis(&args)?)
    };
    let (a, b, c) = (
        dir.path().join("a.png"),
        dir.path().join("b.png"),
        dir.path().join("c.png"),
    );
    for (out, extra) in [
        (&a, &["--disa", "linear:6:2", "--temperature", "0.9"][..]),
        (&b, &["--disa", "linear:6:2", "--temperature", "0.9"][..]),
        (
            &c,
            &[
                "--head-steps",
                "3",
                "--cfg-schedule",
                "constant",
                "--cfg",
                "2",
            ][..],
        ),
    ] {
        let o = run(out, extra)?;
        assert!(
            o.status.success(),
            "stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let img = decode_png(&std::fs::read(&a)?)?;
    assert_eq!((img.width(), img.height()), (128, 64));
    assert_eq!(std::fs::read(&a)?, std::fs::read(&b)?);
    assert_ne!(std::fs::read(&a)?, std::fs::read(&c)?);

    // User mistakes: exit 2, no file.
    let bad = dir.path().join("bad.png");
    for extra in [
        &["--disa", "linear:5"][..],
        &["--disa", "linear:2:5"][..],
        &["--disa", "zigzag:5:2"][..],
        &["--head-steps", "0"][..],
        &["--head-steps", "3", "--disa", "linear:5:2"][..],
        &["--steps", "17"][..],
        &["--class", "6"][..],
    ] {
        let o = run(&bad, extra)?;
        assert_eq!(
            o.status.code(),
            Some(2),
            "{extra:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!bad.exists(), "{extra:?} left a file");
    }
    Ok(())
}

#[test]
fn mar_options_on_another_family_are_a_usage_error() -> TestResult {
    use arvis::models::var::random::{random_weights_bytes as var_bytes, tiny_configs};
    let dir = tempfile::tempdir()?;
    let (var, vae) = tiny_configs(&[1, 2, 4]);
    let model = dir.path().join("tiny_var.safetensors");
    std::fs::write(&model, var_bytes(&var, &vae, 1)?)?;
    let out = dir.path().join("x.png");
    let o = arvis(&[
        "generate",
        "--model",
        s(&model),
        "--class",
        "1",
        "--steps",
        "4",
        "--out",
        s(&out),
        "-q",
    ])?;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("MAR"));
    assert!(!out.exists());
    Ok(())
}
