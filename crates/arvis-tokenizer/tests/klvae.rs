//! MAR's KL-VAE: the official key map of KL-16 (counts and shapes read off the official
//! `AutoencoderKL(16, (1, 1, 2, 2, 4)).state_dict()`), attention placement by resolution,
//! the posterior against its closed form, config parsing, and the errors for bad inputs.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use arvis_core::{Tensor, Tolerance, Weights};
use arvis_tokenizer::kl::LOGVAR_RANGE;
use arvis_tokenizer::{KlVae, KlVaeConfig, MAR_LATENT_SCALE, Posterior, TokenizerError};
use common::{TestResult, randn, weights_from};

fn shapes(cfg: &KlVaeConfig) -> Result<HashMap<String, Vec<usize>>, TokenizerError> {
    Ok(KlVae::tensor_shapes(cfg)?.into_iter().collect())
}

/// A tiny config with the real structure (5 levels, attention at 16×16 of a 256² model).
fn tiny() -> KlVaeConfig {
    KlVaeConfig {
        ch: 8,
        norm_groups: 4,
        embed_dim: 4,
        ..KlVaeConfig::kl16()
    }
}

#[test]
fn kl16_has_the_official_key_map() -> TestResult {
    let cfg = KlVaeConfig::kl16();
    let s = shapes(&cfg)?;
    // 312 keys and 66,456,019 parameters (models.md §4.1; the official state_dict has no
    // buffers); the decoder with post_quant_conv has 38,189,203.
    assert_eq!(s.len(), 312);
    let count = |pred: &dyn Fn(&str) -> bool| -> usize {
        s.iter()
            .filter(|(n, _)| pred(n))
            .map(|(_, v)| v.iter().product::<usize>())
            .sum()
    };
    assert_eq!(count(&|_| true), 66_456_019);
    assert_eq!(
        count(&|n| n.starts_with("decoder.") || n.starts_with("post_quant_conv.")),
        38_189_203
    );
    let want: &[(&str, &[usize])] = &[
        ("quant_conv.weight", &[32, 32, 1, 1]),
        ("post_quant_conv.weight", &[16, 16, 1, 1]),
        ("encoder.conv_out.weight", &[32, 512, 3, 3]),
        ("decoder.conv_in.weight", &[512, 16, 3, 3]),
        (
            "decoder.up.3.block.0.nin_shortcut.weight",
            &[256, 512, 1, 1],
        ),
        (
            "decoder.up.1.block.0.nin_shortcut.weight",
            &[128, 256, 1, 1],
        ),
        ("decoder.up.0.block.2.conv2.weight", &[128, 128, 3, 3]),
        ("decoder.up.4.upsample.conv.weight", &[512, 512, 3, 3]),
        ("encoder.down.3.downsample.conv.weight", &[256, 256, 3, 3]),
        ("decoder.conv_out.weight", &[3, 128, 3, 3]),
        ("encoder.down.4.attn.1.v.weight", &[512, 512, 1, 1]),
    ];
    for (name, shape) in want {
        assert_eq!(s.get(*name).map(Vec::as_slice), Some(*shape), "{name}");
    }
    for absent in [
        "decoder.up.0.block.0.nin_shortcut.weight",
        "decoder.up.0.upsample.conv.weight",
        "encoder.down.4.downsample.conv.weight",
        "decoder.up.0.block.3.conv1.weight",
    ] {
        assert!(!s.contains_key(absent), "{absent}");
    }
    let attn: BTreeSet<String> = s
        .keys()
        .filter(|n| n.contains(".attn"))
        .filter_map(|n| n.strip_suffix(".q.weight").map(str::to_owned))
        .collect();
    let want_attn: BTreeSet<String> = [
        "decoder.mid.attn_1",
        "encoder.down.4.attn.0",
        "encoder.down.4.attn.1",
        "encoder.mid.attn_1",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(attn, want_attn);
    Ok(())
}

#[test]
fn attention_is_placed_by_resolution_like_the_official_loop() -> TestResult {
    // resolution 100: the encoder's levels work at 100, 50, 25, 12, 6; the decoder starts at
    // 100 // 16 = 6 and doubles: up.4 = 6, up.3 = 12, up.2 = 24, up.1 = 48, up.0 = 96.
    let cfg = KlVaeConfig {
        resolution: 100,
        encoder_attn_resolutions: vec![25, 6],
        decoder_attn_resolutions: vec![24, 25, 100],
        ..tiny()
    };
    let s = shapes(&cfg)?;
    let levels = |prefix: &str| -> BTreeSet<String> {
        s.keys()
            .filter(|n| n.starts_with(prefix) && n.contains(".attn.") && n.ends_with(".q.weight"))
            .map(|n| n[..n.find(".attn.").unwrap_or(0)].to_owned())
            .collect()
    };
    assert_eq!(
        levels("encoder.down"),
        BTreeSet::from(["encoder.down.2".to_owned(), "encoder.down.4".to_owned()])
    );
    assert_eq!(
        levels("decoder.up"),
        BTreeSet::from(["decoder.up.2".to_owned()])
    );
    // Three attention blocks after the decoder's three residual blocks of that level.
    assert!(s.contains_key("decoder.up.2.attn.2.proj_out.bias"));
    assert!(!s.contains_key("decoder.up.2.attn.3.proj_out.bias"));
    Ok(())
}

#[test]
fn config_json_defaults_to_kl16_and_rejects_bad_fields() -> TestResult {
    let cfg = KlVaeConfig::from_json(r#"{"embed_dim": 16, "ch_mult": [1, 1, 2, 2, 4]}"#)?;
    assert_eq!(cfg, KlVaeConfig::kl16());
    assert_eq!(cfg.latent_scale, 0.2325);
    assert_eq!(MAR_LATENT_SCALE, 0.2325);
    assert_eq!(cfg.downsample(), 16);
    // Round trip through JSON.
    let json = serde_json::to_string(&tiny())?;
    assert_eq!(KlVaeConfig::from_json(&json)?, tiny());

    let err = |c: KlVaeConfig| {
        c.validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(
        err(KlVaeConfig {
            norm_groups: 3,
            ..tiny()
        })
        .contains("norm_groups 3")
    );
    assert!(
        err(KlVaeConfig {
            ch_mult: vec![],
            ..tiny()
        })
        .contains("ch_mult")
    );
    assert!(
        err(KlVaeConfig {
            latent_scale: 0.0,
            ..tiny()
        })
        .contains("latent_scale")
    );
    assert!(
        err(KlVaeConfig {
            embed_dim: 0,
            ..tiny()
        })
        .contains("embed_dim")
    );
    let missing = KlVaeConfig::from_json(r#"{"embed_dim": 16}"#)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(missing.contains("missing field `ch_mult`"), "{missing}");

    // A file without a "vae" object says so.
    let meta = HashMap::from([("arvis.config".to_string(), r#"{"vq": {}}"#.to_string())]);
    let w = weights_from(&[], Some(meta))?;
    let msg = KlVaeConfig::from_weights(&w).err().map(|e| e.to_string());
    assert!(msg.unwrap_or_default().contains("no \"vae\" object"));
    Ok(())
}

#[test]
fn posterior_matches_the_closed_form() -> TestResult {
    let (b, e, h, w) = (2, 3, 2, 5);
    // Log-variances beyond both clamp bounds, and ordinary ones.
    let mut moments = randn(&[b, 2 * e, h, w], 11).scale(2.0)?.to_vec();
    moments[e * h * w] = -45.0; // b 0, first logvar channel
    moments[e * h * w + 1] = 33.0;
    let moments = Tensor::from_vec(moments, &[b, 2 * e, h, w])?;
    let noise = randn(&[b, e, h, w], 12);
    let p = Posterior::from_moments(&moments)?;

    let m = moments.to_vec();
    let n = noise.to_vec();
    let (mut want_mean, mut want_lv, mut want_std, mut want_sample) =
        (vec![], vec![], vec![], vec![]);
    for bi in 0..b {
        for i in 0..e * h * w {
            let mean = f64::from(m[bi * 2 * e * h * w + i]);
            let lv = f64::from(m[bi * 2 * e * h * w + e * h * w + i])
                .clamp(f64::from(LOGVAR_RANGE.0), f64::from(LOGVAR_RANGE.1));
            let std = (0.5 * lv).exp();
            want_mean.push(mean);
            want_lv.push(lv);
            want_std.push(std);
            want_sample.push(mean + std * f64::from(n[bi * e * h * w + i]));
        }
    }
    assert_eq!(want_lv[0], -30.0);
    assert_eq!(want_lv[1], 20.0);
    let tol = Tolerance::ELEMENTWISE;
    tol.check(&p.mean().to_vec(), &want_mean)?;
    tol.check(&p.mode().to_vec(), &want_mean)?;
    tol.check(&p.logvar().to_vec(), &want_lv)?;
    tol.check(&p.std()?.to_vec(), &want_std)?;
    tol.check(&p.sample(&noise)?.to_vec(), &want_sample)?;

    let msg = p
        .sample(&randn(&[b, e, h, w + 1], 1))
        .err()
        .map(|e| e.to_string());
    assert!(msg.unwrap_or_default().contains("Posterior::sample"));
    let odd = Posterior::from_moments(&Tensor::zeros(&[1, 3, 2, 2]));
    assert!(matches!(odd, Err(TokenizerError::Shape { .. })));
    Ok(())
}

#[test]
fn wrong_latent_and_image_shapes_are_clear_errors() -> TestResult {
    let vae = KlVae::random(&tiny(), 1)?;
    let decode = |t: Tensor| {
        vae.decode(&t)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    for bad in [vec![1, 8, 2, 2], vec![4, 2, 2], vec![1, 4, 0, 2]] {
        let msg = decode(Tensor::zeros(&bad));
        assert!(
            msg.contains("KlVae::decode: expected latent [B, 4, h, w]"),
            "{bad:?}: {msg}"
        );
        assert!(msg.contains(&format!("{bad:?}")), "{msg}");
    }
    let encode = |t: Tensor| {
        vae.encode(&t, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(encode(Tensor::zeros(&[1, 3, 24, 32])).contains("multiples of 16"));
    assert!(encode(Tensor::zeros(&[1, 4, 32, 32])).contains("image [B, 3, H, W]"));
    let img = randn(&[1, 3, 16, 16], 2);
    let noise = Tensor::zeros(&[1, 4, 2, 2]);
    let msg = vae.encode(&img, Some(&noise)).err().map(|e| e.to_string());
    assert!(
        msg.unwrap_or_default()
            .contains("noise of the posterior's shape [1, 4, 1, 1]")
    );
    Ok(())
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/klvae_tiny.safetensors")
}

#[test]
fn missing_or_mis_shaped_tensor_is_named() -> TestResult {
    let golden = Weights::open(golden_path())?;
    let cfg = KlVaeConfig::from_weights(&golden)?;
    let dropped = "vae.decoder.up.1.block.0.nin_shortcut.weight";
    let mut tensors = Vec::new();
    for name in golden.names() {
        if name.starts_with("vae.") && name != dropped {
            tensors.push((name.to_owned(), golden.get_any(name)?));
        }
    }
    let w = weights_from(&tensors, None)?;
    let msg = KlVae::load(&w.scope("vae"), &cfg)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.contains(&format!("missing tensor `{dropped}`")),
        "{msg}"
    );
    // The right file with another config: the first tensor whose shape differs is named.
    let other = KlVaeConfig {
        embed_dim: 8,
        ..cfg
    };
    let msg = KlVae::load(&golden.scope("vae"), &other)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("vae.encoder.conv_out.weight"), "{msg}");
    Ok(())
}

#[test]
fn random_model_is_seeded_and_per_image() -> TestResult {
    let cfg = tiny();
    let (a, b) = (KlVae::random(&cfg, 7)?, KlVae::random(&cfg, 7)?);
    let img = randn(&[2, 3, 32, 16], 3).clamp(-1.0, 1.0)?;
    let noise = randn(&[2, 4, 2, 1], 4);
    let z = a.encode(&img, Some(&noise))?;
    assert_eq!(z.shape(), &[2, 4, 2, 1]);
    assert_eq!(z.to_vec(), b.encode(&img, Some(&noise))?.to_vec());
    let tokens = a.encode_tokens(&img, Some(&noise))?;
    Tolerance::ELEMENTWISE.check(
        &tokens.to_vec(),
        &z.to_vec()
            .iter()
            .map(|&v| f64::from(v) * 0.2325)
            .collect::<Vec<_>>(),
    )?;
    let rec = a.decode(&z)?;
    assert_eq!(rec.shape(), &[2, 3, 32, 16]);
    Tolerance::ELEMENTWISE.check(&a.decode_tokens(&tokens)?.to_vec(), &common::f64s(&rec))?;
    // Decoding is per image: the second image of the batch alone gives the same pixels.
    let second = a.decode(&z.narrow(0, 1, 1)?)?;
    Tolerance::ELEMENTWISE.check(&second.to_vec(), &common::f64s(&rec.narrow(0, 1, 1)?))?;
    Ok(())
}
