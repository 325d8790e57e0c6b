//! Renders `docs/benchmarks.md`.
//!
//! Everything from the `<!-- notes -->` marker to the end of an existing file is hand-written
//! and kept verbatim; the rest is regenerated.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::bench::Baseline;
use crate::criterion::{BenchResult, Throughput};
use crate::machine::{self, CpuInfo, Peak};
use crate::var::{self, TorchBaseline};

mod var_table;

/// Marker line: what follows it is preserved between runs.
pub const NOTES_MARKER: &str = "<!-- notes -->";

/// Id prefix of the memory-bandwidth reference bench.
const STREAM_COPY: &str = "arvis-core/stream_copy/cpu/";

/// Id prefix of the f32 FMA-throughput reference bench (last part: rayon threads).
const FMA_PEAK: &str = "arvis-core/fma_peak/cpu/";

/// Groups of the machine-reference benches: shown in their own table, not rated against
/// themselves.
const REFERENCE_GROUPS: [&str; 2] = ["arvis-core/fma_peak", "arvis-core/stream_copy"];

/// Op order of the tables (others follow alphabetically).
const OP_ORDER: [&str; 5] = ["matmul", "linear", "conv2d", "layer_norm", "softmax"];

/// A machine reference measured by the benches (`fma_peak`, `stream_copy`).
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    /// The bench id.
    pub id: String,
    /// FLOP/s (`fma_peak`) or bytes/s (`stream_copy`), from the median time.
    pub rate: f64,
    /// From an earlier run than this command (filtered out, still in `target/criterion`).
    pub stale: bool,
}

/// The result of `prefix` with a positive rate; with several (e.g. another thread count from
/// an older run), the most recently written.
fn find_reference(
    results: &[BenchResult],
    prefix: &str,
    run_started: Option<SystemTime>,
) -> Option<Reference> {
    results
        .iter()
        .filter(|b| b.id.starts_with(prefix) && b.median_s > 0.0)
        .filter_map(|b| {
            let n = match b.throughput? {
                Throughput::Flops(n) | Throughput::Bytes(n) => n,
            };
            (n > 0).then(|| (b, n as f64 / b.median_s))
        })
        .max_by(|(a, ra), (b, rb)| a.modified.cmp(&b.modified).then(ra.total_cmp(rb)))
        .map(|(b, rate)| Reference {
            id: b.id.clone(),
            rate,
            stale: is_stale(run_started, b),
        })
}

/// What the compute-bound ops' "% of peak" columns are relative to.
#[derive(Clone, Debug, PartialEq)]
pub enum ComputePeak {
    /// The `fma_peak` bench: f32 FMA throughput measured on all rayon threads (boost
    /// included).
    Measured(Reference),
    /// `fma_peak` is not in `target/criterion`: the theoretical peak from `/proc/cpuinfo`
    /// (base clock), in FLOP/s.
    Theoretical(f64),
}

impl ComputePeak {
    /// The reference, in FLOP/s.
    pub fn flops(&self) -> f64 {
        match self {
            Self::Measured(r) => r.rate,
            Self::Theoretical(f) => *f,
        }
    }

    /// The column heading's reference, e.g. `measured FMA peak (210 GFLOP/s)`.
    pub fn label(&self) -> String {
        let kind = match self {
            Self::Measured(_) => "measured FMA peak",
            Self::Theoretical(_) => "theoretical peak",
        };
        format!("{kind} ({:.0} GFLOP/s)", self.flops() / 1e9)
    }
}

/// The measured `fma_peak` if `target/criterion` has it (this run or an earlier one), else
/// the theoretical peak.
pub fn compute_peak(
    results: &[BenchResult],
    theoretical: &Peak,
    run_started: Option<SystemTime>,
) -> ComputePeak {
    find_reference(results, FMA_PEAK, run_started)
        .filter(|r| r.rate.is_finite())
        .map_or(
            ComputePeak::Theoretical(theoretical.flops()),
            ComputePeak::Measured,
        )
}

