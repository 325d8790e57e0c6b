//! DiSA's head steps at equal head-sample quality, on closed-form targets (issue 8).
//!
//! **Model of the AR iterations.** Each token channel's conditional distribution at AR
//! iteration `k` of `K` is `Mixture1d::two_mode_token()` (two modes, std 0.86 — about the scale
//! of MAR's latents) contracted about its mean by `λ_k = λ_late^{k/(K−1)}`: broad at the first
//! iteration, `λ_late` times narrower at the last. This is DiSA's premise (later tokens are more
//! constrained) made concrete; the profile is an assumption, not measured from MAR.
//!
//! **Quality.** The head is `ExactDenoiser` (the exact `E[ε | x_t]`, and the learned-range
//! variance a perfectly trained MAR head outputs), so the samples' only error is the sampler's.
//! Quality is the Wasserstein-1 distance, in token units, between the samples (`--samples`
//! i.i.d. channel values: rows × 16 channels) and the exact target, computed exactly for the
//! empirical distribution (`Mixture1d::wasserstein1`); its sampling floor (exact draws) is
//! printed beside it. "Needed steps" at an iteration is the smallest step count of a grid at
//! which W1 ≤ `--tau` there and at the next grid count (robust to the estimate's noise).
//!
//! **Time.** The head calls of MAR-B (`SimpleMLPAdaLN` w 1024, 6 blocks, seeded random
//! weights) for one MAR generation of `--batch` images in `K` iterations (MAR's cosine mask
//! schedule gives the tokens per iteration, CFG doubles the rows), through arvis's DDPM
//! sampler: a per-row-count model `a + b·steps` from medians of timed calls, summed over the
//! iterations for each schedule, and `--direct-runs` timed passes of all `K` real head calls for
//! DiSA linear (and MAR's constant schedule with `--direct-constant true`), their median.
//!
//! `disa_closed_form [--iters K] [--upper U] [--lower L] [--constant N] [--late-scale λ]
//! [--tau τ] [--samples N] [--every E] [--seed S] [--batch B] [--timing-reps R]
//! [--direct-runs R] [--direct-constant true]`; prints Markdown tables on stdout, progress on
//! stderr.

use std::collections::BTreeMap;
use std::time::Instant;

use arvis_benches::flag;
use arvis_core::{SeededRng, Tensor, Weights};
use arvis_heads::closed_form::{ExactDenoiser, Mixture1d};
use arvis_heads::{
    DiffusionHead, DiffusionHeadConfig, DiffusionSampler, StepAnnealing, StepSchedule,
};
use arvis_models::var::random::write_safetensors;
use rayon::prelude::*;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// MAR's token width.
const CHANNELS: usize = 16;
/// Step counts searched for the needed steps (1 is degenerate: respacing to one step keeps
/// only t = 0).
const STEP_GRID: [usize; 17] = [
    2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 32, 40, 50, 64, 80, 100,
];
/// MAR-B's sequence length (16 × 16 tokens).
const SEQ_LEN: usize = 256;
/// The guidance scale of the timed calls (its value does not change the work).
const CFG: f32 = 2.9;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Method {
    Ddpm,
    Ddim,
}

impl Method {
    fn sampler(self, steps: usize) -> Res<DiffusionSampler> {
        Ok(match self {
            Method::Ddpm => DiffusionSampler::ddpm(steps)?,
            Method::Ddim => DiffusionSampler::ddim(steps, 0.0)?,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Method::Ddpm => "DDPM (MAR's sampler, learned variance, temperature 1)",
            Method::Ddim => "DDIM (η = 0)",
        }
    }
}

/// A head-step schedule over the `K` iterations.
struct Schedule {
    name: String,
    steps: Vec<usize>,
}

struct Settings {
    iters: usize,
    late_scale: f64,
    tau: f64,
    rows: usize,
    seed: u64,
}

impl Settings {
    fn target(&self, k: usize) -> Res<Mixture1d> {
        let progress = k as f64 / (self.iters - 1).max(1) as f64;
        Ok(Mixture1d::two_mode_token().contracted(self.late_scale.powf(progress))?)
    }
}

/// W1 of the samples of one (iteration, method, steps), memoised.
struct Quality<'a> {
    settings: &'a Settings,
    k: usize,
    method: Method,
    target: Mixture1d,
    model: ExactDenoiser,
    memo: BTreeMap<usize, f64>,
}

