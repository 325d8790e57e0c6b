//! Parity with the official MAR diffusion head and sampler (`models/diffloss.py`,
//! `diffusion/`), through `tests/golden/mar_head_tiny.safetensors` made by
//! `xtask/py/golden_mar_head.py` (see `tests/golden/README.md`).

use std::path::PathBuf;

use arvis_core::{Device, Tensor, Tolerance, Weights};
use arvis_heads::{
    DenoiseModel, DiffusionHead, DiffusionHeadConfig, DiffusionSampler, RecordedNoise,
    RespacedSchedule,
};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// ε / variance outputs: the bound (≤ 1e-4 relative), with an absolute floor for
/// outputs near zero.
const HEAD_TOL: Tolerance = Tolerance::new(1e-4, 1e-5);

fn open_golden() -> TestResult<Weights> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/mar_head_tiny.safetensors");
    if !path.is_file() {
        return Err(format!(
            "golden fixture {} is missing: make it with `/work/venv/bin/python \
             xtask/py/golden_mar_head.py --mar-repo <LTH14/mar checkout>`",
            path.display()
        )
        .into());
    }
    Ok(Weights::open(&path)?)
}

/// The random head of the forward goldens.
fn load_head(w: &Weights) -> TestResult<DiffusionHead> {
    Ok(DiffusionHead::load_inferred(&w.scope("diffloss.net"))?)
}

/// The head of the recorded chains: same shape, built so that its chains stay bounded like a
/// trained head's (see the fixture README).
fn load_chain_head(w: &Weights) -> TestResult<DiffusionHead> {
    Ok(DiffusionHead::load_inferred(
        &w.scope("stable.diffloss.net"),
    )?)
}

fn check(what: &str, got: &Tensor, want: &Tensor, tol: Tolerance) -> TestResult {
    if got.shape() != want.shape() {
        return Err(format!("{what}: shape {:?} vs {:?}", got.shape(), want.shape()).into());
    }
    tol.check(&got.to_vec(), &want.to_vec())
        .map_err(|m| format!("{what}: {m}"))?;
    Ok(())
}

/// The runs the script records: (name, DDIM?, steps, batch, cfg, temperature).
const RUNS: [(&str, bool, usize, usize, f32, f32); 4] = [
    ("ddpm100_cfg", false, 100, 4, 4.0, 1.0),
    ("ddpm100_plain", false, 100, 4, 1.0, 0.95),
    ("ddpm7_cfg", false, 7, 3, 2.5, 0.8),
    ("ddim20_cfg", true, 20, 3, 3.0, 1.0),
];

#[test]
fn config_is_read_off_the_official_keys() -> TestResult {
    let w = open_golden()?;
    let cfg = DiffusionHeadConfig::infer(&w.scope("diffloss.net"))?;
    let meta = w.metadata_json("arvis.config")?;
    let want = DiffusionHeadConfig {
        token_channels: meta["token_channels"].as_u64().ok_or("token_channels")? as usize,
        z_channels: meta["z_channels"].as_u64().ok_or("z_channels")? as usize,
        width: meta["width"].as_u64().ok_or("width")? as usize,
        depth: meta["depth"].as_u64().ok_or("depth")? as usize,
    };
    assert_eq!(cfg, want);
    // Every official key is consumed by the head, and the head asks for nothing else.
    let mut names: Vec<String> = w
        .scope("diffloss.net")
        .names()
        .into_iter()
        .map(String::from)
        .collect();
    names.sort();
    let mut ours: Vec<String> = cfg.tensor_shapes().into_iter().map(|(n, _)| n).collect();
    ours.sort();
    assert_eq!(names, ours);
    for (name, shape) in cfg.tensor_shapes() {
        assert_eq!(
            w.scope("diffloss.net").shape_of(&name)?,
            shape.as_slice(),
            "{name}"
        );
    }
    Ok(())
}

#[test]
fn respaced_schedules_match_the_reference() -> TestResult {
    let w = open_golden()?;
    for steps in [7usize, 20, 100] {
        let s = RespacedSchedule::cosine(steps)?;
        let pre = format!("golden.sched.{steps}");
        let map: Vec<f32> = s.timestep_map().iter().map(|&t| t as f32).collect();
        assert_eq!(
            map,
            w.get_any(&format!("{pre}.timestep_map"))?.to_vec(),
            "{steps}"
        );
        // Stored as f32: the f64 tables must round to the same values.
        let tol = Tolerance::new(1e-6, 0.0);
        tol.check(s.betas(), &w.get_any(&format!("{pre}.betas"))?.to_vec())
            .map_err(|m| format!("betas {steps}: {m}"))?;
        tol.check(
            s.posterior_log_variance_clipped(),
            &w.get_any(&format!("{pre}.posterior_log_variance_clipped"))?
                .to_vec(),
        )
        .map_err(|m| format!("log variance {steps}: {m}"))?;
    }
    Ok(())
}

