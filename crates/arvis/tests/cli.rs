//! The `arvis` binary end to end on a tiny random VAR file: output, determinism, exit codes, and
//! no partial output on failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arvis::models::var::random::{random_weights_bytes, tiny_configs};
use arvis::tokenizer::image::decode_png;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn tiny_model(dir: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let (var, vae) = tiny_configs(&[1, 2, 4]);
    let path = dir.join("tiny_var.safetensors");
    std::fs::write(&path, random_weights_bytes(&var, &vae, 1)?)?;
    Ok(path)
}

fn arvis(args: &[&str]) -> std::io::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_arvis"))
        .args(args)
        .output()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// Generates classes 3 and 7 with seed 5 on `device` twice, into `a.png` and `b.png` in `dir`.
fn generate_twice(dir: &Path, model: &Path, device: &str) -> TestResult<(PathBuf, PathBuf)> {
    let (a, b) = (dir.join("a.png"), dir.join("b.png"));
    for out in [&a, &b] {
        let o = arvis(&[
            "generate",
            "--model",
            s(model),
            "--class",
            "3",
            "--class",
            "7",
            "--seed",
            "5",
            "--device",
            device,
            "--out",
            s(out),
            "-q",
        ])?;
        assert!(
            o.status.success(),
            "stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok((a, b))
}

#[test]
fn generate_writes_a_png_and_is_deterministic() -> TestResult {
    let dir = tempfile::tempdir()?;
    let model = tiny_model(dir.path())?;
    let (a, b) = generate_twice(dir.path(), &model, "cpu")?;
    let img = decode_png(&std::fs::read(&a)?)?;
    assert_eq!((img.width(), img.height()), (16, 8)); // two 8x8 images side by side
    assert_eq!(
        std::fs::read(&a)?,
        std::fs::read(&b)?,
        "same seed, same image"
    );
    let c = dir.path().join("c.png");
    let o = arvis(&[
        "generate",
        "--model",
        s(&model),
        "--class",
        "3",
        "--class",
        "7",
        "--seed",
        "6",
        "--out",
        s(&c),
        "-q",
    ])?;
    assert!(o.status.success());
    assert_ne!(
        std::fs::read(&a)?,
        std::fs::read(&c)?,
        "another seed, another image"
    );
    // No temporary files are left next to the outputs.
    let names: Vec<_> = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    Ok(())
}

/// `--f16-weights` generates (the weights rounded to f16 at load), deterministically, on the
/// CPU and, when an adapter exists, on the GPU.
#[test]
fn generate_with_f16_weights_is_deterministic() -> TestResult {
    let dir = tempfile::tempdir()?;
    let model = tiny_model(dir.path())?;
    let mut devices = vec!["cpu"];
    if arvis_core::gpu::ready_for_tests(arvis_core::Device::Gpu)? {
        devices.push("gpu");
    }
    for device in devices {
        let (a, b) = (
            dir.path().join(format!("{device}-a.png")),
            dir.path().join(format!("{device}-b.png")),
        );
        for out in [&a, &b] {
            let o = arvis(&[
                "generate",
                "--model",
                s(&model),
                "--class",
                "3",
                "--seed",
                "5",
                "--device",
                device,
                "--f16-weights",
                "--out",
                s(out),
                "-q",
            ])?;
            assert!(
                o.status.success(),
                "{device}: stderr: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let img = decode_png(&std::fs::read(&a)?)?;
        assert_eq!((img.width(), img.height()), (8, 8));
        assert_eq!(
            std::fs::read(&a)?,
            std::fs::read(&b)?,
            "{device}: same seed"
        );
    }
    Ok(())
}

#[test]
fn user_mistakes_exit_2_without_output() -> TestResult {
    let dir = tempfile::tempdir()?;
    let model = tiny_model(dir.path())?;
    let out = dir.path().join("out.png");
    let not_var = dir.path().join("other.safetensors");
    std::fs::write(&not_var, b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")?;
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "generate",
                "--model",
                s(&model),
                "--class",
                "10",
                "--out",
                s(&out),
            ],
            "label 10",
        ),
        (
            vec![
                "generate",
                "--model",
                "/nonexistent.safetensors",
                "--class",
                "1",
                "--out",
                s(&out),
            ],
            "nonexistent",
        ),
        (
            vec![
                "generate",
                "--model",
                s(&not_var),
                "--class",
                "1",
                "--out",
                s(&out),
            ],
            "arvis.family",
        ),
        (
            vec![
                "generate",
                "--model",
                s(&model),
                "--class",
                "1",
                "--top-p",
                "0",
                "--out",
                s(&out),
            ],
            "top_p",
        ),
        (
            vec![
                "generate",
                "--model",
                s(&model),
                "--class",
                "1",
                "--out",
                "x.jpg",
            ],
            ".png",
        ),
        (
            vec!["generate", "--model", s(&model), "--out", s(&out)],
            "--class",
        ),
        (
            vec![
                "generate",
                "--model",
                s(&model),
                "--class",
                "-3",
                "--out",
                s(&out),
            ],
            "error",
        ),
        (vec!["info", "/nonexistent.safetensors"], "nonexistent"),
        (vec!["frobnicate"], "error"),
    ];
    for (args, needle) in cases {
        let o = arvis(&args)?;
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected `{needle}` in: {stderr}"
        );
        assert!(!out.exists(), "{args:?} left {}", out.display());
    }
    Ok(())
}

#[test]
fn grid_writes_one_row_per_class() -> TestResult {
    let dir = tempfile::tempdir()?;
    let model = tiny_model(dir.path())?;
    let out = dir.path().join("grid.png");
    let o = arvis(&[
        "generate",
        "--model",
        s(&model),
        "--grid",
        "--per-class",
        "3",
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
    // 10 classes × 3 per class, 8×8 images, 3 per row.
    assert_eq!((img.width(), img.height()), (3 * 8, 10 * 8));
    // Both --class and --grid is a usage error.
    let o = arvis(&[
        "generate",
        "--model",
        s(&model),
        "--grid",
        "--class",
        "1",
        "--out",
        s(&out),
    ])?;
    assert_eq!(o.status.code(), Some(2));
    Ok(())
}

#[test]
fn info_describes_the_model() -> TestResult {
    let dir = tempfile::tempdir()?;
    let model = tiny_model(dir.path())?;
    let o = arvis(&["info", s(&model)])?;
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout)?;
    assert!(text.contains("family:     var"), "{text}");
    assert!(text.contains("\"patch_nums\""), "{text}");
    // The parameter count is the sum of the file's tensor sizes, read independently here.
    let w = arvis::core::Weights::open(&model)?;
    let n: usize = w
        .names()
        .iter()
        .map(|k| {
            w.shape_of(k)
                .map(|s| s.iter().product::<usize>())
                .unwrap_or(0)
        })
        .sum();
    assert!(text.contains(&format!("parameters: {n} ")), "{text}");
    Ok(())
}

/// `arvis info --gpu` reports the adapter (when one exists; CI installs lavapipe and requires
/// it), and `arvis info` with neither a model nor `--gpu` is a usage error.
#[test]
fn info_gpu_reports_the_adapter() -> TestResult {
    let o = arvis(&["info"])?;
    assert_eq!(o.status.code(), Some(2));
    let o = arvis(&["info", "--gpu"])?;
    let out = String::from_utf8_lossy(&o.stdout);
    if o.status.success() {
        assert!(
            out.contains("adapter:") && out.contains("storage binding:"),
            "{out}"
        );
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        return Err(format!(
            "CI=true but `info --gpu` failed: {}",
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    } else {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "SKIPPED info --gpu: no adapter");
    }
    Ok(())
}

/// `--device gpu` generates on the GPU (lavapipe in CI) deterministically, and an adapter that
/// does not exist is a user error naming the device, with no output file.
#[test]
fn generate_on_the_gpu() -> TestResult {
    let dir = tempfile::tempdir()?;
    let model = tiny_model(dir.path())?;
    let out = dir.path().join("none.png");
    let o = Command::new(env!("CARGO_BIN_EXE_arvis"))
        .args([
            "generate",
            "--model",
            s(&model),
            "--device",
            "gpu",
            "--out",
            s(&out),
        ])
        .env("ARVIS_WGPU_ADAPTER", "no-such-adapter-xyz")
        .output()?;
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("gpu") && stderr.contains("no-such-adapter-xyz"),
        "{stderr}"
    );
    assert!(!out.exists());

    if !arvis_core::gpu::ready_for_tests(arvis_core::Device::Gpu)? {
        return Ok(());
    }
    let (a, b) = generate_twice(dir.path(), &model, "gpu")?;
    let img = decode_png(&std::fs::read(&a)?)?;
    assert_eq!((img.width(), img.height()), (16, 8));
    assert_eq!(
        std::fs::read(&a)?,
        std::fs::read(&b)?,
        "same seed, same image on the GPU"
    );
    Ok(())
}