/// Whether `b` predates this run (`None` with `--report-only`: nothing is stale).
fn is_stale(run_started: Option<SystemTime>, b: &BenchResult) -> bool {
    match (run_started, b.modified) {
        (Some(start), Some(m)) => m < start,
        _ => false,
    }
}

/// The references the tables are rated against.
struct Refs {
    compute: ComputePeak,
    stream: Option<Reference>,
}

/// Everything the report shows.
pub struct Report<'a> {
    /// The CPU.
    pub cpu: &'a CpuInfo,
    /// Its theoretical peak.
    pub peak: &'a Peak,
    /// Criterion results.
    pub results: &'a [BenchResult],
    /// numpy baseline.
    pub baseline: &'a Baseline,
    /// PyTorch baseline of the VAR-d16 generation benches.
    pub var_torch: &'a TorchBaseline,
    /// The command line that produced the report.
    pub command: String,
    /// When `cargo bench` started (results older than this were not re-run); `None` with
    /// `--report-only`.
    pub run_started: Option<SystemTime>,
    /// 1-minute load average before and after `cargo bench` (`None` with `--report-only`).
    pub load: Option<(Option<f64>, Option<f64>)>,
    /// `rustc -V`.
    pub rustc: Option<String>,
    /// `git describe`.
    pub git: Option<String>,
}

const DEFAULT_NOTES: &str = "\
## Notes

_Hand-written: `cargo xtask bench` keeps everything from the `notes` marker above to the end
of the file._

- Compute-bound ops are rated against `fma_peak` (independent f32 FMA chains on every rayon
  thread), which runs at the boosted clock like the ops; the cpuinfo peak uses the base clock.
- FLOPs: matmul/linear `2·m·n·k`; conv2d `2·O·I·kh·kw·H·W` (bias not counted). Layer norm
  (~8 FLOP/element) and softmax (~5 FLOP/element, `exp` counted as one) are memory-bound
  (~1 FLOP/byte) and are rated in GB/s of read + write traffic (`2·4·numel`) against the
  `stream_copy` bandwidth measured in the same run.
- numpy: conv2d is im2col + BLAS sgemm; layer norm and softmax are unfused vectorised numpy.
- VAR-d16 FLOPs (B images, 2B rows with CFG, width C, depth d, vocabulary V, latent width
  Cvae): per scale of l tokens after which the cache holds L tokens, `d·2B·l·(24·C² + 4·L·C)`
  (qkv, proj, FFN; attention against the cache) `+ 2B·l·2·C·V` (head) `+ B·l·2·Cvae·C`
  (word embedding), plus `2B·(d·12·C² + 4·C²)` for the AdaLN linears; decode: every
  convolution `2·O·I·k²·H·W` and `4·(HW)²·C` per spatial attention.
";