#[test]
fn forward_and_forward_with_cfg_match() -> TestResult {
    let w = open_golden()?;
    let head = load_head(&w)?;
    let x = w.get_any("golden.fwd.x")?;
    let t = w.get_any("golden.fwd.t")?.to_vec();
    let z = w.get_any("golden.fwd.z")?;
    check(
        "forward",
        &head.forward(&x, &t, &z)?,
        &w.get_any("golden.fwd.out")?,
        HEAD_TOL,
    )?;
    check(
        "forward_with_cfg",
        &head.forward_with_cfg(&x, &t, &z, 3.0)?,
        &w.get_any("golden.cfg.out")?,
        HEAD_TOL,
    )
}

/// At every step of every recorded run, the head fed the reference's input gives the
/// reference's raw output (ε and the variance channels), through the conditioned path the
/// samplers use (one time-embedding row, `cond_embed` computed once).
#[test]
fn head_outputs_match_along_recorded_chains() -> TestResult {
    let w = open_golden()?;
    let head = load_chain_head(&w)?;
    for (name, _, steps, _, _, _) in RUNS {
        let pre = format!("golden.run.{name}");
        let model = head.condition(&w.get_any(&format!("{pre}.z"))?)?;
        let xs = w.get_any(&format!("{pre}.x"))?;
        let outs = w.get_any(&format!("{pre}.out"))?;
        let schedule = RespacedSchedule::cosine(steps)?;
        for i in 0..steps {
            let x = xs.narrow(0, i, 1)?.reshape(&xs.shape()[1..])?;
            let want = outs.narrow(0, i, 1)?.reshape(&outs.shape()[1..])?;
            let got = model.predict(&x, schedule.timestep_map()[i])?;
            check(&format!("{name} step {i}"), &got, &want, HEAD_TOL)?;
        }
    }
    Ok(())
}

/// Every step, replayed from the reference's `x_t` with its noise, gives the reference's
/// `x_{t−1}` (and step 0 its tokens).
///
/// The first step (from t = 999, where √(1/ᾱ) ≈ 2·10⁴) multiplies any difference in ε by ~350
/// (100 steps) to ~5000 (7 steps), so the few-step chains reach |x_t| ~ 100 (see the fixture
/// README). The bound is 1e-3 relative with an absolute floor of 1e-3 of the step output's RMS,
/// for the elements that cross zero.
#[test]
fn each_step_matches_from_recorded_states() -> TestResult {
    let w = open_golden()?;
    let head = load_chain_head(&w)?;
    for (name, ddim, steps, batch, cfg, temperature) in RUNS {
        let pre = format!("golden.run.{name}");
        let sampler = sampler(ddim, steps, temperature)?;
        let model = head.condition(&w.get_any(&format!("{pre}.z"))?)?;
        let mut noise = recorded_noise(&w, &pre)?;
        let xs = w.get_any(&format!("{pre}.x"))?;
        let state = |i: usize| -> TestResult<Tensor> {
            Ok(xs
                .narrow(0, i, 1)?
                .reshape(&xs.shape()[1..])?
                .narrow(0, 0, batch)?)
        };
        let guidance = (cfg != 1.0).then_some(cfg);
        for i in 0..steps {
            let got = sampler.step(&model, i, &state(i)?, guidance, &mut noise)?;
            let want = if i == 0 {
                w.get_any(&format!("{pre}.sample"))?
            } else {
                state(i - 1)?
            };
            check(
                &format!("{name} step {i}"),
                &got,
                &want,
                scaled(&want, 1e-3),
            )?;
        }
    }
    Ok(())
}

/// The whole chain, replaying the reference's noise, gives the reference's tokens (same bound
/// as the steps), with the head on `device`: the recorded noise stays on the host and
/// `DiffusionHead::sample` uploads each draw.
fn sampled_tokens_case(device: Device) -> TestResult {
    if !arvis_core::gpu::ready_for_tests(device)? {
        return Ok(());
    }
    let w = open_golden()?;
    let head = DiffusionHead::load_inferred(&w.scope_on("stable.diffloss.net", device))?;
    for (name, ddim, steps, batch, cfg, temperature) in RUNS {
        let pre = format!("golden.run.{name}");
        let sampler = sampler(ddim, steps, temperature)?;
        let mut noise = recorded_noise(&w, &pre)?;
        let guidance = (cfg != 1.0).then_some(cfg);
        let z = w.get_any(&format!("{pre}.z"))?.to_device(device)?;
        let got = head.sample(&z, guidance, &sampler, &mut noise)?;
        assert_eq!(got.shape(), [batch, 16]);
        assert_eq!(
            got.device(),
            device,
            "{name}: tokens left the head's device"
        );
        let want = w.get_any(&format!("{pre}.sample"))?;
        check(
            &format!("{name} on {}", device.name()),
            &got,
            &want,
            scaled(&want, 1e-3),
        )?;
    }
    if device == Device::Gpu {
        let fallbacks = arvis_core::gpu::GpuContext::shared()?.host_fallbacks();
        assert_eq!(fallbacks, 0, "ops that ran on the host");
    }
    Ok(())
}

