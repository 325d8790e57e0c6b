//! `cargo xtask`: developer workflows for arvis.
//!
//! - `cargo xtask ci`: format check, clippy (`-D warnings`), tests and docs, stopping at the
//!   first failure.
//! - `cargo xtask bench [--filter REGEX] [--no-run-baseline] [--report-only]`: criterion
//!   benches, numpy baseline, PyTorch VAR baseline, machine peak, and `docs/benchmarks.md`.
//! - `cargo xtask codegen [--check]`: naga validation of every WGSL shader in `shaders/`.
//! - `cargo xtask gpu-report [--quick] [--profile]`: arvis on the GPU vs PyTorch, one table.
//! - `cargo xtask help`.
//!
//! The alias lives in `.cargo/config.toml`. Dependencies: serde_json, naga (shader validation).

mod bench;
mod ci;
mod codegen;
mod criterion;
mod gpu_report;
mod llamagen;
mod machine;
mod report;
mod var;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Error type of every xtask step.
pub type XResult<T> = Result<T, Box<dyn Error>>;

const HELP: &str = "\
cargo xtask <command> [options]

Commands:
  ci                    cargo fmt --check, clippy -D warnings, test, doc (RUSTDOCFLAGS=-Dwarnings);
                        stops at the first failing step with a nonzero exit code.
  bench [options]       run `cargo bench -p arvis-benches` (core_ops, var_generate), the numpy
                        baseline, the PyTorch VAR baseline, and write docs/benchmarks.md
      --filter REGEX      only benchmarks whose id matches (forwarded to criterion and numpy;
                          the PyTorch VAR baseline runs when it matches a VAR id, e.g. `var`)
      --no-run-baseline   skip the numpy baseline (table without the numpy columns)
      --report-only       do not run cargo bench; rebuild the report from target/criterion
  codegen [--check]     validate every shaders/*.wgsl with naga (wgpu's own front end and
                        validator, with the f16/subgroup capabilities arvis may enable)
  gpu-report [options]  on a machine with a GPU: matmul 4096³, attention (VAR-d16 shapes, L 4096
                        causal), VAR-d16 and LlamaGen GPT-B (256 tokens) at B 1 and 64 through
                        wgpu, next to PyTorch
                        fp32 (TF32 off) in the same run when torch imports; table also written
                        to target/gpu-report.md
      --quick             tiny shapes (a smoke test, e.g. on lavapipe)
      --profile           per-op GPU time of one VAR generation (timestamp queries)
      --runs N            timed runs per measurement (default 10)
  llamagen-bench [options]
                        LlamaGen GPT-B generation (256 tokens, CFG 4, top-k 2000, fp32, 2 threads)
                        in arvis and in the official code (ARVIS_LLAMAGEN_REPO), same weights,
                        the sides alternating; table to target/bench-data/llamagen.md
      --batches LIST      batch sizes (default 1,8)
      --rounds N          timed generations per side and batch (default 3)
      --weights FILE      weights both sides load (default:
                          target/bench-data/llamagen_gpt_b_random.safetensors, written by the
                          official code with seeded random weights when missing)
  help                  this text

Environment:
  ARVIS_PYTHON          interpreter for the numpy and PyTorch baselines (default: python3)
  ARVIS_VAR_REPO        FoundationVision/VAR checkout: enables the PyTorch VAR-d16 baseline
                        (official code, same weights, 2 threads; cached in
                        target/bench-data/var_torch.json); unset: arvis-only VAR rows
  ARVIS_VAR_D16_WEIGHTS weights file both VAR sides load (default:
                        target/bench-data/var_d16_random.safetensors, written by the official
                        code with seeded random weights when missing)
  ARVIS_LLAMAGEN_REPO   FoundationVision/LlamaGen checkout for `llamagen-bench` and the official
                        GPT-B rows of `gpu-report` (B 1 and 64 on cuda)
  ARVIS_FP32_PEAK_TFLOPS fp32 peak the GPU report rates against (default: a table of known GPUs)
  ARVIS_PEAK_GHZ        clock of the theoretical peak FLOP/s (default: `cpu MHz` of
                        /proc/cpuinfo); compute-bound ops are rated against the measured
                        `fma_peak` bench instead when target/criterion has it
  CARGO_TARGET_DIR      where criterion's data is read (default: <workspace>/target)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::run(&args[1..]),
        Some("codegen") => codegen::run(&args[1..]),
        Some("gpu-report") => gpu_report::run(&args[1..]),
        Some("llamagen-bench") => llamagen::run(&args[1..]),
        Some("bench") => bench::BenchArgs::parse(&args[1..]).and_then(|a| bench::run(&a)),
        Some("help" | "--help" | "-h") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`; see `cargo xtask help`").into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo that runs us (`$CARGO`), or `cargo` from `PATH`.
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root());
    cmd
}

/// Renders a command as a shell-like line (env overrides first), for echoing.
pub fn display_cmd(cmd: &Command) -> String {
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    let program = cmd.get_program().to_string_lossy();
    // `$CARGO` is an absolute path; show the familiar name.
    let program = if Path::new(&*program)
        .file_stem()
        .is_some_and(|s| s == "cargo")
    {
        "cargo".into()
    } else {
        program
    };
    parts.push(program.into_owned());
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Echoes and runs `cmd`, failing on a nonzero exit status.
pub fn run_echoed(cmd: &mut Command) -> XResult<()> {
    let line = display_cmd(cmd);
    eprintln!("\n==> {line}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start `{line}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        let code = status
            .code()
            .map_or("killed by a signal".into(), |c| format!("exit code {c}"));
        Err(format!("`{line}` failed ({code})").into())
    }
}
