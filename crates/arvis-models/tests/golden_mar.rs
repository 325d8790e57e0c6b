//! Golden test against the official LTH14/mar code (random tiny weights), made by
//! `xtask/py/golden_mar.py`: replaying the reference's generation orders and every noise draw
//! of its diffusion head through [`Mar::replay`] must reproduce, at every AR iteration, the
//! head's conditions `z`, the guidance scale, the head's raw output `[ε | v]` at its first step,
//! the sampled tokens, and at the end the latents and the decoded image. Two fixtures:
//! `mar_tiny` (patch_size 1, as every release) and `mar_tiny_p2` (patch_size 2: 3×3 tokens of
//! 16·2² channels, whose recorded final tokens also pin `patchify`/`unpatchify` exactly).
//!
//! Every check runs on the CPU and on the GPU (the model, the head and the VAE loaded on the
//! device; the recorded draws uploaded as the loop uses them), with the same tolerances.
//!
//! Tolerances:
//! - `z` and the head output: `|Δ| ≤ 1e-5 + 1e-4·|ref|` (`Tolerance::new(1e-4, 1e-5)`);
//! - tokens, latents and image: `|Δ| ≤ 1e-3 + 1e-3·|ref|` (`Tolerance::new(1e-3, 1e-3)`): 1e-3
//!   relative, with a 1e-3 floor near zero. The head's chain amplifies f32 rounding a few
//!   hundred times, and the free runs compound it over every iteration and the VAE decode; the
//!   GPU's reduction order put the patch_size-2 image at 1.06e-3 absolute on a value of 1.07
//!   (1.0e-3 relative), the CPU's at 5.8e-4. A layout or order error is O(1)
//!   (`a_perturbed_order_is_detected`).

mod common;

use arvis_core::{Device, SeededRng, Tensor, Tolerance, Weights};
use arvis_heads::RecordedNoise;
use arvis_models::mar::{CfgSchedule, HeadSteps, KlVae, KlVaeConfig, Mar, MarRequest};
use common::{Errs, TestResult, as_indices, check, open_golden};

const FILE: &str = "mar_tiny.safetensors";
const FILE_P2: &str = "mar_tiny_p2.safetensors";
const Z_TOL: Tolerance = Tolerance::new(1e-4, 1e-5);
const TOKEN_TOL: Tolerance = Tolerance::new(1e-3, 1e-3);

/// The request of fixture run `name` from the `arvis.golden` metadata.
fn request(w: &Weights, name: &str) -> TestResult<MarRequest> {
    let all = w.metadata_json("arvis.golden")?;
    let g = &all[name];
    let labels = match g["labels"].as_array() {
        Some(a) => a.iter().map(|v| v.as_u64().map(|l| l as u32)).collect(),
        None => vec![None; 2],
    };
    let schedule = match g["cfg_schedule"].as_str() {
        Some("linear") => CfgSchedule::Linear,
        Some("constant") => CfgSchedule::Constant,
        s => return Err(format!("{name}: cfg_schedule {s:?}").into()),
    };
    let num = |k: &str| g[k].as_f64().ok_or_else(|| format!("{name}: no {k}"));
    Ok(MarRequest {
        labels,
        num_iter: num("num_iter")? as usize,
        cfg: num("cfg")? as f32,
        cfg_schedule: schedule,
        temperature: num("temperature")? as f32,
        head_steps: HeadSteps::Fixed(num("head_steps")? as usize),
        seed: 0,
    })
}

struct RunErrs {
    z: Errs,
    head: Errs,
    tokens: Errs,
    image: Errs,
}

