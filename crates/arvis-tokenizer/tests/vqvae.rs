//! The assembled VQ-VAE: key map of the released checkpoint, loading, config handling, the
//! encode/decode round trip and the input checks.

mod common;

use std::collections::HashMap;

use arvis_core::{Tensor, Tolerance};
use arvis_tokenizer::{TokenizerError, VqVae, VqVaeConfig};
use common::*;

/// The "vae" object of the contract's `arvis.config`.
const RELEASE_JSON: &str = r#"{"vocab_size": 4096, "z_channels": 32, "ch": 160,
    "ch_mult": [1,1,2,2,4], "num_res_blocks": 2, "using_sa": true, "using_mid_sa": true,
    "quant_conv_ks": 3, "quant_resi": 0.5, "share_quant_resi": 4, "test_mode": true,
    "patch_nums": [1,2,3,4,5,6,8,10,13,16], "in_channels": 3}"#;

/// A tiny config with the real structure (5 levels, attention, 10 scales, 4 shared Phis).
fn tiny() -> VqVaeConfig {
    VqVaeConfig {
        vocab_size: 64,
        z_channels: 8,
        ch: 32,
        ..VqVaeConfig::default()
    }
}

/// A smaller one (downsample 2, 4 scales, latent 4×4, images 8×8) for fast checks.
fn micro() -> VqVaeConfig {
    VqVaeConfig {
        vocab_size: 16,
        z_channels: 4,
        ch: 8,
        ch_mult: vec![1, 2],
        num_res_blocks: 1,
        patch_nums: vec![1, 2, 3, 4],
        norm_groups: 4,
        ..VqVaeConfig::default()
    }
}

#[test]
fn release_config_parses_and_has_the_checkpoint_key_map() -> TestResult {
    let cfg = VqVaeConfig::from_json(RELEASE_JSON)?;
    assert_eq!(cfg, VqVaeConfig::default());
    assert_eq!((cfg.downsample(), cfg.image_size()), (16, 256));
    let shapes = VqVae::tensor_shapes(&cfg)?;
    // 324 checkpoint keys minus the `quantize.ema_vocab_hit_SV` buffer.
    assert_eq!(shapes.len(), 323);
    let params: usize = shapes
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    assert!(
        (108_850_000..108_950_000).contains(&params),
        "{params} parameters (expected 108.9M)"
    );
    let map: HashMap<_, _> = shapes.into_iter().collect();
    let shape = |k: &str| map.get(k).cloned().ok_or(format!("missing {k}"));
    let mut nin: Vec<&String> = map
        .keys()
        .filter(|k| k.contains("nin_shortcut.weight"))
        .collect();
    nin.sort();
    assert_eq!(
        nin,
        [
            "decoder.up.1.block.0.nin_shortcut.weight",
            "decoder.up.3.block.0.nin_shortcut.weight",
            "encoder.down.2.block.0.nin_shortcut.weight",
            "encoder.down.4.block.0.nin_shortcut.weight",
        ]
    );
    assert_eq!(
        shape("encoder.down.2.block.0.nin_shortcut.weight")?,
        [320, 160, 1, 1]
    );
    assert_eq!(
        shape("decoder.up.1.block.0.nin_shortcut.weight")?,
        [160, 320, 1, 1]
    );
    assert_eq!(
        shape("encoder.down.4.attn.1.qkv.weight")?,
        [1920, 640, 1, 1]
    );
    assert_eq!(
        shape("decoder.up.4.attn.2.proj_out.weight")?,
        [640, 640, 1, 1]
    );
    assert_eq!(
        shape("decoder.up.0.block.2.conv2.weight")?,
        [160, 160, 3, 3]
    );
    assert_eq!(
        shape("decoder.up.1.upsample.conv.weight")?,
        [160, 160, 3, 3]
    );
    assert_eq!(
        shape("encoder.down.3.downsample.conv.weight")?,
        [320, 320, 3, 3]
    );
    assert_eq!(shape("quant_conv.weight")?, [32, 32, 3, 3]);
    assert_eq!(shape("post_quant_conv.weight")?, [32, 32, 3, 3]);
    assert_eq!(shape("quantize.embedding.weight")?, [4096, 32]);
    assert_eq!(
        shape("quantize.quant_resi.qresi_ls.3.weight")?,
        [32, 32, 3, 3]
    );
    assert_eq!(shape("decoder.conv_out.weight")?, [3, 160, 3, 3]);
    assert!(!map.contains_key("decoder.up.0.upsample.conv.weight"));
    assert!(!map.contains_key("encoder.down.4.downsample.conv.weight"));
    assert!(!map.contains_key("decoder.up.3.attn.0.qkv.weight"));
    // Decoder + quantiser: 64.8M of the parameters (models.md §2.4).
    let dec: usize = map
        .iter()
        .filter(|(k, _)| k.starts_with("decoder.") || k.starts_with("quantize."))
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    assert!((64_750_000..64_850_000).contains(&dec), "{dec}");
    Ok(())
}

