#!/usr/bin/env bash
# The device-side half of `cargo xtask gpu-report` for a lent GPU machine that has PyTorch but no
# Rust toolchain (see docs/gpu.md, "On a lent GPU machine"). Run from the repository root there,
# with these carried (ignored) folders:
#   .gl/         the Vulkan loader .deb files (the device tool's README)
#   .device-bin/ gpu_report, built here: `cargo build --release -p arvis-benches --bin gpu_report`
#   .var-ref/    optional: a FoundationVision/VAR checkout, for the official VAR-d16 rows
#   .llamagen-ref/ optional: a FoundationVision/LlamaGen checkout, for the official GPT-B rows
# Writes arvis.json, torch.json, var_b1.json / var_b64.json and llamagen_b1.json / llamagen_b64.json to $OUT (default ./gpu-report-out);
# render the table here with `cargo xtask gpu-report --from <that folder>`.
set -uo pipefail
out="${OUT:-gpu-report-out}"
mkdir -p "$out"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
if [ -e /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv 2>&1 | tee "$out/nvidia-smi.txt"
./.device-bin/gpu_report --profile "$@" >"$out/arvis.json" 2> >(tee "$out/arvis.log" >&2)
python3 xtask/py/gpu_report_torch.py --device cuda >"$out/torch.json"
if [ -d .var-ref ]; then
    for b in 1 64; do
        python3 xtask/py/bench_var_torch.py --var-repo .var-ref --depth 16 --device cuda \
            --batch "$b" --runs 3 --warmup 1 >"$out/var_b$b.json"
    done
fi
if [ -d .llamagen-ref ]; then
    for b in 1 64; do
        python3 xtask/py/bench_llamagen_torch.py --llamagen-repo .llamagen-ref --device cuda \
            --batch "$b" --runs 3 --warmup 1 >"$out/llamagen_b$b.json"
    done
fi
ls -l "$out"