impl Quality<'_> {
    fn w1(&mut self, steps: usize) -> Res<f64> {
        if let Some(&w) = self.memo.get(&steps) {
            return Ok(w);
        }
        let s = self.settings;
        // Independent noise for every evaluation.
        let stream = ((self.k as u64) << 32) | ((self.method as u64) << 16) | steps as u64;
        let mut rng = SeededRng::new(s.seed).fork(stream);
        let x =
            self.method
                .sampler(steps)?
                .sample(&self.model, s.rows, CHANNELS, None, &mut rng)?;
        let w = self.target.wasserstein1(&x.to_vec())?;
        self.memo.insert(steps, w);
        Ok(w)
    }

    /// The smallest grid count with W1 ≤ τ there and at the next grid count.
    fn needed(&mut self) -> Res<Option<usize>> {
        for (i, &n) in STEP_GRID.iter().enumerate() {
            if self.w1(n)? <= self.settings.tau {
                match STEP_GRID.get(i + 1) {
                    Some(&next) if self.w1(next)? > self.settings.tau => continue,
                    _ => return Ok(Some(n)),
                }
            }
        }
        Ok(None)
    }
}

/// What one representative iteration measured for one method.
struct Row {
    k: usize,
    method: Method,
    std: f64,
    floor: f64,
    needed: Option<usize>,
    /// W1 at each schedule's step count, in schedule order.
    at: Vec<f64>,
}

fn measure(settings: &Settings, schedules: &[Schedule], k: usize, method: Method) -> Res<Row> {
    let target = settings.target(k)?;
    let mut rng = SeededRng::new(settings.seed).fork(0xF100_0000 | k as u64);
    let floor = target.wasserstein1(&target.draw(settings.rows * CHANNELS, &mut rng))?;
    let mut q = Quality {
        settings,
        k,
        method,
        model: ExactDenoiser::new(target.clone()),
        target: target.clone(),
        memo: BTreeMap::new(),
    };
    let needed = q.needed()?;
    let at = schedules
        .iter()
        .map(|s| q.w1(s.steps[k]))
        .collect::<Res<Vec<_>>>()?;
    eprintln!(
        "k {k:2} {method:?}: std {:.4}, needed {needed:?}",
        target.std()
    );
    Ok(Row {
        k,
        method,
        std: target.std(),
        floor,
        needed,
        at,
    })
}

/// Tokens predicted at each of MAR's `iters` iterations (`MarRequest` generation: the mask
/// keeps `max(1, min(masked − 1, ⌊S·cos(π/2·(k+1)/K)⌋))` tokens; the last iteration predicts
/// every masked token).
fn mar_tokens_per_iteration(seq: usize, iters: usize) -> Vec<usize> {
    let mut masked = seq;
    (0..iters)
        .map(|k| {
            let ratio = (std::f64::consts::FRAC_PI_2 * (k + 1) as f64 / iters as f64).cos();
            let keep = ((seq as f64 * ratio).floor() as usize)
                .min(masked.saturating_sub(1))
                .max(1);
            let predicted = if k + 1 == iters {
                masked
            } else {
                masked - keep
            };
            masked -= predicted;
            predicted
        })
        .collect()
}