/// Replays run `name`; with `teacher`, the reference's tokens are fed back at every iteration
/// (per-iteration checks of z, head and tokens), else the run is free (latents and image).
fn replay_run(
    mar: &Mar,
    vae: &KlVae,
    w: &Weights,
    name: &str,
    teacher: bool,
) -> TestResult<RunErrs> {
    let req = request(w, name)?;
    let pre = format!("golden.{name}");
    let s = mar.config().seq_len();
    let flat = as_indices(&w.get_any(&format!("{pre}.orders"))?)?;
    let orders: Vec<Vec<usize>> = flat
        .chunks(s)
        .map(|c| c.iter().map(|&p| p as usize).collect())
        .collect();
    let iters: Vec<usize> = (0..req.num_iter)
        .filter(|k| w.contains(&format!("{pre}.it{k}.z")))
        .collect();
    let noise = iters
        .iter()
        .map(|k| {
            RecordedNoise::from_stacked(
                w.get_any(&format!("{pre}.it{k}.init"))?,
                &w.get_any(&format!("{pre}.it{k}.noise"))?,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let forced = if teacher {
        Some(
            iters
                .iter()
                .map(|k| w.get_any(&format!("{pre}.it{k}.tokens")))
                .collect::<Result<Vec<_>, _>>()?,
        )
    } else {
        None
    };
    let run = mar.replay(&req, orders, noise, forced)?;
    let done: Vec<_> = run.iterations.iter().filter(|it| it.z.is_some()).collect();
    assert_eq!(
        done.len(),
        iters.len(),
        "{name}: iterations with predictions"
    );
    let mut e = RunErrs {
        z: Errs::default(),
        head: Errs::default(),
        tokens: Errs::default(),
        image: Errs::default(),
    };
    if !teacher {
        let latents_ref = w.get_any(&format!("{pre}.latents"))?;
        e.tokens = check(
            &format!("{name} latents"),
            &run.latents,
            &latents_ref,
            TOKEN_TOL,
        )?;
        let image = vae.decode_tokens(&run.latents)?;
        e.image = check(
            &format!("{name} image"),
            &image,
            &w.get_any(&format!("{pre}.image"))?,
            TOKEN_TOL,
        )?;
        return Ok(e);
    }
    for (it, &k) in done.iter().zip(&iters) {
        let get = |key: &str| w.get_any(&format!("{pre}.it{k}.{key}"));
        let want_cfg = get("cfg")?.to_vec()[0];
        assert!(
            (it.cfg - want_cfg).abs() <= 1e-6 * want_cfg.abs(),
            "{name} iteration {k}: cfg {} vs {want_cfg}",
            it.cfg
        );
        let z = it.z.as_ref().ok_or("no z")?;
        e.z =
            e.z.merge(check(&format!("{name} it{k} z"), z, &get("z")?, Z_TOL)?);
        // The head's first call (t = 999, before guidance) on the reference's input and our z.
        let t0 = get("t0")?.to_vec()[0];
        let x0 = get("x0")?.to_device(mar.device())?;
        let out = mar.head().forward(&x0, &[t0], z)?;
        e.head = e.head.merge(check(
            &format!("{name} it{k} head [ε | v]"),
            &out,
            &get("out0")?,
            Z_TOL,
        )?);
        let tokens = it.tokens.as_ref().ok_or("no tokens")?;
        e.tokens = e.tokens.merge(check(
            &format!("{name} it{k} tokens"),
            tokens,
            &get("tokens")?,
            TOKEN_TOL,
        )?);
    }
    Ok(e)
}

fn line(what: &str, e: Errs) -> String {
    format!(
        "{what} max |Δ| {:.2e} (max |ref| {:.2})",
        e.max_abs, e.max_ref
    )
}

/// The runs recorded in a fixture (the keys of its `arvis.golden` metadata).
fn run_names(w: &Weights) -> TestResult<Vec<String>> {
    let all = w.metadata_json("arvis.golden")?;
    let names: Vec<String> = all
        .as_object()
        .ok_or("arvis.golden is not an object")?
        .keys()
        .cloned()
        .collect();
    if names.is_empty() {
        return Err("arvis.golden names no run".into());
    }
    Ok(names)
}

/// Replays every run of fixture `file` on `device`, teacher-forced then free, within the
/// tolerances above; on the GPU no op may fall back to the host.
fn check_fixture(file: &str, device: Device) -> TestResult {
    if !arvis_core::gpu::ready_for_tests(device)? {
        return Ok(());
    }
    let w = open_golden(file)?;
    let mar = Mar::load_on(&w, device)?;
    let vae = KlVae::load(&w.scope_on("vae", device), &KlVaeConfig::from_weights(&w)?)?;
    let p = mar.config().patch_size;
    for name in run_names(&w)? {
        let e = replay_run(&mar, &vae, &w, &name, true)?;
        eprintln!(
            "{} {file} (p {p}) {name}, teacher-forced: {}; {}; {}",
            device.name(),
            line("z", e.z),
            line("head", e.head),
            line("tokens", e.tokens),
        );
        let e = replay_run(&mar, &vae, &w, &name, false)?;
        eprintln!(
            "{} {file} (p {p}) {name}, free: {}; {}",
            device.name(),
            line("latents", e.tokens),
            line("image", e.image)
        );
    }
    if device == Device::Gpu {
        // The encoder/decoder, the head's chain, the token writes and the VAE all ran as WGSL
        // kernels.
        let fallbacks = arvis_core::gpu::GpuContext::shared()?.host_fallbacks();
        assert_eq!(fallbacks, 0, "ops that ran on the host");
    }
    Ok(())
}

/// Guidance (cfg 3, linear schedule, temperature 0.9) and no guidance (cfg 1,
/// `labels=None`: the `fake_latent` rows), patch_size 1.
#[test]
fn replay_matches_the_official_sample_tokens() -> TestResult {
    check_fixture(FILE, Device::Cpu)
}

/// The same replays with every tensor on the GPU (lavapipe in CI), same tolerances.
#[test]
fn replay_matches_the_official_sample_tokens_gpu() -> TestResult {
    check_fixture(FILE, Device::Gpu)
}

#[test]
fn replay_matches_the_official_sample_tokens_with_patch_size_2() -> TestResult {
    check_fixture(FILE_P2, Device::Cpu)
}

#[test]
fn replay_matches_the_official_sample_tokens_with_patch_size_2_gpu() -> TestResult {
    check_fixture(FILE_P2, Device::Gpu)
}

/// `unpatchify` of the tokens the official `sample_tokens` passed to its `unpatchify` gives
/// exactly its latents, and `patchify` maps them back (a pure permutation, so bit-exact; the
/// latents' values are all distinct, so any other permutation would fail).
#[test]
fn patchify_matches_the_official_layout() -> TestResult {
    let w = open_golden(FILE_P2)?;
    let mar = Mar::load_on(&w, Device::Cpu)?;
    let cfg = mar.config();
    assert_eq!(cfg.patch_size, 2, "{FILE_P2} is the patch_size-2 fixture");
    for name in run_names(&w)? {
        let tokens = w.get_any(&format!("golden.{name}.final_tokens"))?;
        let latents = w.get_any(&format!("golden.{name}.latents"))?;
        let mut vals = latents.to_vec();
        vals.sort_by(f32::total_cmp);
        assert!(
            vals.windows(2).all(|v| v[0] != v[1]),
            "{name}: repeated latent values would hide a layout error"
        );
        let got = cfg.unpatchify(&tokens)?;
        assert_eq!(got.shape(), latents.shape(), "{name}: unpatchify shape");
        assert!(
            got.to_vec() == latents.to_vec(),
            "{name}: unpatchify(final_tokens) differs from the official latents"
        );
        let back = cfg.patchify(&latents)?;
        assert_eq!(back.shape(), tokens.shape(), "{name}: patchify shape");
        assert!(
            back.to_vec() == tokens.to_vec(),
            "{name}: patchify(latents) differs from the official tokens"
        );
    }
    Ok(())
}

/// `patchify` and `unpatchify` are inverse permutations for both fixtures' configurations
/// (random values both ways), and reject tensors of the wrong shape.
#[test]
fn patchify_and_unpatchify_are_inverses() -> TestResult {
    let mut rng = SeededRng::new(11);
    for file in [FILE, FILE_P2] {
        let w = open_golden(file)?;
        let mar = Mar::load_on(&w, Device::Cpu)?;
        let cfg = mar.config();
        let (side, p, c) = (cfg.seq_side(), cfg.patch_size, cfg.vae_embed_dim);
        let latents = Tensor::randn(&[3, c, side * p, side * p], &mut rng);
        let round = cfg.unpatchify(&cfg.patchify(&latents)?)?;
        assert!(
            round.to_vec() == latents.to_vec(),
            "{file}: latents round trip"
        );
        let tokens = Tensor::randn(&[3, cfg.seq_len(), cfg.token_embed_dim()], &mut rng);
        let round = cfg.patchify(&cfg.unpatchify(&tokens)?)?;
        assert!(
            round.to_vec() == tokens.to_vec(),
            "{file}: tokens round trip"
        );
        assert!(
            cfg.patchify(&Tensor::zeros(&[1, c, side * p + 1, side * p]))
                .is_err()
        );
        assert!(
            cfg.unpatchify(&Tensor::zeros(&[
                1,
                cfg.seq_len(),
                cfg.token_embed_dim() + 1
            ]))
            .is_err()
        );
    }
    Ok(())
}

/// The replay checks itself: a wrong order (two positions swapped) changes the tokens beyond
/// the tolerance, so the comparison above can fail.
#[test]
fn a_perturbed_order_is_detected() -> TestResult {
    let w = open_golden(FILE)?;
    let mar = Mar::load_on(&w, Device::Cpu)?;
    let req = request(&w, "guided")?;
    let s = mar.config().seq_len();
    let flat = as_indices(&w.get_any("golden.guided.orders")?)?;
    let mut orders: Vec<Vec<usize>> = flat
        .chunks(s)
        .map(|c| c.iter().map(|&p| p as usize).collect())
        .collect();
    orders[0].swap(0, s - 1);
    let noise = (0..req.num_iter)
        .map(|k| {
            RecordedNoise::from_stacked(
                w.get_any(&format!("golden.guided.it{k}.init"))?,
                &w.get_any(&format!("golden.guided.it{k}.noise"))?,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let run = mar.replay(&req, orders, noise, None)?;
    let want = w.get_any("golden.guided.latents")?;
    assert!(
        TOKEN_TOL
            .check(&run.latents.to_vec(), &want.to_vec())
            .is_err(),
        "swapping two positions of an order left the latents within tolerance"
    );
    Ok(())
}