#[test]
fn phi_sharing_variants_use_the_official_keys() -> TestResult {
    let keys = |cfg: &VqVaeConfig| -> Result<Vec<String>, TokenizerError> {
        Ok(VqVae::tensor_shapes(cfg)?
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("quantize.quant_resi"))
            .collect())
    };
    let non_shared = keys(&VqVaeConfig {
        share_quant_resi: 0,
        ..micro()
    })?;
    assert_eq!(non_shared.len(), 8);
    assert!(non_shared.contains(&"quantize.quant_resi.3.bias".to_string()));
    let shared = keys(&VqVaeConfig {
        share_quant_resi: 1,
        ..micro()
    })?;
    assert_eq!(
        shared,
        [
            "quantize.quant_resi.qresi.weight",
            "quantize.quant_resi.qresi.bias"
        ]
    );
    let identity = keys(&VqVaeConfig {
        quant_resi: 0.0,
        ..micro()
    })?;
    assert!(identity.is_empty());
    let counts = keys(&VqVaeConfig {
        share_quant_resi: 0,
        default_qresi_counts: 3,
        ..micro()
    })?;
    assert_eq!(counts.len(), 6);
    Ok(())
}

#[test]
fn invalid_configs_are_rejected_with_the_field() {
    let bad = |cfg: VqVaeConfig, needle: &str| {
        let msg = VqVae::random(&cfg, 0)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains(needle), "{needle}: {msg}");
    };
    bad(VqVaeConfig { ch: 16, ..tiny() }, "norm_groups");
    bad(
        VqVaeConfig {
            quant_conv_ks: 2,
            ..tiny()
        },
        "quant_conv_ks",
    );
    bad(
        VqVaeConfig {
            patch_nums: vec![],
            ..tiny()
        },
        "patch_nums",
    );
    bad(
        VqVaeConfig {
            patch_nums: vec![4, 2],
            ..tiny()
        },
        "patch_nums",
    );
    bad(
        VqVaeConfig {
            ch_mult: vec![],
            ..tiny()
        },
        "ch_mult",
    );
    let json = VqVaeConfig::from_json(r#"{"vocab_size": 4}"#)
        .err()
        .map(|e| e.to_string());
    assert!(json.unwrap_or_default().contains("missing field"));
}

/// Random weights written to a safetensors file (as a converter would) and loaded back.
fn random_file(
    cfg: &VqVaeConfig,
    seed: u64,
) -> Result<arvis_core::Weights, Box<dyn std::error::Error>> {
    let mut ts = Vec::new();
    for (i, (name, shape)) in VqVae::tensor_shapes(cfg)?.into_iter().enumerate() {
        let t = randn(&shape, seed + i as u64);
        let fan_in: usize = shape.iter().skip(1).product();
        let t = if name.contains("norm") && name.ends_with("weight") {
            t.affine(0.2, 1.0)
        } else if shape.len() == 4 {
            t.scale(1.0 / (fan_in as f32).sqrt())
        } else if name.ends_with("bias") {
            t.scale(0.05)
        } else {
            t.scale(0.5)
        }?;
        ts.push((format!("vae.{name}"), t));
    }
    let json = serde_json::json!({ "vae": cfg }).to_string();
    let meta = HashMap::from([("arvis.config".to_string(), json)]);
    weights_from(&ts, Some(meta))
}