/// MAR-B's head with seeded N(0, 0.02²) weights (the values do not change the work).
fn mar_b_head() -> Res<DiffusionHead> {
    let cfg = DiffusionHeadConfig {
        token_channels: CHANNELS,
        z_channels: 768,
        width: 1024,
        depth: 6,
    };
    let bytes = write_safetensors(&cfg.tensor_shapes(), &BTreeMap::new(), |i, _, out| {
        let mut rng = SeededRng::new(i as u64);
        rng.fill_normal(out);
        out.iter_mut().for_each(|v| *v *= 0.02);
        Ok(())
    })?;
    let weights = Weights::from_bytes("mar_b_head", bytes)?;
    Ok(DiffusionHead::load(&weights.scope(""), &cfg)?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One MAR head call: `tokens` tokens with CFG (`2·tokens` condition rows) through DDPM.
fn head_call(head: &DiffusionHead, z: &Tensor, steps: usize, rng: &mut SeededRng) -> Res<f64> {
    let sampler = DiffusionSampler::ddpm(steps)?;
    let t0 = Instant::now();
    let x = head.sample(z, Some(CFG), &sampler, rng)?;
    let dt = t0.elapsed().as_secs_f64();
    if !x.to_vec().iter().all(|v| v.is_finite()) {
        return Err("non-finite head output".into());
    }
    Ok(dt)
}

struct Timing {
    /// Modelled seconds per schedule (`Σ_k a(r_k) + b(r_k)·T(k)`).
    modelled: Vec<f64>,
    /// Median of the direct passes, per schedule (`None`: not run directly).
    direct: Vec<Option<f64>>,
    /// Per-step time (`b`) at the smallest and largest row count, seconds.
    step_range: (f64, f64),
}

fn time_heads(
    schedules: &[Schedule],
    tokens: &[usize],
    batch: usize,
    reps: usize,
    direct_runs: usize,
    direct: &[bool],
) -> Res<Timing> {
    let head = mar_b_head()?;
    let mut rng = SeededRng::new(7);
    let cond = |n: usize, rng: &mut SeededRng| Tensor::randn(&[2 * batch * n, 768], rng);
    let mut fit: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
    let (lo, hi) = (2usize, 12usize);
    for &n in tokens {
        if n == 0 || fit.contains_key(&n) {
            continue;
        }
        let z = cond(n, &mut rng);
        head_call(&head, &z, lo, &mut rng)?; // warm-up
        let t_lo = median(
            (0..reps)
                .map(|_| head_call(&head, &z, lo, &mut rng))
                .collect::<Res<_>>()?,
        );
        let t_hi = median(
            (0..reps)
                .map(|_| head_call(&head, &z, hi, &mut rng))
                .collect::<Res<_>>()?,
        );
        let b = (t_hi - t_lo) / (hi - lo) as f64;
        fit.insert(n, (t_lo - lo as f64 * b, b));
        eprintln!(
            "head, {} rows: {:.2} ms/step + {:.2} ms/call",
            2 * batch * n,
            b * 1e3,
            (t_lo - lo as f64 * b) * 1e3
        );
    }
    let modelled = schedules
        .iter()
        .map(|s| {
            tokens
                .iter()
                .zip(&s.steps)
                .filter(|(n, _)| **n > 0)
                .map(|(n, &t)| {
                    let (a, b) = fit[n];
                    a + b * t as f64
                })
                .sum()
        })
        .collect();
    let conds: Vec<Option<Tensor>> = tokens
        .iter()
        .map(|&n| (n > 0).then(|| cond(n, &mut rng)))
        .collect();
    let mut measured = Vec::with_capacity(schedules.len());
    for (s, &run) in schedules.iter().zip(direct) {
        if !run || direct_runs == 0 {
            measured.push(None);
            continue;
        }
        let mut passes = Vec::with_capacity(direct_runs);
        for _ in 0..direct_runs {
            let mut total = 0.0;
            for (z, &t) in conds.iter().zip(&s.steps) {
                if let Some(z) = z {
                    total += head_call(&head, z, t, &mut rng)?;
                }
            }
            eprintln!("direct pass, {}: {total:.2} s", s.name);
            passes.push(total);
        }
        measured.push(Some(median(passes)));
    }
    let per_step: Vec<f64> = fit.values().map(|&(_, b)| b).collect();
    Ok(Timing {
        modelled,
        direct: measured,
        step_range: (
            per_step.iter().copied().fold(f64::INFINITY, f64::min),
            per_step.iter().copied().fold(0.0, f64::max),
        ),
    })
}

fn cell(w: f64, tau: f64) -> String {
    if w > tau {
        format!("**{w:.4}** ✗")
    } else {
        format!("{w:.4}")
    }
}

/// [`flag`], with an error that can cross the rayon workers' `Send` bound.
fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Res<T>
where
    T::Err: std::fmt::Display,
{
    flag(args, name, default).map_err(|e| e.to_string().into())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let iters: usize = arg(&args, "--iters", 64)?;
    let upper: usize = arg(&args, "--upper", 50)?;
    let lower: usize = arg(&args, "--lower", 5)?;
    let constant: usize = arg(&args, "--constant", 100)?;
    let late_scale: f64 = arg(&args, "--late-scale", 0.01)?;
    let tau: f64 = arg(&args, "--tau", 0.01)?;
    let samples: usize = arg(&args, "--samples", 65_536)?;
    let every: usize = arg(&args, "--every", 7)?;
    let seed: u64 = arg(&args, "--seed", 0)?;
    let batch: usize = arg(&args, "--batch", 1)?;
    let reps: usize = arg(&args, "--timing-reps", 5)?;
    let direct_runs: usize = arg(&args, "--direct-runs", 1)?;
    let direct_constant: bool = arg(&args, "--direct-constant", false)?;
    if iters < 2 || every == 0 || samples < CHANNELS || batch == 0 || reps == 0 {
        return Err("need --iters ≥ 2, --every ≥ 1, --samples ≥ 16, --batch ≥ 1".into());
    }
    let started = Instant::now();
    let settings = Settings {
        iters,
        late_scale,
        tau,
        rows: samples / CHANNELS,
        seed,
    };
    let mut schedules = vec![Schedule {
        name: format!("constant {constant} (MAR)"),
        steps: vec![constant; iters],
    }];
    for (shape, name) in [
        (StepSchedule::Linear, "linear"),
        (StepSchedule::Cosine, "cosine"),
        (StepSchedule::TwoStage, "two-stage"),
    ] {
        schedules.push(Schedule {
            name: format!("DiSA {name} {upper}→{lower}"),
            steps: StepAnnealing::new(shape, upper, lower)?.all_steps(iters)?,
        });
    }
    let mut reps_k: Vec<usize> = (0..iters).step_by(every).collect();
    if reps_k.last() != Some(&(iters - 1)) {
        reps_k.push(iters - 1);
    }
    let jobs: Vec<(usize, Method)> = [Method::Ddpm, Method::Ddim]
        .into_iter()
        .flat_map(|m| reps_k.iter().map(move |&k| (k, m)))
        .collect();
    let rows: Vec<Row> = jobs
        .par_iter()
        .map(|&(k, m)| measure(&settings, &schedules, k, m))
        .collect::<Res<_>>()?;
    let quality_s = started.elapsed().as_secs_f64();

    println!(
        "Target: `two_mode_token` (std {:.3}) contracted by λ_k = {late_scale}^(k/{}) at AR \
         iteration k of {iters}; quality = W1 to the exact target in token units, {} samples \
         ({} rows × {CHANNELS} channels) per cell; threshold τ = {tau}; ✗ marks W1 > τ. \
         Needed = smallest step count of {STEP_GRID:?} with W1 ≤ τ there and at the next count.\n",
        Mixture1d::two_mode_token().std(),
        iters - 1,
        settings.rows * CHANNELS,
        settings.rows,
    );
    for method in [Method::Ddpm, Method::Ddim] {
        println!("{}:\n", method.name());
        print!("| k | λ_k | target std | W1 floor | needed |");
        for s in &schedules {
            print!(" {} |", s.name);
        }
        println!();
        println!(
            "|---:|---:|---:|---:|---:|{}",
            "---:|".repeat(schedules.len())
        );
        for r in rows.iter().filter(|r| r.method == method) {
            let lambda = late_scale.powf(r.k as f64 / (iters - 1) as f64);
            print!(
                "| {} | {lambda:.3} | {:.4} | {:.4} | {} |",
                r.k,
                r.std,
                r.floor,
                r.needed.map_or("> 100".to_string(), |n| n.to_string())
            );
            for (s, &w) in schedules.iter().zip(&r.at) {
                print!(" {}: {} |", s.steps[r.k], cell(w, tau));
            }
            println!();
        }
        println!();
    }

    // The "needed" schedules over all iterations: each iteration takes the larger need of the
    // representative iterations around it (conservative between samples).
    for method in [Method::Ddpm, Method::Ddim] {
        let need: Vec<(usize, Option<usize>)> = rows
            .iter()
            .filter(|r| r.method == method)
            .map(|r| (r.k, r.needed))
            .collect();
        let steps: Option<Vec<usize>> = (0..iters)
            .map(|k| {
                let after = need.iter().position(|&(rk, _)| rk >= k)?;
                let before = if need[after].0 == k { after } else { after - 1 };
                Some(need[before].1?.max(need[after].1?))
            })
            .collect();
        if let Some(steps) = steps {
            schedules.push(Schedule {
                name: format!("needed for τ ({method:?})"),
                steps,
            });
        }
    }

    let tokens = mar_tokens_per_iteration(SEQ_LEN, iters);
    // A direct pass of MAR's constant schedule is ~6400 head steps (minutes on a small
    // machine): opt in with `--direct-constant true`; DiSA linear is always run directly.
    let direct: Vec<bool> = (0..schedules.len())
        .map(|i| i == 1 || (i == 0 && direct_constant))
        .collect();
    let t0 = Instant::now();
    let timing = time_heads(&schedules, &tokens, batch, reps, direct_runs, &direct)?;
    let timing_s = t0.elapsed().as_secs_f64();

    println!(
        "Totals over the {iters} iterations (the quality columns: the representative iterations \
         above; the needed-for-τ schedules are ≤ τ there by construction). Head time: MAR-B's \
         head (w 1024, 6 blocks), B = {batch}, CFG (2 × tokens rows: {}–{} rows), arvis DDPM, \
         {} threads; model = Σ_k (a + b·T(k)) from medians of {reps} timed calls per row count \
         (b = {:.2}–{:.2} ms per step); measured = median of {direct_runs} timed pass(es) of the \
         {iters} real head calls.\n",
        2 * batch * tokens.iter().copied().filter(|&n| n > 0).min().unwrap_or(0),
        2 * batch * tokens.iter().copied().max().unwrap_or(0),
        rayon::current_num_threads(),
        timing.step_range.0 * 1e3,
        timing.step_range.1 * 1e3,
    );
    println!(
        "| schedule | head steps | steps vs constant | DDPM iterations > τ | DDPM worst W1 | \
         DDIM iterations > τ | DDIM worst W1 | head time (model) | head time (measured) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let base_steps: usize = schedules[0].steps.iter().sum();
    for (i, s) in schedules.iter().enumerate() {
        let total: usize = s.steps.iter().sum();
        let mut cols = String::new();
        for method in [Method::Ddpm, Method::Ddim] {
            let at: Vec<f64> = rows
                .iter()
                .filter(|r| r.method == method)
                .map(|r| r.at.get(i).copied().unwrap_or(f64::NAN))
                .collect();
            if at.iter().any(|w| w.is_nan()) {
                cols.push_str(" – | – |");
            } else {
                let over = at.iter().filter(|&&w| w > tau).count();
                let worst = at.iter().copied().fold(0.0, f64::max);
                cols.push_str(&format!(" {over} of {} | {worst:.4} |", at.len()));
            }
        }
        println!(
            "| {} | {total} | {:.2}× fewer |{cols} {:.1} s | {} |",
            s.name,
            base_steps as f64 / total as f64,
            timing.modelled[i],
            timing.direct[i].map_or("–".to_string(), |t| format!("{t:.1} s")),
        );
    }
    println!(
        "\nRun time: quality {quality_s:.0} s, timing {timing_s:.0} s (threads: {}).",
        rayon::current_num_threads()
    );
    Ok(())
}
