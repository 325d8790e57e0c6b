//! `Pipeline` on LlamaGen files: a seeded random file (GPT + VQ) loads by its family, uses
//! LlamaGen's default sampling and generates deterministic images in `[0, 1]`.

use arvis::core::{Device, Weights};
use arvis::models::llamagen::random::random_weights_bytes;
use arvis::models::llamagen::{LlamaGenConfig, LlamaGenVqConfig};
use arvis::{Pipeline, Sampling, Stage};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn tiny_file(vocab: usize, codebook: usize) -> Result<Weights, Box<dyn std::error::Error>> {
    let gpt = LlamaGenConfig {
        dim: 64,
        n_layer: 1,
        n_head: 2,
        vocab_size: vocab,
        block_size: 16,
        num_classes: 10,
        ..LlamaGenConfig::gpt_b()
    };
    let vq = LlamaGenVqConfig {
        ch: 8,
        norm_groups: 4,
        codebook_size: codebook,
        encoder_ch_mult: vec![1, 2],
        decoder_ch_mult: vec![1, 2],
        z_channels: 16,
        ..LlamaGenVqConfig::vq16()
    };
    let bytes = random_weights_bytes(&gpt, Some(&vq), 4)?;
    Ok(Weights::from_bytes("llamagen_tiny.safetensors", bytes)?)
}

#[test]
fn llamagen_file_generates_images() -> TestResult {
    let p = Pipeline::from_weights(&tiny_file(32, 32)?, Device::Cpu)?;
    assert_eq!(p.family(), "llamagen");
    assert_eq!(p.default_sampling(), Sampling::LLAMAGEN);
    assert_eq!(p.num_classes(), 10);
    let mut req = p.request(vec![1, 4], 3);
    req.top_k = 8;
    let mut steps = Vec::new();
    let img = p.generate(&req, &mut |s| steps.push((s.done, s.total, s.stage)))?;
    assert_eq!(img.shape(), &[2, 3, 8, 8]);
    // One step per row of the token grid, then the decode.
    let n = p.num_steps();
    assert!(n > 2, "{n}");
    let want: Vec<_> = (1..=n)
        .map(|d| (d, n, if d < n { Stage::Tokens } else { Stage::Decode }))
        .collect();
    assert_eq!(steps, want);
    assert!(img.to_vec().iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(img.to_vec(), p.generate(&req, &mut |_| {})?.to_vec());
    Ok(())
}

#[test]
fn llamagen_vocabulary_must_match_the_codebook() -> TestResult {
    let err = Pipeline::from_weights(&tiny_file(32, 48)?, Device::Cpu)
        .err()
        .ok_or("a mismatched file loaded")?;
    assert!(err.to_string().contains("codebook"), "{err}");
    Ok(())
}