#[test]
fn load_from_file_and_round_trip() -> TestResult {
    let cfg = micro();
    let w = random_file(&cfg, 5)?;
    assert_eq!(VqVaeConfig::from_weights(&w)?, cfg);
    let vae = VqVae::load(&w.scope("vae"), &cfg)?;
    let img = randn(&[2, 3, 8, 8], 6).clamp(-1.0, 1.0)?;
    let (idx, f_hat) = vae.encode(&img)?;
    assert_eq!(idx.iter().map(Vec::len).collect::<Vec<_>>(), [2, 8, 18, 32]);
    assert!(idx.iter().flatten().all(|&i| i < 16));
    // Decoding the codes gives the encoder's f_hat back; the image is clamped.
    let again = vae.indices_to_fhat(&idx, 2)?;
    Tolerance::ELEMENTWISE.check(&again.to_vec(), &f_hat.to_vec())?;
    let rec = vae.fhat_to_img(&f_hat)?;
    assert_eq!(rec.shape(), &[2, 3, 8, 8]);
    assert!(rec.to_vec().iter().all(|v| (-1.0..=1.0).contains(v)));
    // Encoding is per image: the batch of two equals the two singletons.
    let one = vae.img_to_indices(&img.narrow(0, 1, 1)?)?;
    for (si, codes) in one.iter().enumerate() {
        let pn = cfg.patch_nums[si];
        assert_eq!(codes[..], idx[si][pn * pn..], "scale {si}");
    }
    Ok(())
}

#[test]
fn wrong_checkpoint_names_the_tensor() -> TestResult {
    let w = random_file(&micro(), 1)?;
    let other = VqVaeConfig {
        z_channels: 8,
        ..micro()
    };
    let msg = VqVae::load(&w.scope("vae"), &other)
        .err()
        .ok_or("expected error")?
        .to_string();
    assert!(msg.contains("vae.encoder.conv_out.weight"), "{msg}");
    let msg = VqVae::load(&w.scope("model"), &micro())
        .err()
        .ok_or("expected error")?
        .to_string();
    assert!(
        msg.contains("missing tensor `model.encoder.conv_in.weight`"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn image_checks_have_context() -> TestResult {
    let vae = VqVae::random(&micro(), 3)?;
    let msg = |t: Tensor| {
        vae.img_to_indices(&t)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(msg(Tensor::zeros(&[1, 4, 8, 8])).contains("[B, 3, H, W]"));
    assert!(msg(Tensor::zeros(&[1, 3, 7, 8])).contains("divisible by the downsample factor 2"));
    assert!(msg(Tensor::zeros(&[1, 3, 16, 16])).contains("H = W = 8"));
    let fhat_msg = vae
        .fhat_to_img(&Tensor::zeros(&[1, 3, 4, 4]))
        .err()
        .map(|e| e.to_string());
    assert!(fhat_msg.unwrap_or_default().contains("f_hat [B, 4, h, w]"));
    let idx: Vec<Vec<u32>> = vec![vec![0], vec![0; 4], vec![0; 9], vec![99; 16]];
    let err = vae.indices_to_fhat(&idx, 1).err().ok_or("expected error")?;
    assert!(matches!(
        err,
        TokenizerError::IndexOutOfRange {
            index: 99,
            pn: 4,
            ..
        }
    ));
    Ok(())
}

#[test]
fn random_model_is_seeded_and_decodes_real_structure() -> TestResult {
    let cfg = tiny();
    let (a, b) = (VqVae::random(&cfg, 7)?, VqVae::random(&cfg, 7)?);
    let idx: Vec<Vec<u32>> = cfg
        .patch_nums
        .iter()
        .map(|&pn| (0..pn * pn).map(|i| (i % 64) as u32).collect())
        .collect();
    let fa = a.indices_to_fhat(&idx, 1)?;
    assert_eq!(fa.shape(), &[1, 8, 16, 16]);
    assert_eq!(fa.to_vec(), b.indices_to_fhat(&idx, 1)?.to_vec());
    let img = a.fhat_to_img(&fa)?;
    assert_eq!(img.shape(), &[1, 3, 256, 256]);
    let c = VqVae::random(&cfg, 8)?;
    assert_ne!(fa.to_vec(), c.indices_to_fhat(&idx, 1)?.to_vec());
    Ok(())
}
