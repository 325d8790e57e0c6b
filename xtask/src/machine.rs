//! Machine description and theoretical peak FLOP/s, from `/proc/cpuinfo` (no `lscpu`).
//!
//! The theoretical peak is secondary: the report prefers the `fma_peak` bench, which measures
//! the FMA throughput at the clock the cores actually run at.

use std::collections::{BTreeSet, HashSet};

/// What the report says about the CPU.
#[derive(Clone, Debug, Default)]
pub struct CpuInfo {
    /// `model name`.
    pub model_name: String,
    /// `vendor_id` (`AuthenticAMD`, `GenuineIntel`, ..).
    pub vendor: String,
    /// `cpu family`.
    pub family: Option<u32>,
    /// `model`.
    pub model: Option<u32>,
    /// `cpu MHz` of the first processor (in a VM: usually the nominal clock).
    pub mhz: Option<f64>,
    /// Feature flags (`flags` on x86, `Features` on aarch64).
    pub flags: HashSet<String>,
    /// Logical CPUs listed.
    pub logical: usize,
    /// Distinct (`physical id`, `core id`) pairs, i.e. physical cores (0 if not listed).
    pub physical_cores: usize,
}

impl CpuInfo {
    /// Reads `/proc/cpuinfo`; an unreadable file gives an empty description.
    pub fn read() -> Self {
        std::fs::read_to_string("/proc/cpuinfo")
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    /// Parses the text of `/proc/cpuinfo`.
    pub fn parse(text: &str) -> Self {
        let mut info = CpuInfo::default();
        let mut cores = BTreeSet::new();
        let mut phys = String::new();
        for line in text.lines() {
            let Some((key, val)) = line.split_once(':') else {
                continue;
            };
            let (key, val) = (key.trim(), val.trim());
            match key {
                "processor" => info.logical += 1,
                "model name" if info.model_name.is_empty() => info.model_name = val.into(),
                "vendor_id" if info.vendor.is_empty() => info.vendor = val.into(),
                "cpu family" if info.family.is_none() => info.family = val.parse().ok(),
                "model" if info.model.is_none() => info.model = val.parse().ok(),
                "cpu MHz" if info.mhz.is_none() => info.mhz = val.parse().ok(),
                "flags" | "Features" if info.flags.is_empty() => {
                    info.flags = val.split_whitespace().map(str::to_owned).collect();
                }
                "physical id" => phys = val.into(),
                "core id" => {
                    cores.insert((phys.clone(), val.to_owned()));
                }
                _ => {}
            }
        }
        info.physical_cores = cores.len();
        info
    }

    fn has(&self, flag: &str) -> bool {
        self.flags.contains(flag)
    }

    /// The widest SIMD extension present, for the report.
    pub fn simd_summary(&self) -> String {
        let wanted = [
            "avx512f",
            "avx512_bf16",
            "avx2",
            "fma",
            "avx",
            "sse4_2",
            "asimd",
            "sve",
        ];
        let found: Vec<&str> = wanted.into_iter().filter(|f| self.has(f)).collect();
        if found.is_empty() {
            "none detected".into()
        } else {
            found.join(" ")
        }
    }
}

/// Theoretical single-precision peak.
#[derive(Clone, Debug)]
pub struct Peak {
    /// FMA pipes per core.
    pub fma_pipes: u32,
    /// f32 lanes per pipe.
    pub lanes: u32,
    /// Cores counted.
    pub cores: usize,
    /// Clock, GHz.
    pub ghz: f64,
    /// Where the clock came from.
    pub ghz_source: &'static str,
    /// The micro-architectural assumption, in words.
    pub assumption: String,
}

impl Peak {
    /// f32 FLOPs per cycle per core: pipes × lanes × 2 (an FMA is a multiply and an add).
    pub fn flops_per_cycle(&self) -> u32 {
        self.fma_pipes * self.lanes * 2
    }