/// Produces the whole markdown file; `previous` is the current file, if any.
pub fn render(r: &Report<'_>, previous: Option<&str>) -> String {
    let mut s = String::new();
    let refs = Refs {
        compute: compute_peak(r.results, r.peak, r.run_started),
        stream: find_reference(r.results, STREAM_COPY, r.run_started),
    };
    header(&mut s, r, &refs.compute);
    let mut stale = false;
    let mut references = Vec::new();
    let mut var_rows = Vec::new();
    for (group, mut rows) in groups(r.results) {
        rows.sort_by(|a, b| {
            amount(a.throughput)
                .total_cmp(&amount(b.throughput))
                .then_with(|| a.id.cmp(&b.id))
        });
        if REFERENCE_GROUPS.contains(&group.as_str()) {
            references.extend(rows);
        } else if group.starts_with(var::GROUP_PREFIX) {
            var_rows.extend(rows);
        } else {
            stale |= table(&mut s, r, &group, &rows, &refs);
        }
    }
    if !var_rows.is_empty() {
        stale |= var_table::table(&mut s, r, &var_rows, &refs);
    }
    if !references.is_empty() {
        stale |= reference_table(&mut s, r, &references, &refs);
    }
    if stale {
        s.push_str(
            "† not re-run by this command (filtered out): the result of an earlier run, still \
             in `target/criterion`.\n\n",
        );
    }
    let notes = previous
        .and_then(|p| p.find(NOTES_MARKER).map(|i| p[i..].to_owned()))
        .unwrap_or_else(|| format!("{NOTES_MARKER}\n{DEFAULT_NOTES}"));
    s.push_str(&notes);
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

fn amount(t: Option<Throughput>) -> f64 {
    match t {
        Some(Throughput::Flops(n) | Throughput::Bytes(n)) => n as f64,
        None => 0.0,
    }
}

/// Results grouped by criterion group, in [`OP_ORDER`].
fn groups(results: &[BenchResult]) -> Vec<(String, Vec<&BenchResult>)> {
    let mut map: BTreeMap<String, Vec<&BenchResult>> = BTreeMap::new();
    for b in results {
        map.entry(b.group.clone()).or_default().push(b);
    }
    let rank = |g: &str| {
        let op = g.rsplit('/').next().unwrap_or(g);
        OP_ORDER
            .iter()
            .position(|o| *o == op)
            .unwrap_or(OP_ORDER.len())
    };
    let mut v: Vec<_> = map.into_iter().collect();
    v.sort_by(|a, b| (rank(&a.0), &a.0).cmp(&(rank(&b.0), &b.0)));
    v
}

fn header(s: &mut String, r: &Report<'_>, compute: &ComputePeak) {
    let cpu = r.cpu;
    let p = r.peak;
    s.push_str("# arvis benchmarks\n\n");
    s.push_str(
        "<!-- Generated by `cargo xtask bench`. Everything above the notes marker is rewritten \
         on each run; edit below it. -->\n\n",
    );
    let _ = writeln!(s, "- **Command:** `{}`", r.command);
    let _ = writeln!(s, "- **Date:** {}", utc_now());
    let fam = match (cpu.family, cpu.model) {
        (Some(f), Some(m)) => format!(", family {f} model {m}"),
        _ => String::new(),
    };
    let _ = writeln!(
        s,
        "- **Machine:** {} ({}{fam}), {} logical CPUs / {} cores listed, {} MHz; SIMD: {}",
        or_unknown(&cpu.model_name),
        or_unknown(&cpu.vendor),
        cpu.logical,
        cpu.physical_cores,
        cpu.mhz.map_or("?".into(), |m| format!("{m:.0}")),
        cpu.simd_summary(),
    );
    let theoretical = format!(
        "{} cores × {} FLOP/cycle ({} FMA pipes × {} lanes × 2) × {:.3} GHz = **{:.1} GFLOP/s**. \
         Assumption: {}. Clock from {}",
        p.cores,
        p.flops_per_cycle(),
        p.fma_pipes,
        p.lanes,
        p.ghz,
        p.flops() / 1e9,
        p.assumption,
        p.ghz_source,
    );
    let per_cycle = f64::from(p.flops_per_cycle()) * p.cores as f64;
    match compute {
        ComputePeak::Measured(m) => {
            let kernel = fma_kernel_hint(cpu);
            let clock = if kernel.simd {
                format!(
                    "; at {} FLOP/cycle × {} cores that is an effective clock of {:.2} GHz",
                    p.flops_per_cycle(),
                    p.cores,
                    m.rate / per_cycle / 1e9
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "- **Compute peak f32 (measured):** **{:.1} GFLOP/s**, `{}`{}: independent f32 \
                 FMA chains on every rayon thread ({}){clock}. It runs at the clock the cores \
                 actually reach, boost included, so compute-bound ops are rated against it.",
                m.rate / 1e9,
                m.id,
                if m.stale { " †" } else { "" },
                kernel.text,
            );
            let why = if p.ghz_source == machine::GHZ_FROM_CPUINFO {
                " (the base clock: boost runs above it, which is why the measured FMA peak and \
                 sgemm can exceed this figure)"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "- **Theoretical peak f32 (secondary):** {theoretical}{why}. Not used for the % \
                 columns.",
            );
        }
        ComputePeak::Theoretical(_) => {
            let _ = writeln!(
                s,
                "- **Compute peak f32:** `fma_peak` was not measured (not in \
                 `target/criterion`: filtered out?), so compute-bound ops are rated against \
                 the theoretical peak below. It uses the base clock; with boost they can \
                 exceed 100 %. Run `cargo xtask bench` unfiltered (or with a filter matching \
                 `fma_peak`) to rate them against the measured FMA throughput.",
            );
            let _ = writeln!(
                s,
                "- **Theoretical peak f32:** {theoretical} (usually the base clock; set \
                 `ARVIS_PEAK_GHZ` to use another).",
            );
            let best = r
                .results
                .iter()
                .filter(|b| !REFERENCE_GROUPS.contains(&b.group.as_str()))
                .filter_map(|b| match b.throughput {
                    Some(Throughput::Flops(n)) if b.median_s > 0.0 => Some(n as f64 / b.median_s),
                    _ => None,
                })
                .fold(0.0f64, f64::max);
            if best > p.flops() {
                let _ = writeln!(
                    s,
                    "- **Effective clock:** the best measured rate ({:.1} GFLOP/s) exceeds that \
                     peak, so the cores ran at ≥ {:.2} GHz (boost).",
                    best / 1e9,
                    best / per_cycle / 1e9,
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "- **Build:** {}{}",
        r.rustc.as_deref().unwrap_or("rustc ?"),
        r.git
            .as_deref()
            .map(|g| format!(", git `{g}`"))
            .unwrap_or_default()
    );
    if let Some((before, after)) = r.load {
        let f = |l: Option<f64>| l.map_or("?".into(), |l| format!("{l:.2}"));
        let _ = writeln!(
            s,
            "- **Load average (1 min):** {} before the build, {} after the benches (the \
             benches themselves account for up to {}): other work on the machine skews results.",
            f(before),
            f(after),
            r.peak.cores,
        );
    }
    let _ = writeln!(s, "- **numpy baseline:** {}", baseline_summary(r.baseline));
    let _ = writeln!(
        s,
        "- **PyTorch VAR baseline:** {}",
        var_table::summary(r.var_torch, r.run_started)
    );
    s.push_str(
        "\nAll times are **medians**: criterion with `sample_size(10)` and short windows, numpy \
         the median of ≥ 10 repetitions after warm-up. The machine is a small shared VM and \
         **noisy**: differences under ~10 % are not meaningful. `±` is criterion's median \
         absolute deviation. *numpy / arvis* is numpy's time over arvis's (> 1: arvis is \
         faster). *% of …*: compute-bound ops against the compute peak above (the \
         `fma_peak` FMA throughput when measured, else the theoretical peak); memory-bound \
         ops (GB/s of read + write) against the `stream_copy` bandwidth. Both references are \
         measured in the same run and listed in the last table. For compute ops criterion's \
         \"elements\" are FLOPs.\n\n",
    );
}

/// What the `fma_peak` bench runs on this CPU, mirroring `FmaKernel::detect` in
/// `benches/src/lib.rs` (from the cpuinfo flags, which list what the kernel lets programs
/// use).
struct KernelHint {
    text: &'static str,
    /// A SIMD FMA kernel (its rate is comparable with the FMA-pipe model).
    simd: bool,
}

fn fma_kernel_hint(cpu: &CpuInfo) -> KernelHint {
    let x86 = cfg!(target_arch = "x86_64");
    if x86 && cpu.flags.contains("avx512f") {
        KernelHint {
            text: "512-bit `_mm512_fmadd_ps`, as `avx512f` is listed",
            simd: true,
        }
    } else if x86 && cpu.flags.contains("avx2") && cpu.flags.contains("fma") {
        KernelHint {
            text: "256-bit `_mm256_fmadd_ps`, as `avx2` and `fma` are listed",
            simd: true,
        }
    } else {
        KernelHint {
            text: "portable scalar `f32::mul_add` fallback: **not a SIMD peak**, SIMD ops can \
                   exceed 100 %",
            simd: false,
        }
    }
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "unknown" } else { s }
}

fn baseline_summary(b: &Baseline) -> String {
    match b {
        Baseline::Skipped(why) => format!("not included: {why}."),
        Baseline::Ran {
            info,
            python,
            removed_env,
            ..
        } => {
            let get = |k: &str| {
                info.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned()
            };
            let threads = info.get("threads").and_then(Value::as_u64).unwrap_or(0);
            let blas = info
                .get("threadpools")
                .and_then(Value::as_array)
                .map(|pools| {
                    pools
                        .iter()
                        .filter(|p| p.get("user_api").and_then(Value::as_str) == Some("blas"))
                        .map(|p| {
                            let f = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("?");
                            format!(
                                "{} {} (kernel/coretype `{}`, {} threads)",
                                f("internal_api"),
                                f("version"),
                                f("architecture"),
                                p.get("num_threads").and_then(Value::as_u64).unwrap_or(0)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .filter(|s| !s.is_empty())
                .or_else(|| {
                    let cfg = info.get("show_config_blas")?;
                    Some(format!(
                        "{} {} (threadpoolctl not installed: kernel unknown)",
                        cfg.get("name").and_then(Value::as_str).unwrap_or("?"),
                        cfg.get("version").and_then(Value::as_str).unwrap_or("?")
                    ))
                })
                .unwrap_or_else(|| "BLAS unknown".into());
            let env = if removed_env.is_empty() {
                "OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE were not set".to_owned()
            } else {
                format!(
                    "removed from its environment: `{}`",
                    removed_env.join("`, `")
                )
            };
            format!(
                "numpy {} (python {}, `{python}`), {blas}, {threads} threads; {env}. conv2d is \
                 {}, layer norm / softmax are {}.",
                get("numpy"),
                get("python"),
                get("conv2d"),
                get("rowwise"),
            )
        }
    }
}

/// Writes one op's table; returns whether any row was stale.
fn table(s: &mut String, r: &Report<'_>, group: &str, rows: &[&BenchResult], refs: &Refs) -> bool {
    let bytes = matches!(
        rows.first().and_then(|b| b.throughput),
        Some(Throughput::Bytes(_))
    );
    let stream_bw = refs.stream.as_ref().map(|s| s.rate);
    let (rate, peak_col) = if bytes {
        let bw = stream_bw.map_or("not measured".into(), |b| format!("{:.1} GB/s", b / 1e9));
        ("arvis GB/s", format!("% of stream_copy ({bw})"))
    } else {
        ("arvis GFLOP/s", format!("% of {}", refs.compute.label()))
    };
    let medians = match r.baseline {
        Baseline::Ran { medians, .. } => Some(medians),
        Baseline::Skipped(_) => None,
    };
    let _ = writeln!(s, "## {group}\n");
    if medians.is_some() {
        let _ = writeln!(
            s,
            "| id | arvis median | {rate} | numpy median | numpy / arvis | {peak_col} \
             | numpy {peak_col} |"
        );
        s.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    } else {
        let _ = writeln!(s, "| id | arvis median | {rate} | {peak_col} |");
        s.push_str("|---|---:|---:|---:|\n");
    }
    let mut stale = false;
    for b in rows {
        let is_stale = is_stale(r.run_started, b);
        stale |= is_stale;
        let id = format!("`{}`{}", b.id, if is_stale { " †" } else { "" });
        let spread = if b.median_s > 0.0 {
            100.0 * b.mad_s / b.median_s
        } else {
            0.0
        };
        let median = format!("{} ±{spread:.0}%", fmt_time(b.median_s));
        let (amount, peak) = match b.throughput {
            Some(Throughput::Flops(n)) => (n as f64, Some(refs.compute.flops())),
            Some(Throughput::Bytes(n)) => (n as f64, stream_bw),
            None => (0.0, None),
        };
        let rate = if amount > 0.0 {
            format!("{:.1}", amount / b.median_s / 1e9)
        } else {
            "–".into()
        };
        let pct = |t: f64| match peak {
            Some(p) if amount > 0.0 && t > 0.0 => format!("{:.0} %", 100.0 * amount / t / p),
            _ => "–".into(),
        };
        match medians {
            Some(m) => {
                let np = m.get(&b.id).copied();
                let _ = writeln!(
                    s,
                    "| {id} | {median} | {rate} | {} | {} | {} | {} |",
                    np.map_or("–".into(), fmt_time),
                    np.map_or("–".into(), |t| format!("{:.2}×", t / b.median_s)),
                    pct(b.median_s),
                    np.map_or("–".into(), pct),
                );
            }
            None => {
                let _ = writeln!(s, "| {id} | {median} | {rate} | {} |", pct(b.median_s));
            }
        }
    }
    s.push('\n');
    stale
}

/// The machine references (`fma_peak`, `stream_copy`): what they measured and what they are
/// used for, without a "% of" column (each would be 100 % of itself). Returns whether any
/// row was stale.
fn reference_table(s: &mut String, r: &Report<'_>, rows: &[&BenchResult], refs: &Refs) -> bool {
    s.push_str("## Machine references\n\n");
    s.push_str("| id | median | measured | used as |\n|---|---:|---:|---|\n");
    let compute_id = match &refs.compute {
        ComputePeak::Measured(m) => Some(m.id.as_str()),
        ComputePeak::Theoretical(_) => None,
    };
    let stream_id = refs.stream.as_ref().map(|m| m.id.as_str());
    let mut stale = false;
    for b in rows {
        let is_stale = is_stale(r.run_started, b);
        stale |= is_stale;
        let spread = if b.median_s > 0.0 {
            100.0 * b.mad_s / b.median_s
        } else {
            0.0
        };
        let rate = match b.throughput {
            Some(Throughput::Flops(n)) if b.median_s > 0.0 => {
                format!("{:.1} GFLOP/s", n as f64 / b.median_s / 1e9)
            }
            Some(Throughput::Bytes(n)) if b.median_s > 0.0 => {
                format!("{:.1} GB/s", n as f64 / b.median_s / 1e9)
            }
            _ => "–".into(),
        };
        let role = if Some(b.id.as_str()) == compute_id {
            "compute peak: the compute-bound ops' \"% of measured FMA peak\""
        } else if Some(b.id.as_str()) == stream_id {
            "memory bandwidth: the memory-bound ops' \"% of stream_copy\""
        } else {
            "not used (an older result; a newer one is used)"
        };
        let _ = writeln!(
            s,
            "| `{}`{} | {} ±{spread:.0}% | {rate} | {role} |",
            b.id,
            if is_stale { " †" } else { "" },
            fmt_time(b.median_s),
        );
    }
    s.push('\n');
    stale
}

/// Seconds as `ns`/`µs`/`ms`/`s` with ~4 significant digits.
pub fn fmt_time(secs: f64) -> String {
    let (v, unit) = if secs < 1e-6 {
        (secs * 1e9, "ns")
    } else if secs < 1e-3 {
        (secs * 1e6, "µs")
    } else if secs < 1.0 {
        (secs * 1e3, "ms")
    } else {
        (secs, "s")
    };
    let decimals = if v < 10.0 {
        3
    } else if v < 100.0 {
        2
    } else {
        1
    };
    format!("{v:.decimals$} {unit}")
}

/// `YYYY-MM-DD HH:MM UTC` for now (civil-from-days, no date crate).
fn utc_now() -> String {
    utc_date(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// `YYYY-MM-DD HH:MM UTC` for `secs` since the Unix epoch.
fn utc_date(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn times() {
        assert_eq!(fmt_time(0.012_128), "12.13 ms");
        assert_eq!(fmt_time(265.4e-6), "265.4 µs");
        assert_eq!(fmt_time(2.5), "2.500 s");
    }

    fn result(id: &str, median_s: f64, throughput: Throughput) -> BenchResult {
        BenchResult {
            id: id.into(),
            group: id.rsplitn(3, '/').nth(2).unwrap_or(id).into(),
            median_s,
            mad_s: 0.0,
            throughput: Some(throughput),
            modified: None,
        }
    }

    static NO_TORCH: TorchBaseline = TorchBaseline::Skipped(String::new());

    fn report<'a>(
        cpu: &'a CpuInfo,
        peak: &'a Peak,
        results: &'a [BenchResult],
        baseline: &'a Baseline,
    ) -> Report<'a> {
        Report {
            cpu,
            peak,
            results,
            baseline,
            var_torch: &NO_TORCH,
            command: "cargo xtask bench".into(),
            run_started: None,
            load: None,
            rustc: None,
            git: None,
        }
    }

    /// 2 cores × 32 FLOP/cycle × 2.5 GHz = 160 GFLOP/s.
    fn test_peak() -> Peak {
        Peak {
            fma_pipes: 2,
            lanes: 8,
            cores: 2,
            ghz: 2.5,
            ghz_source: machine::GHZ_FROM_CPUINFO,
            assumption: "test".into(),
        }
    }

    #[test]
    fn notes_are_kept() {
        let cpu = CpuInfo::default();
        let peak = crate::machine::peak(&cpu);
        let results = [result(
            "arvis-core/matmul/cpu/2x2x2",
            1e-6,
            Throughput::Flops(16),
        )];
        let baseline = Baseline::Skipped("test".into());
        let r = report(&cpu, &peak, &results, &baseline);
        let prev = format!("old table\n{NOTES_MARKER}\nmy notes\n");
        let out = render(&r, Some(&prev));
        assert!(out.ends_with(&format!("{NOTES_MARKER}\nmy notes\n")));
        assert!(!out.contains("old table"));
        assert!(out.contains("| `arvis-core/matmul/cpu/2x2x2` | 1.000 µs ±0% | 0.0 |"));
        assert!(render(&r, None).contains("## Notes"));
    }

    #[test]
    fn compute_peak_selection() {
        let peak = test_peak();
        let matmul = result(
            "arvis-core/matmul/cpu/8x8x8",
            1e-3,
            Throughput::Flops(1 << 20),
        );
        // No fma_peak: the theoretical figure.
        assert_eq!(
            compute_peak(std::slice::from_ref(&matmul), &peak, None),
            ComputePeak::Theoretical(160e9)
        );
        // fma_peak present: its rate, whatever the theoretical peak says.
        let fma = result(
            "arvis-core/fma_peak/cpu/2",
            5e-3,
            Throughput::Flops(1_000_000_000),
        );
        let results = [matmul.clone(), fma.clone()];
        let ComputePeak::Measured(m) = compute_peak(&results, &peak, None) else {
            panic!("fma_peak must be used");
        };
        assert_eq!(m.id, "arvis-core/fma_peak/cpu/2");
        assert!((m.rate - 200e9).abs() < 1.0);
        assert!(!m.stale);
        assert_eq!(
            compute_peak(&results, &peak, None).label(),
            "measured FMA peak (200 GFLOP/s)"
        );
        // A result older than this run still counts, marked stale.
        let t0 = UNIX_EPOCH + std::time::Duration::from_secs(1000);
        let mut old = fma.clone();
        old.modified = Some(t0);
        let later = Some(t0 + std::time::Duration::from_secs(1));
        let picked = compute_peak(&[matmul.clone(), old.clone()], &peak, later);
        assert!(matches!(
            picked,
            ComputePeak::Measured(Reference { stale: true, .. })
        ));
        // Several (another thread count from an older run): the newest wins.
        let mut new = result(
            "arvis-core/fma_peak/cpu/4",
            5e-3,
            Throughput::Flops(2_000_000_000),
        );
        new.modified = later;
        let ComputePeak::Measured(m) = compute_peak(&[old, new, matmul], &peak, None) else {
            panic!("fma_peak must be used");
        };
        assert_eq!(m.id, "arvis-core/fma_peak/cpu/4");
        // A zero time cannot be a peak.
        let broken = result("arvis-core/fma_peak/cpu/2", 0.0, Throughput::Flops(1));
        assert_eq!(
            compute_peak(&[broken], &peak, None),
            ComputePeak::Theoretical(160e9)
        );
    }

    #[test]
    fn compute_ops_are_rated_against_the_measured_fma_peak() {
        let cpu = CpuInfo::parse(
            "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n\
             flags\t\t: avx2 fma avx512f\n",
        );
        let peak = test_peak();
        let baseline = Baseline::Skipped("test".into());
        let matmul = result(
            "arvis-core/matmul/cpu/8x8x8",
            1e-3,
            Throughput::Flops(100_000_000),
        );
        let fma = result(
            "arvis-core/fma_peak/cpu/2",
            5e-3,
            Throughput::Flops(1_000_000_000),
        );
        let copy = result(
            "arvis-core/stream_copy/cpu/64",
            1e-3,
            Throughput::Bytes(20_000_000),
        );
        let results = [matmul.clone(), fma, copy];
        let out = render(&report(&cpu, &peak, &results, &baseline), None);
        // 100 GFLOP/s of a measured 200 GFLOP/s.
        assert!(out.contains("| arvis GFLOP/s | % of measured FMA peak (200 GFLOP/s) |"));
        assert!(out.contains("| `arvis-core/matmul/cpu/8x8x8` | 1.000 ms ±0% | 100.0 | 50 % |"));
        assert!(out.contains("**200.0 GFLOP/s**, `arvis-core/fma_peak/cpu/2`"));
        assert!(out.contains("effective clock of 3.12 GHz"));
        assert!(out.contains("- **Theoretical peak f32 (secondary):** 2 cores × 32 FLOP/cycle"));
        assert!(out.contains("**160.0 GFLOP/s**"));
        assert!(!out.contains("Effective clock:"));
        // The references get their own table, not rated against themselves.
        assert!(!out.contains("## arvis-core/fma_peak"));
        assert!(!out.contains("## arvis-core/stream_copy"));
        assert!(out.contains(
            "| `arvis-core/fma_peak/cpu/2` | 5.000 ms ±0% | 200.0 GFLOP/s | compute peak:"
        ));
        assert!(out.contains("| `arvis-core/stream_copy/cpu/64` | 1.000 ms ±0% | 20.0 GB/s |"));

        // Filtered run without fma_peak: the theoretical peak, said so, > 100 % explained.
        let fast = result(
            "arvis-core/matmul/cpu/8x8x8",
            1e-3,
            Throughput::Flops(200_000_000),
        );
        let out = render(&report(&cpu, &peak, &[fast], &baseline), None);
        assert!(out.contains("| arvis GFLOP/s | % of theoretical peak (160 GFLOP/s) |"));
        assert!(out.contains("| 200.0 | 125 % |"));
        assert!(out.contains("`fma_peak` was not measured"));
        assert!(out.contains("- **Effective clock:** the best measured rate (200.0 GFLOP/s)"));
        assert!(!out.contains("## Machine references"));
    }
}
