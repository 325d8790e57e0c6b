//! The `arvis` command line (the binary is a thin wrapper around [`run`]).
//!
//! Exit codes: `0` success, `1` internal failure, `2` a user mistake (bad arguments, a missing
//! or wrong model file, an out-of-range class). No partial output file is ever left behind.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use arvis_core::ops::WeightStorage;
use arvis_core::{Device, Weights};
use arvis_models::mar::{CfgSchedule, HeadSteps, StepAnnealing, StepSchedule};
use arvis_models::var::LoadOptions;
use arvis_tokenizer::image::{PixelRange, Rounding, encode_png, grid, tensor_to_rgb8};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use crate::classifier::MnistClassifier;
use crate::error::{Error, Result};
use crate::eval::{EvalProgress, EvalSettings, evaluate_sampled};
use crate::output::write_atomically;
use crate::pipeline::{MarOptions, ModelSource, Pipeline, Progress, Request, Sampling, Stage};
use crate::sampler::{SamplerKind, SamplerOptions, load_draft};

/// Fast, portable inference for autoregressive image generators.
#[derive(Debug, Parser)]
#[command(name = "arvis", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate images from a class-conditional model and write them as one PNG.
    Generate(GenerateArgs),
    /// Describe a converted model file: family, configuration, parameter count.
    Info(InfoArgs),
    /// Score a class-conditional MNIST model with the embedded digit classifier: class
    /// fidelity, Fréchet distance to the MNIST test set, nearest-neighbour diversity.
    Eval(EvalArgs),
}

#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// Converted `.safetensors` model (see `xtask/py/convert_var.py`), or `builtin` for the
    /// embedded VAR trained on MNIST, or `builtin-llamagen` for the embedded LlamaGen-style model.
    #[arg(
        long,
        value_name = "PATH|builtin|builtin-llamagen",
        default_value = "builtin"
    )]
    model: ModelSource,
    /// Class label; repeat for a batch (one image per label).
    #[arg(long = "class", value_name = "N", conflicts_with = "grid")]
    classes: Vec<u32>,
    /// One row per class of the model, `--per-class` images each.
    #[arg(long)]
    grid: bool,
    /// Images per class with `--grid`.
    #[arg(long, default_value_t = 8, value_name = "N")]
    per_class: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    mar: MarArgs,
    /// Output PNG: the images side by side (a grid of `--nrow` per row).
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// Images per row of the output (default 8; `--per-class` with `--grid`).
    #[arg(long)]
    nrow: Option<usize>,
    /// Device to run on.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Store the linear layers' weights as f16 (rounded once at load; arithmetic stays f32).
    /// Only the GPU benefits: it reads half the weight bytes per product. On the CPU the
    /// weights are rounded the same way (same images as the GPU's) but nothing gets faster.
    #[arg(long)]
    f16_weights: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    speculative: SpeculativeArgs,
}

/// The token-sampler options `generate` and `eval` share (raster next-token models, i.e.
/// LlamaGen, only).
#[derive(Debug, clap::Args)]
struct SpeculativeArgs {
    /// Token sampler: `plain` (one forward per token), `sjd` (speculative Jacobi decoding,
    /// exact), `gsd` / `lantern` (relaxed acceptance, lossy, faster), `spec` (a draft model,
    /// exact; needs --draft). Prints target forwards, mean accepted length and acceptance rate.
    /// `eval` with a sampler (plain included) samples through the samplers' common loop and
    /// also reports their cost and the samples' NLL under the model [default: plain].
    #[arg(long, value_name = "plain|sjd|gsd|lantern|spec")]
    sampler: Option<SamplerKind>,
    /// Draft model for `--sampler spec`: a second (smaller) LlamaGen file with the same
    /// vocabulary and classes.
    #[arg(long, value_name = "PATH")]
    draft: Option<PathBuf>,
    /// Inputs per verification forward: the last accepted token plus N − 1 drafts.
    #[arg(long, default_value_t = 16, value_name = "N")]
    window: usize,
}

impl SpeculativeArgs {
    /// Checks the combination before anything loads.
    fn options(&self) -> Result<SamplerOptions> {
        let kind = self.sampler.unwrap_or(SamplerKind::Plain);
        match (kind, &self.draft) {
            (SamplerKind::Spec, None) => {
                return Err(Error::Usage(
                    "--sampler spec needs a draft model: --draft PATH".into(),
                ));
            }
            (SamplerKind::Spec, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(Error::Usage(format!(
                    "--draft is used by --sampler spec only (got --sampler {kind})"
                )));
            }
        }
        if self.window < 2 {
            return Err(Error::Usage(format!(
                "--window {} must be at least 2",
                self.window
            )));
        }
        Ok(SamplerOptions {
            kind,
            window: self.window,
        })
    }
}

