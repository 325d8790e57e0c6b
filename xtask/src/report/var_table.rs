//! The VAR-d16 generation table: arvis (criterion) against the official PyTorch code, with the
//! split between the transformer loop and the VAE decode.

use std::fmt::Write as _;
use std::time::SystemTime;

use serde_json::Value;

use super::{ComputePeak, Refs, Report, fmt_time, is_stale, utc_date};
use crate::criterion::{BenchResult, Throughput};
use crate::machine::Peak;
use crate::var::{self, TorchBaseline, TorchRun};

/// The compute peak at [`var::THREADS`] threads and its column label: the measured `fma_peak`
/// scaled from its thread count (the last part of its id), or the theoretical peak scaled from
/// the core count.
fn peak_at_threads(compute: &ComputePeak, peak: &Peak) -> (f64, String) {
    let t = var::THREADS;
    let (flops, n) = match compute {
        ComputePeak::Measured(m) => (
            m.rate,
            m.id.rsplit('/')
                .next()
                .and_then(|s| s.parse::<usize>().ok()),
        ),
        ComputePeak::Theoretical(f) => (*f, Some(peak.cores)),
    };
    match n {
        Some(n) if n > 0 && n != t => {
            let scaled = flops * t.min(n) as f64 / n as f64;
            let kind = match compute {
                ComputePeak::Measured(_) => "measured FMA peak",
                ComputePeak::Theoretical(_) => "theoretical peak",
            };
            (
                scaled,
                format!(
                    "{kind} × {}/{n} threads ({:.0} GFLOP/s)",
                    t.min(n),
                    scaled / 1e9
                ),
            )
        }
        _ => (flops, compute.label()),
    }
}

/// The header line describing the PyTorch side.
pub fn summary(torch: &TorchBaseline, run_started: Option<SystemTime>) -> String {
    let run = match torch {
        TorchBaseline::Skipped(why) => return format!("not included: {why}."),
        TorchBaseline::Ran(run) => run,
    };
    let info = &run.info;
    let text = |k: &str| {
        info.get(k)
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "?".into())
    };
    let weights = run.weights.as_deref().unwrap_or("?");
    let when = match (&run.cached, run_started) {
        (None, _) => format!(
            "Timed in this run; the criterion VAR benches loaded the same file \
             (`{}`).",
            var::WEIGHTS_ENV
        ),
        (Some(why), Some(_)) => format!(
            "† Not re-run ({why}): the result cached on {} in \
             `target/bench-data/var_torch.json`.",
            utc_date(run.unix_time)
        ),
        (Some(_), None) => format!(
            "Result of {} (cached in `target/bench-data/var_torch.json`).",
            utc_date(run.unix_time)
        ),
    };
    format!(
        "official FoundationVision/VAR @ {} (`autoregressive_infer_cfg`, fp32, CPU), torch {} \
         (python {}), {} threads, B={}, class {}, cfg {}, top-k {}, top-p {}; median of {} runs \
         after {} warm-up; weights `{weights}`. {when}",
        text("var_revision"),
        text("torch"),
        text("python"),
        text("threads"),
        text("batch"),
        text("label"),
        text("cfg"),
        text("top_k"),
        text("top_p"),
        text("runs"),
        text("warmup"),
    )
}

/// FLOPs of a result (criterion's "elements").
fn flops(b: &BenchResult) -> Option<f64> {
    match b.throughput {
        Some(Throughput::Flops(n)) if n > 0 => Some(n as f64),
        _ => None,
    }
}

/// One row's numbers.
struct Row {
    label: String,
    stale: bool,
    arvis_s: f64,
    mad_s: Option<f64>,
    flops: Option<f64>,
    torch_s: Option<f64>,
    /// This step's share of the whole generation: arvis, PyTorch.
    share: (Option<f64>, Option<f64>),
}

