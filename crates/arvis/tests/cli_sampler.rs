//! `arvis generate --sampler ...` end to end on tiny random LlamaGen files: every sampler
//! writes a deterministic PNG and prints its stats, `plain` is the default path, and wrong
//! combinations (no draft for `spec`, a draft for another sampler, a VAR model, a window of 1,
//! a temperature for VAR) exit with 2 and leave no file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arvis::models::llamagen::random::random_weights_bytes;
use arvis::models::llamagen::{LlamaGenConfig, LlamaGenVqConfig};
use arvis::models::var::random::{random_weights_bytes as var_bytes, tiny_configs};
use arvis::tokenizer::image::decode_png;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn gpt(n_layer: usize) -> LlamaGenConfig {
    LlamaGenConfig {
        dim: 64,
        n_layer,
        n_head: 2,
        vocab_size: 32,
        block_size: 16,
        num_classes: 10,
        ..LlamaGenConfig::gpt_b()
    }
}

/// A target file (GPT + VQ) and a draft file (a one-layer GPT, no VQ) in `dir`.
fn files(dir: &Path) -> TestResult<(PathBuf, PathBuf)> {
    let vq = LlamaGenVqConfig {
        ch: 8,
        norm_groups: 4,
        codebook_size: 32,
        encoder_ch_mult: vec![1, 2],
        decoder_ch_mult: vec![1, 2],
        z_channels: 16,
        ..LlamaGenVqConfig::vq16()
    };
    let (target, draft) = (
        dir.join("target.safetensors"),
        dir.join("draft.safetensors"),
    );
    std::fs::write(&target, random_weights_bytes(&gpt(2), Some(&vq), 4)?)?;
    std::fs::write(&draft, random_weights_bytes(&gpt(1), None, 5)?)?;
    Ok((target, draft))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn generate(model: &Path, out: &Path, extra: &[&str]) -> std::io::Result<Output> {
    let mut args = vec![
        "generate",
        "--model",
        s(model),
        "--class",
        "3",
        "--class",
        "7",
        "--seed",
        "5",
        "--out",
        s(out),
        "-q",
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_arvis"))
        .args(&args)
        .output()
}

/// `(target forwards, tokens per image)` from the stats line on stderr.
fn stats(stderr: &str) -> Option<(usize, usize)> {
    let line = stderr.lines().find(|l| l.starts_with("sampler "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = |w: &str| words.iter().position(|x| *x == w);
    let forwards = words.get(at("target")? - 1)?.parse().ok()?;
    let tokens = words.get(at("tokens")? - 1)?.parse().ok()?;
    Some((forwards, tokens))
}

#[test]
fn every_sampler_writes_a_deterministic_png_and_reports_stats() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (target, draft) = files(dir.path())?;
    let default = dir.path().join("default.png");
    let o = generate(&target, &default, &[])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plain = dir.path().join("plain.png");
    let o = generate(&target, &plain, &["--sampler", "plain"])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&plain)?, std::fs::read(&default)?);
    let runs: [&[&str]; 5] = [
        &["--sampler", "sjd"],
        &["--sampler", "sjd", "--window", "4"],
        &["--sampler", "gsd"],
        &["--sampler", "lantern"],
        &["--sampler", "spec", "--draft", s(&draft), "--window", "3"],
    ];
    for extra in runs {
        let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
        for out in [&a, &b] {
            let o = generate(&target, out, extra)?;
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{extra:?}: {err}");
            let (forwards, tokens) = stats(&err).ok_or(format!("{extra:?}: no stats in {err}"))?;
            // Prefill + at most one verification per token; 16 tokens per image.
            assert_eq!(tokens, 16, "{extra:?}: {err}");
            assert!((1..=16).contains(&forwards), "{extra:?}: {err}");
        }
        assert_eq!(std::fs::read(&a)?, std::fs::read(&b)?, "{extra:?}");
        let images = decode_png(&std::fs::read(&a)?)?;
        assert_eq!((images.width(), images.height()), (16, 8), "{extra:?}");
    }
    Ok(())
}

#[test]
fn wrong_sampler_requests_exit_2_and_write_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (target, draft) = files(dir.path())?;
    let var = dir.path().join("tiny_var.safetensors");
    let (vc, vae) = tiny_configs(&[1, 2, 4]);
    std::fs::write(&var, var_bytes(&vc, &vae, 1)?)?;
    let out = dir.path().join("out.png");
    let cases: [(&Path, &[&str], &str); 7] = [
        (&target, &["--sampler", "spec"], "--draft"),
        (&target, &["--sampler", "sjd", "--draft", s(&draft)], "spec"),
        (&target, &["--sampler", "sjd", "--window", "1"], "window"),
        (&target, &["--sampler", "jacobi"], "jacobi"),
        (&var, &["--sampler", "sjd"], "raster"),
        (&var, &["--sampler", "spec", "--draft", s(&draft)], "raster"),
        (&var, &["--temperature", "0.5"], "temperature"),
    ];
    for (model, extra, needle) in cases {
        let o = generate(model, &out, extra)?;
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!out.exists(), "{extra:?} left {}", out.display());
    }
    Ok(())
}