/// The sampling options `generate` and `eval` share. Unset ones take the model file's
/// recommended settings (`arvis.sampling` metadata; the embedded model: cfg 0.5, no top-k/top-p),
/// else the official VAR demo's (cfg 4, top-k 900, top-p 0.95).
#[derive(Debug, clap::Args)]
struct SamplingArgs {
    /// Seed of every random draw (`eval`: batch b generates with a seed derived from it).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Classifier-free guidance strength [default: the model's].
    #[arg(long)]
    cfg: Option<f32>,
    /// Top-k filter, 0 = off [default: the model's].
    #[arg(long)]
    top_k: Option<usize>,
    /// Top-p (nucleus) mass in (0, 1], 1 = off [default: the model's].
    #[arg(long)]
    top_p: Option<f32>,
    /// Sampling temperature: LlamaGen divides the logits by it (0 = greedy), MAR scales the
    /// head's noise by it; VAR has none [default: 1].
    #[arg(long, value_name = "T", default_value_t = 1.0)]
    temperature: f32,
}

impl SamplingArgs {
    /// The given options over the model's defaults.
    fn resolve(&self, defaults: Sampling) -> Sampling {
        Sampling {
            cfg: self.cfg.unwrap_or(defaults.cfg),
            top_k: self.top_k.unwrap_or(defaults.top_k),
            top_p: self.top_p.unwrap_or(defaults.top_p),
        }
    }
}

/// MAR's options (MAR models only; the defaults are `MarOptions::default`: 64 iterations, 100
/// head steps, linear guidance; the head temperature is `--temperature`).
#[derive(Debug, clap::Args)]
struct MarArgs {
    /// MAR: AR iterations (1..=256 for 256 tokens) [default: 64].
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// MAR: diffusion steps of the head per iteration [default: 100].
    #[arg(long, value_name = "N", conflicts_with = "disa")]
    head_steps: Option<usize>,
    /// MAR: DiSA step annealing `SCHEDULE:UPPER:LOWER` (schedule linear, cosine, two-stage or
    /// constant), e.g. `linear:50:5`: UPPER head steps at the first iteration down to LOWER.
    #[arg(long, value_name = "SCHEDULE:UPPER:LOWER")]
    disa: Option<String>,
    /// MAR: how guidance grows over the iterations [default: linear].
    #[arg(long, value_enum)]
    cfg_schedule: Option<CfgScheduleArg>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CfgScheduleArg {
    Linear,
    Constant,
}

impl MarArgs {
    fn any(&self) -> bool {
        self.steps.is_some()
            || self.head_steps.is_some()
            || self.disa.is_some()
            || self.cfg_schedule.is_some()
    }

    /// The given options over the defaults.
    fn resolve(&self) -> Result<MarOptions> {
        let mut o = MarOptions::default();
        if let Some(n) = self.steps {
            o.num_iter = n;
        }
        if let Some(n) = self.head_steps {
            if n == 0 {
                return Err(Error::Usage("--head-steps must be at least 1".into()));
            }
            o.head_steps = HeadSteps::Fixed(n);
        }
        if let Some(spec) = &self.disa {
            o.head_steps = HeadSteps::Annealed(parse_disa(spec)?);
        }
        if let Some(s) = self.cfg_schedule {
            o.cfg_schedule = match s {
                CfgScheduleArg::Linear => CfgSchedule::Linear,
                CfgScheduleArg::Constant => CfgSchedule::Constant,
            };
        }
        Ok(o)
    }
}

/// `SCHEDULE:UPPER:LOWER` → a DiSA schedule.
fn parse_disa(spec: &str) -> Result<StepAnnealing> {
    let bad = || {
        Error::Usage(format!(
            "--disa {spec}: expected SCHEDULE:UPPER:LOWER with SCHEDULE linear, cosine, two-stage \
             or constant and 1 <= LOWER <= UPPER (e.g. linear:50:5)"
        ))
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let [kind, upper, lower] = parts[..] else {
        return Err(bad());
    };
    let schedule = match kind {
        "linear" => StepSchedule::Linear,
        "cosine" => StepSchedule::Cosine,
        "two-stage" => StepSchedule::TwoStage,
        "constant" => StepSchedule::Constant,
        _ => return Err(bad()),
    };
    let upper: usize = upper.parse().map_err(|_| bad())?;
    let lower: usize = lower.parse().map_err(|_| bad())?;
    StepAnnealing::new(schedule, upper, lower).map_err(|_| bad())
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DeviceArg {
    Cpu,
    Gpu,
}

#[derive(Debug, clap::Args)]
struct EvalArgs {
    /// MNIST model (`.safetensors`, 10 classes, 28–32 px images), `builtin` (the embedded VAR)
    /// or `builtin-llamagen` (the embedded LlamaGen-style model).
    #[arg(
        long,
        value_name = "PATH|builtin|builtin-llamagen",
        default_value = "builtin"
    )]
    model: ModelSource,
    /// Images per digit (10× this in total).
    #[arg(long, default_value_t = 100, value_name = "N")]
    samples: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Images per generation call.
    #[arg(long, default_value_t = 50, value_name = "N")]
    batch: usize,
    #[command(flatten)]
    speculative: SpeculativeArgs,
    /// Classifier `.safetensors` (default: the embedded one).
    #[arg(long, value_name = "PATH")]
    classifier: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, clap::Args)]