/// Writes the table; returns whether any arvis row was stale.
pub fn table(s: &mut String, r: &Report<'_>, rows: &[&BenchResult], refs: &Refs) -> bool {
    let torch: Option<&TorchRun> = match r.var_torch {
        TorchBaseline::Ran(run) => Some(run),
        TorchBaseline::Skipped(_) => None,
    };
    let torch_stale = torch.is_some_and(|t| t.cached.is_some()) && r.run_started.is_some();
    let (peak, peak_label) = peak_at_threads(&refs.compute, r.peak);
    let find = |id: &str| rows.iter().find(|b| b.id == id).copied();
    let (generate, decode) = (find(var::GENERATE_ID), find(var::DECODE_ID));
    let arvis_total = generate.zip(decode).map(|(g, d)| g.median_s + d.median_s);
    let torch_total = torch.map(|t| t.total_s);
    let share = |part: Option<f64>, total: Option<f64>| {
        part.zip(total)
            .filter(|(_, t)| *t > 0.0)
            .map(|(p, t)| p / t)
    };

    // Transformer, decode, then any other VAR bench.
    let rank = |b: &BenchResult| match b.id.as_str() {
        var::GENERATE_ID => 0,
        var::DECODE_ID => 1,
        _ => 2,
    };
    let mut rows = rows.to_vec();
    rows.sort_by_key(|b| rank(b));
    let mut out: Vec<Row> = Vec::new();
    for b in &rows {
        let (label, torch_s) = if b.id == var::GENERATE_ID {
            ("transformer loop", torch.map(|t| t.transformer_s))
        } else if b.id == var::DECODE_ID {
            ("VQ-VAE decode", torch.map(|t| t.decode_s))
        } else {
            ("", None)
        };
        let known = !label.is_empty();
        out.push(Row {
            label: if known {
                format!("{label}: `{}`", b.id)
            } else {
                format!("`{}`", b.id)
            },
            stale: is_stale(r.run_started, b),
            arvis_s: b.median_s,
            mad_s: Some(b.mad_s),
            flops: flops(b),
            torch_s,
            share: if known {
                (
                    share(Some(b.median_s), arvis_total),
                    share(torch_s, torch_total),
                )
            } else {
                (None, None)
            },
        });
    }
    if let (Some(g), Some(d), Some(total)) = (generate, decode, arvis_total) {
        out.push(Row {
            label: "**total** (transformer + decode)".into(),
            stale: is_stale(r.run_started, g) || is_stale(r.run_started, d),
            arvis_s: total,
            mad_s: None,
            flops: flops(g).zip(flops(d)).map(|(a, b)| a + b),
            torch_s: torch_total,
            share: (Some(1.0), torch_total.map(|_| 1.0)),
        });
    }

    let _ = writeln!(
        s,
        "## arvis-models: VAR-d16 generation (B=1, CFG, {} threads)\n",
        var::THREADS
    );
    s.push_str(
        "One 256×256 image of class 207 with classifier-free guidance (2 rows), cfg 4, top-k \
         900, top-p 0.96, random weights: the transformer loop (ten scales, KV cache, sampling, \
         up to the latent `f̂`) and the VQ-VAE decode. *split*: the step's share of the whole \
         generation.\n\n",
    );
    let pct_col = format!("% of {peak_label}");
    if torch.is_some() {
        let _ = writeln!(
            s,
            "| step | arvis median | arvis GFLOP/s | torch median | torch / arvis | split arvis \
             / torch | {pct_col} | torch {pct_col} |"
        );
        s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    } else {
        let _ = writeln!(
            s,
            "| step | arvis median | arvis GFLOP/s | split | {pct_col} |"
        );
        s.push_str("|---|---:|---:|---:|---:|\n");
    }
    let pct = |f: Option<f64>, t: f64| match f {
        Some(f) if t > 0.0 && peak > 0.0 => format!("{:.0} %", 100.0 * f / t / peak),
        _ => "–".into(),
    };
    let share_txt = |x: Option<f64>| x.map_or("–".into(), |x| format!("{:.0} %", 100.0 * x));
    let mut stale = false;
    for row in &out {
        stale |= row.stale;
        let label = format!("{}{}", row.label, if row.stale { " †" } else { "" });
        let median = match row.mad_s {
            Some(mad) if row.arvis_s > 0.0 => {
                format!(
                    "{} ±{:.0}%",
                    fmt_time(row.arvis_s),
                    100.0 * mad / row.arvis_s
                )
            }
            _ => fmt_time(row.arvis_s),
        };
        let rate = row
            .flops
            .filter(|_| row.arvis_s > 0.0)
            .map_or("–".into(), |f| format!("{:.1}", f / row.arvis_s / 1e9));
        if torch.is_some() {
            let dagger = if torch_stale { " †" } else { "" };
            let _ = writeln!(
                s,
                "| {label} | {median} | {rate} | {} | {} | {} / {} | {} | {} |",
                row.torch_s
                    .map_or("–".into(), |t| format!("{}{dagger}", fmt_time(t))),
                row.torch_s
                    .filter(|_| row.arvis_s > 0.0)
                    .map_or("–".into(), |t| format!("{:.2}×", t / row.arvis_s)),
                share_txt(row.share.0),
                share_txt(row.share.1),
                pct(row.flops, row.arvis_s),
                row.torch_s.map_or("–".into(), |t| pct(row.flops, t)),
            );
        } else {
            let _ = writeln!(
                s,
                "| {label} | {median} | {rate} | {} | {} |",
                share_txt(row.share.0),
                pct(row.flops, row.arvis_s),
            );
        }
    }
    s.push('\n');
    if torch_stale {
        s.push_str(
            "† in a torch column: the PyTorch result was not re-run by this command (see the \
             header), it is the cached one.\n\n",
        );
    }
    stale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Baseline;
    use crate::machine::{self, CpuInfo};
    use crate::report::{NOTES_MARKER, render};
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    fn result(id: &str, median_s: f64, flops: u64) -> BenchResult {
        BenchResult {
            id: id.into(),
            group: id.rsplitn(3, '/').nth(2).unwrap_or(id).into(),
            median_s,
            mad_s: 0.0,
            throughput: Some(Throughput::Flops(flops)),
            modified: None,
        }
    }

    fn torch_run(cached: Option<&str>) -> TorchRun {
        TorchRun {
            transformer_s: 12.0,
            decode_s: 4.0,
            total_s: 16.0,
            info: json!({"torch": "2.15.0", "threads": 2, "batch": 1, "runs": 3, "warmup": 1,
                         "var_revision": "78b9539", "python": "3.11.7", "label": 207,
                         "cfg": 4.0, "top_k": 900, "top_p": 0.96}),
            unix_time: 0,
            weights: Some("/w.safetensors".into()),
            cached: cached.map(str::to_owned),
        }
    }

    fn peak() -> Peak {
        Peak {
            fma_pipes: 2,
            lanes: 8,
            cores: 2,
            ghz: 2.5,
            ghz_source: machine::GHZ_FROM_CPUINFO,
            assumption: "test".into(),
        }
    }

    fn render_with(results: &[BenchResult], torch: &TorchBaseline, started: bool) -> String {
        let cpu = CpuInfo::default();
        let peak = peak();
        let baseline = Baseline::Skipped("test".into());
        let r = Report {
            cpu: &cpu,
            peak: &peak,
            results,
            baseline: &baseline,
            var_torch: torch,
            command: "cargo xtask bench".into(),
            run_started: started.then(|| UNIX_EPOCH + Duration::from_secs(10)),
            load: None,
            rustc: None,
            git: None,
        };
        render(&r, Some(NOTES_MARKER))
    }

    fn results() -> Vec<BenchResult> {
        vec![
            // 200 GFLOP/s over 2 threads.
            result("arvis-core/fma_peak/cpu/2", 5e-3, 1_000_000_000),
            result(var::GENERATE_ID, 3.0, 300_000_000_000),
            result(var::DECODE_ID, 1.0, 100_000_000_000),
        ]
    }

    #[test]
    fn torch_columns_ratio_and_split() {
        let torch = TorchBaseline::Ran(torch_run(None));
        let out = render_with(&results(), &torch, false);
        assert!(out.contains("## arvis-models: VAR-d16 generation (B=1, CFG, 2 threads)"));
        assert!(out.contains("% of measured FMA peak (200 GFLOP/s)"));
        // 12 s / 3 s, 75 % of the arvis total, 100 GFLOP/s = 50 %; torch 25 GFLOP/s.
        assert!(out.contains(
            "| transformer loop: `arvis-models/var_generate/cpu/d16_b1_cfg` | 3.000 s ±0% | \
             100.0 | 12.00 s | 4.00× | 75 % / 75 % | 50 % | 12 % |"
        ));
        assert!(out.contains(
            "| **total** (transformer + decode) | 4.000 s | 100.0 | 16.00 s | 4.00× | 100 % / \
             100 % | 50 % | 12 % |"
        ));
        // Transformer, decode, total.
        let pos = |needle: &str| out.find(needle).unwrap_or(usize::MAX);
        assert!(pos("| transformer loop") < pos("| VQ-VAE decode"));
        assert!(pos("| VQ-VAE decode") < pos("| **total**"));
        // The generic tables do not repeat the VAR rows.
        assert!(!out.contains("## arvis-models/var_generate"));
        assert!(out.contains("torch 2.15.0 (python 3.11.7), 2 threads, B=1, class 207"));
        assert!(out.contains("Timed in this run"));
    }

    #[test]
    fn cached_torch_is_marked_and_skipped_torch_is_arvis_only() {
        let torch = TorchBaseline::Ran(torch_run(Some("--filter matmul matches neither")));
        let out = render_with(&results(), &torch, true);
        assert!(out.contains("| 12.00 s † | 4.00× |"));
        assert!(out.contains("† Not re-run (--filter matmul matches neither)"));
        assert!(out.contains("1970-01-01 00:00 UTC"));

        let torch = TorchBaseline::Skipped("ARVIS_VAR_REPO is not set".into());
        let out = render_with(&results(), &torch, false);
        assert!(out.contains("| step | arvis median | arvis GFLOP/s | split |"));
        assert!(out.contains(
            "| VQ-VAE decode: `arvis-models/var_decode/cpu/d16_b1` | 1.000 s ±0% | 100.0 | \
             25 % | 50 % |"
        ));
        assert!(
            out.contains("- **PyTorch VAR baseline:** not included: ARVIS_VAR_REPO is not set.")
        );
    }

    #[test]
    fn peak_is_scaled_to_the_bench_threads() {
        let compute = ComputePeak::Measured(super::super::Reference {
            id: "arvis-core/fma_peak/cpu/8".into(),
            rate: 800e9,
            stale: false,
        });
        let (f, label) = peak_at_threads(&compute, &peak());
        assert_eq!(f, 200e9);
        assert_eq!(label, "measured FMA peak × 2/8 threads (200 GFLOP/s)");
        let (f, _) = peak_at_threads(&ComputePeak::Theoretical(160e9), &peak());
        assert_eq!(f, 160e9);
    }
}