#[test]
fn sampled_tokens_match_with_replayed_noise() -> TestResult {
    sampled_tokens_case(Device::Cpu)
}

#[test]
fn sampled_tokens_match_with_replayed_noise_gpu() -> TestResult {
    sampled_tokens_case(Device::Gpu)
}

fn sampler(ddim: bool, steps: usize, temperature: f32) -> TestResult<DiffusionSampler> {
    Ok(if ddim {
        DiffusionSampler::ddim(steps, 0.0)?
    } else {
        DiffusionSampler::ddpm(steps)?
    }
    .with_temperature(temperature))
}

fn recorded_noise(w: &Weights, pre: &str) -> TestResult<RecordedNoise> {
    Ok(RecordedNoise::from_stacked(
        w.get_any(&format!("{pre}.init"))?,
        &w.get_any(&format!("{pre}.noise"))?,
    )?)
}

/// `rel` relative, with an absolute floor of `rel` × the RMS of `want`.
fn scaled(want: &Tensor, rel: f64) -> Tolerance {
    let v = want.to_vec();
    let rms = (v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    Tolerance::new(rel, rel * rms)
}

/// Negative control: the replay is sensitive to what it checks (a wrong temperature, the
/// unguided path, or shifted noise each move the tokens far outside the tolerance).
#[test]
fn replay_detects_wrong_settings() -> TestResult {
    let w = open_golden()?;
    let head = load_chain_head(&w)?;
    let pre = "golden.run.ddpm100_cfg";
    let z = w.get_any(&format!("{pre}.z"))?;
    let want = w.get_any(&format!("{pre}.sample"))?;
    let init = w.get_any(&format!("{pre}.init"))?;
    let stacked = w.get_any(&format!("{pre}.noise"))?;
    let fails = |sampler: &DiffusionSampler,
                 guidance: Option<f32>,
                 noise: &mut RecordedNoise|
     -> TestResult<bool> {
        let got = head.sample(&z, guidance, sampler, noise)?;
        Ok(scaled(&want, 1e-3)
            .check(&got.to_vec(), &want.to_vec())
            .is_err())
    };
    let ddpm = DiffusionSampler::ddpm(100)?;
    let mut noise = RecordedNoise::from_stacked(init.clone(), &stacked)?;
    assert!(fails(
        &ddpm.clone().with_temperature(0.9),
        Some(4.0),
        &mut noise
    )?);
    let mut noise = RecordedNoise::from_stacked(init.clone(), &stacked)?;
    assert!(fails(&ddpm, Some(3.0), &mut noise)?);
    // Noise of step i used at step i − 1.
    let steps: Vec<Tensor> = (0..100)
        .map(|i| stacked.narrow(0, (i + 1) % 100, 1)?.reshape(&[4, 16]))
        .collect::<Result<_, _>>()?;
    let mut noise = RecordedNoise::new(init.clone(), steps);
    assert!(fails(&ddpm, Some(4.0), &mut noise)?);
    // And the correct settings pass (so the three failures above are not a broken harness).
    let mut noise = RecordedNoise::from_stacked(init, &stacked)?;
    assert!(!fails(&ddpm, Some(4.0), &mut noise)?);
    Ok(())
}

#[test]
fn loader_errors_name_the_tensor() -> TestResult {
    let w = open_golden()?;
    // MAR's checkpoint prefix is required: without it nothing is found.
    let err = DiffusionHead::load_inferred(&w.scope("net")).expect_err("wrong scope must fail");
    assert!(err.to_string().contains("net.input_proj.weight"), "{err}");
    let cfg = DiffusionHeadConfig::infer(&w.scope("diffloss.net"))?;
    // A wider head than the file holds: the first mismatching tensor is named with both shapes.
    let wide = DiffusionHeadConfig {
        width: cfg.width * 2,
        ..cfg
    };
    let err = DiffusionHead::load(&w.scope("diffloss.net"), &wide).expect_err("shape mismatch");
    assert!(
        err.to_string().contains("diffloss.net.") && err.to_string().contains("expected [128"),
        "{err}"
    );
    // Fewer blocks than the file holds is an error too (the file would be half used).
    let shallow = DiffusionHeadConfig {
        depth: cfg.depth - 1,
        ..cfg
    };
    let err = DiffusionHead::load(&w.scope("diffloss.net"), &shallow).expect_err("extra blocks");
    assert!(err.to_string().contains("residual blocks"), "{err}");
    // Bad inputs.
    let head = load_head(&w)?;
    let z = Tensor::zeros(&[3, cfg.z_channels]);
    let sampler = DiffusionSampler::ddpm(5)?;
    let mut rng = arvis_core::SeededRng::new(0);
    let err = head
        .sample(&z, Some(2.0), &sampler, &mut rng)
        .expect_err("odd rows");
    assert!(err.to_string().contains("[cond; uncond]"), "{err}");
    let err = head
        .sample(&Tensor::zeros(&[2, 5]), None, &sampler, &mut rng)
        .expect_err("wrong width");
    assert!(err.to_string().contains("[N, 24]"), "{err}");
    Ok(())
}