struct InfoArgs {
    /// Converted `.safetensors` model, `builtin` or `builtin-llamagen`.
    #[arg(
        value_name = "PATH|builtin|builtin-llamagen",
        required_unless_present = "gpu"
    )]
    model: Option<ModelSource>,
    /// Describe the GPU adapter wgpu picks (`ARVIS_WGPU_ADAPTER=<substring>` chooses another):
    /// backend, driver, limits, optional features.
    #[arg(long)]
    gpu: bool,
}

/// Parses `args` (including the program name) and runs the command.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and mistakes to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    let result = match cli.command {
        Command::Generate(a) => generate(&a),
        Command::Info(a) => info(a.model.as_ref(), a.gpu),
        Command::Eval(a) => eval(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.is_user_error() { 2 } else { 1 })
        }
    }
}

fn generate(a: &GenerateArgs) -> Result<()> {
    let device = match a.device {
        DeviceArg::Cpu => Device::Cpu,
        DeviceArg::Gpu => {
            // Fail early with the adapter's story, before the model loads.
            arvis_core::gpu::GpuContext::shared()
                .map_err(|e| Error::Device("gpu".into(), e.to_string()))?;
            Device::Gpu
        }
    };
    if a.out
        .extension()
        .is_none_or(|e| !e.eq_ignore_ascii_case("png"))
    {
        return Err(Error::Usage(format!(
            "--out {} must end in .png",
            a.out.display()
        )));
    }
    if !a.grid && a.classes.is_empty() {
        return Err(Error::Usage("give --class N (repeatable) or --grid".into()));
    }
    if a.grid && a.per_class == 0 {
        return Err(Error::Usage("--per-class must be at least 1".into()));
    }
    let nrow = a.nrow.unwrap_or(if a.grid { a.per_class } else { 8 });
    if nrow == 0 {
        return Err(Error::Usage("--nrow must be at least 1".into()));
    }
    let options = LoadOptions {
        weight_storage: if a.f16_weights {
            WeightStorage::F16
        } else {
            WeightStorage::F32
        },
    };
    let sampler = a.speculative.options()?;
    let mut pipeline = Pipeline::open_with(&a.model, device, options)?;
    if pipeline.family() == "mar" {
        pipeline.set_mar_options(a.mar.resolve()?);
    } else if a.mar.any() {
        return Err(Error::Usage(format!(
            "--steps, --head-steps, --disa and --cfg-schedule apply to MAR models; \
             {} is a {} model",
            a.model,
            pipeline.family()
        )));
    }
    let draft = match &a.speculative.draft {
        Some(path) => Some(load_draft(path, device)?),
        None => None,
    };
    let sampling = a.sampling.resolve(pipeline.default_sampling());
    let labels = if a.grid {
        let classes = u32::try_from(pipeline.num_classes()).unwrap_or(u32::MAX);
        (0..classes)
            .flat_map(|c| std::iter::repeat_n(c, a.per_class))
            .collect()
    } else {
        a.classes.clone()
    };
    let req = Request {
        labels,
        seed: a.sampling.seed,
        cfg: sampling.cfg,
        top_k: sampling.top_k,
        top_p: sampling.top_p,
        temperature: a.sampling.temperature,
    };
    let bar = progress_bar(
        a.quiet,
        pipeline.num_steps(),
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
    );
    let (images, stats) =
        pipeline.generate_with_sampler(&req, &sampler, draft.as_ref(), &mut |p: Progress| {
            bar.set_position(p.done as u64);
            bar.set_message(match p.stage {
                Stage::Scale { patch_num } => format!("scale {patch_num}x{patch_num}"),
                Stage::Tokens => "tokens".to_owned(),
                Stage::Decode => "decoding".to_owned(),
            });
        })?;
    bar.finish_and_clear();
    if let (Some(st), true) = (stats, sampler.kind != SamplerKind::Plain) {
        eprintln!(
            "sampler {}: {} target forwards for {} tokens per image ({:.2} tokens/forward), \
             mean accepted length {:.2}, acceptance rate {:.3}, {} draft forwards",
            sampler.kind,
            st.target_forwards,
            st.tokens,
            st.tokens_per_forward(),
            st.mean_accepted_len(),
            st.acceptance_rate(),
            st.draft_forwards
        );
    }
    let rgb = tensor_to_rgb8(&images, PixelRange::ZeroOne, Rounding::Truncate)?;
    let sheet = grid(&rgb, nrow, 0, [0, 0, 0])?;
    let png = encode_png(&sheet)?;
    write_atomically(&a.out, |tmp: &Path| {
        std::fs::write(tmp, &png).map_err(|source| Error::Io {
            path: tmp.to_path_buf(),
            source,
        })
    })?;
    if !a.quiet {
        eprintln!(
            "wrote {} ({} image(s), {}x{} each)",
            a.out.display(),
            rgb.len(),
            rgb[0].width(),
            rgb[0].height()
        );
    }
    Ok(())
}

