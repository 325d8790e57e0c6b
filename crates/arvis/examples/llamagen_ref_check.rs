//! Checks a LlamaGen file trained by `xtask/py/train_llamagen_mnist.py` against the reference
//! data the script wrote beside it (`ref.safetensors` in its `--work-dir`):
//!
//! ```text
//! cargo run -p arvis --example llamagen_ref_check -- MODEL.safetensors REF.safetensors
//! ```
//!
//! The model is loaded through [`Pipeline::load`] (the code path of official LlamaGen files),
//! then, on the reference test images: the VQ latent and codes (`LlamaGenVq::img_to_latent`,
//! `encode`), the quantised latent and the unclamped decode, and the GPT's teacher-forced logits
//! (`LlamaGen::forward_teacher`) are compared with what PyTorch computed from the same
//! f16-rounded weights. Exits non-zero on a mismatch.

use std::process::ExitCode;

use arvis::core::{Device, Tensor, Tolerance, Weights};
use arvis::{Model, Pipeline};

fn get(refs: &Weights, name: &str) -> Result<Tensor, Box<dyn std::error::Error>> {
    Ok(refs.get_any(name)?)
}

fn report(what: &str, actual: &Tensor, expected: &Tensor, tol: Tolerance) -> bool {
    let (a, e) = (actual.to_vec(), expected.to_vec());
    let max = a
        .iter()
        .zip(&e)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    let shapes_ok = actual.shape() == expected.shape();
    match tol.check(&a, &e) {
        Ok(()) if shapes_ok => {
            println!("ok   {what}: {:?}, max |diff| {max:.2e}", actual.shape());
            true
        }
        Ok(()) => {
            println!(
                "FAIL {what}: shape {:?} != {:?}",
                actual.shape(),
                expected.shape()
            );
            false
        }
        Err(m) => {
            println!("FAIL {what}: {m}");
            false
        }
    }
}

fn run(model_path: &str, ref_path: &str) -> Result<bool, Box<dyn std::error::Error>> {
    let pipe = Pipeline::load(model_path, Device::Cpu)?;
    let Model::LlamaGen(m) = pipe.model() else {
        return Err(format!("{model_path}: family {} is not llamagen", pipe.family()).into());
    };
    let refs = Weights::open(ref_path)?;
    let img = get(&refs, "img")?;
    let b = img.shape()[0];
    let g = m.gpt.config().grid();
    let mut ok = true;

    // Tokenizer: the latent, the codes (exact), the quantised latent and the decode.
    let latent = m.vq.img_to_latent(&img)?;
    ok &= report(
        "vq latent",
        &latent,
        &get(&refs, "latent")?,
        Tolerance::MATMUL,
    );
    let codes = m.vq.encode(&img)?;
    let want: Vec<u32> = get(&refs, "idx")?
        .to_vec()
        .iter()
        .map(|&v| v as u32)
        .collect();
    let same = codes.iter().zip(&want).filter(|(a, b)| a == b).count();
    println!(
        "{}  vq codes: {same}/{} equal",
        if same == want.len() { "ok " } else { "FAIL" },
        want.len()
    );
    ok &= same == want.len() && codes.len() == want.len();
    let quant = m.vq.indices_to_latent(&want, b, g, g)?;
    ok &= report(
        "vq quant",
        &quant,
        &get(&refs, "quant")?,
        Tolerance::ELEMENTWISE,
    );
    let rec = m.vq.decode_indices(&want, b, g, g)?;
    ok &= report(
        "vq decode",
        &rec,
        &get(&refs, "rec")?,
        Tolerance::new(1e-3, 1e-3),
    );

    // GPT: teacher-forced logits of the reference codes under their true labels.
    let labels: Vec<u32> = get(&refs, "labels")?
        .to_vec()
        .iter()
        .map(|&v| v as u32)
        .collect();
    let rows: Vec<Vec<u32>> = want.chunks(g * g).map(<[u32]>::to_vec).collect();
    let logits = m.gpt.forward_teacher(&labels, &rows)?;
    ok &= report(
        "gpt teacher-forced logits (|diff| <= 1e-3)",
        &logits,
        &get(&refs, "teacher_logits")?,
        Tolerance::new(0.0, 1e-3),
    );
    Ok(ok)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, refs] = args.as_slice() else {
        eprintln!("usage: llamagen_ref_check MODEL.safetensors REF.safetensors");
        return ExitCode::from(2);
    };
    match run(model, refs) {
        Ok(true) => {
            println!("all checks passed");
            ExitCode::SUCCESS
        }
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