    /// Peak FLOP/s: FMA pipes × SIMD lanes × 2 × clock × cores.
    pub fn flops(&self) -> f64 {
        f64::from(self.flops_per_cycle()) * self.ghz * 1e9 * self.cores as f64
    }
}

/// f32 FMA throughput per core as `(pipes, lanes per pipe, explanation)`.
///
/// This is a table of micro-architectures, not a measurement; when in doubt it picks the
/// common case. The reference machine is an AMD EPYC Zen 4 (family 25): AVX-512 is supported
/// but executed on two 256-bit FMA pipes ("double pumped"), so 2 × 8 lanes × 2 = 32 f32
/// FLOP/cycle/core, the same as Zen 3 or an AVX2 Intel core.
pub fn fma_model(cpu: &CpuInfo) -> (u32, u32, String) {
    let amd = cpu.vendor == "AuthenticAMD" || cpu.vendor == "HygonGenuine";
    let intel = cpu.vendor == "GenuineIntel";
    let family = cpu.family.unwrap_or(0);
    let model = cpu.model.unwrap_or(0);
    if amd {
        match family {
            // Zen 5: full 512-bit datapath on desktop/server parts (mobile parts: 256-bit).
            26 if cpu.has("avx512f") => {
                return (2, 16, "AMD Zen 5: 2 x 512-bit FMA pipes".into());
            }
            25 if cpu.has("avx512f") => {
                return (
                    2,
                    8,
                    "AMD Zen 4: AVX-512 double-pumped on 2 x 256-bit FMA pipes".into(),
                );
            }
            25 | 26 => return (2, 8, "AMD Zen 3/5: 2 x 256-bit FMA pipes".into()),
            23 if model >= 0x30 => return (2, 8, "AMD Zen 2: 2 x 256-bit FMA pipes".into()),
            23 => return (2, 4, "AMD Zen 1: 2 x 128-bit FMA pipes (AVX2 split)".into()),
            _ => {}
        }
    }
    if cpu.has("avx512f") {
        let who = if intel { "Intel AVX-512" } else { "AVX-512" };
        return (
            2,
            16,
            format!("{who}: assumes 2 x 512-bit FMA units (some SKUs have 1)"),
        );
    }
    if cpu.has("avx2") && cpu.has("fma") {
        return (2, 8, "AVX2 + FMA: 2 x 256-bit FMA pipes".into());
    }
    if cpu.has("avx") {
        // No FMA: one 8-lane add and one 8-lane mul per cycle = 16 FLOP, modelled as 1 "FMA".
        return (
            1,
            8,
            "AVX without FMA: 1 x 256-bit add + 1 x 256-bit mul".into(),
        );
    }
    if cpu.has("asimd") {
        return (2, 4, "aarch64 NEON: assumes 2 x 128-bit FMA pipes".into());
    }
    (1, 4, "unknown CPU: assumes 1 x 128-bit FMA pipe".into())
}

/// [`Peak::ghz_source`] when the clock is `cpu MHz` of `/proc/cpuinfo`.
pub const GHZ_FROM_CPUINFO: &str = "/proc/cpuinfo `cpu MHz`";

/// Theoretical peak f32 FLOP/s of the cores this process may use.
///
/// Cores: the physical cores listed (SMT siblings share FMA pipes), capped by the CPUs this
/// process may run on. In a VM each vCPU is listed as a core; if the host gave two SMT
/// siblings of one physical core, the peak is overstated twice. Clock: `$ARVIS_PEAK_GHZ` or
/// `cpu MHz` (usually the base clock: boost can push measured FLOP/s above it, which is why
/// the report rates compute-bound ops against the measured `fma_peak` bench when it has one
/// and shows this figure as a secondary reference).
pub fn peak(cpu: &CpuInfo) -> Peak {
    let (fma_pipes, lanes, assumption) = fma_model(cpu);
    let allowed = std::thread::available_parallelism().map_or(1, usize::from);
    let listed = if cpu.physical_cores > 0 {
        cpu.physical_cores
    } else {
        cpu.logical.max(1)
    };
    let (ghz, ghz_source) = match std::env::var("ARVIS_PEAK_GHZ")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(g) => (g, "ARVIS_PEAK_GHZ"),
        None => match cpu.mhz {
            Some(mhz) => (mhz / 1000.0, GHZ_FROM_CPUINFO),
            None => (1.0, "unknown (1 GHz assumed)"),
        },
    };
    Peak {
        fma_pipes,
        lanes,
        cores: listed.min(allowed),
        ghz,
        ghz_source,
        assumption,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZEN4: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n\
        model\t\t: 17\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2596.130\nphysical id\t: 0\n\
        core id\t\t: 0\nflags\t\t: fpu sse avx avx2 fma avx512f\n\n\
        processor\t: 1\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n\
        model name\t: AMD EPYC\ncpu MHz\t\t: 2596.130\nphysical id\t: 0\ncore id\t\t: 1\n\
        flags\t\t: fpu sse avx avx2 fma avx512f\n";

    #[test]
    fn parses_zen4_cpuinfo() {
        let cpu = CpuInfo::parse(ZEN4);
        assert_eq!(cpu.logical, 2);
        assert_eq!(cpu.physical_cores, 2);
        assert_eq!(cpu.family, Some(25));
        assert_eq!(cpu.model, Some(17));
        assert_eq!(cpu.model_name, "AMD EPYC");
        assert!(cpu.has("avx512f"));
        let (pipes, lanes, _) = fma_model(&cpu);
        assert_eq!(pipes * lanes * 2, 32);
    }

    #[test]
    fn peak_formula() {
        let p = Peak {
            fma_pipes: 2,
            lanes: 8,
            cores: 2,
            ghz: 2.6,
            ghz_source: "test",
            assumption: String::new(),
        };
        assert!((p.flops() - 166.4e9).abs() < 1e3);
    }
}