/// A progress bar of `len` steps drawn with `template`, or a hidden one with `--quiet`.
fn progress_bar(quiet: bool, len: usize, template: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn info(model: Option<&ModelSource>, gpu: bool) -> Result<()> {
    if gpu {
        let ctx = arvis_core::gpu::GpuContext::new()?;
        println!("{}", ctx.info());
    }
    let Some(model) = model else { return Ok(()) };
    let w = match model {
        ModelSource::Builtin => crate::builtin::var_mnist_weights()?,
        ModelSource::BuiltinLlamaGen => crate::builtin::llamagen_mnist_weights()?,
        ModelSource::File(path) => Weights::open(path)?,
    };
    let meta = |k: &str| w.metadata_str(k).unwrap_or("(not set)").to_owned();
    let params: usize = w
        .names()
        .iter()
        .filter_map(|n| w.shape_of(n).ok())
        .map(|s| s.iter().product::<usize>())
        .sum();
    println!("file:       {model}");
    println!("family:     {}", meta(arvis_core::weights::META_FAMILY));
    println!("source:     {}", meta(arvis_core::weights::META_SOURCE));
    println!("tensors:    {}", w.len());
    println!("parameters: {params} ({:.2} M)", params as f64 / 1e6);
    match w.metadata_json(arvis_core::weights::META_CONFIG) {
        Ok(cfg) => {
            let pretty = serde_json::to_string_pretty(&cfg).unwrap_or_else(|_| cfg.to_string());
            println!("config:\n{pretty}");
        }
        Err(e) => println!("config:     (unreadable: {e})"),
    }
    match Sampling::from_metadata(&w) {
        Ok(Some(s)) => println!(
            "sampling:   cfg {} top-k {} top-p {} (recommended by the file)",
            s.cfg, s.top_k, s.top_p
        ),
        Ok(None) => println!("sampling:   (not set; generate uses the family default)"),
        Err(e) => println!("sampling:   (unreadable: {e})"),
    }
    Ok(())
}

fn eval(a: &EvalArgs) -> Result<()> {
    let sampler = match a.speculative.sampler {
        Some(_) => Some(a.speculative.options()?),
        None => {
            a.speculative.options()?;
            None
        }
    };
    let pipeline = Pipeline::open(&a.model, Device::Cpu)?;
    let draft = match &a.speculative.draft {
        Some(path) => Some(load_draft(path, Device::Cpu)?),
        None => None,
    };
    let sampling = a.sampling.resolve(pipeline.default_sampling());
    let classifier = match &a.classifier {
        Some(path) => MnistClassifier::load(path)?,
        None => MnistClassifier::builtin()?,
    };
    let settings = EvalSettings {
        samples_per_class: a.samples,
        seed: a.sampling.seed,
        cfg: sampling.cfg,
        top_k: sampling.top_k,
        top_p: sampling.top_p,
        batch_size: a.batch,
        temperature: a.sampling.temperature,
        sampler,
    };
    let bar = progress_bar(
        a.quiet,
        a.samples.saturating_mul(10),
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} images (eta {eta})",
    );
    let report = evaluate_sampled(
        &pipeline,
        &classifier,
        &settings,
        draft.as_ref(),
        &mut |p: EvalProgress| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
        },
    )?;
    bar.finish_and_clear();
    if a.json {
        let text = serde_json::to_string_pretty(&report.to_json())
            .unwrap_or_else(|_| report.to_json().to_string());
        println!("{text}");
    } else {
        println!("{report}");
    }
    Ok(())
}
