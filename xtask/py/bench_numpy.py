#!/usr/bin/env python3
"""numpy (float32) baseline for the arvis core-op benches.

Times the same shapes as `benches/benches/core_ops.rs`, under the same ids
(`arvis-core/<op>/cpu/<shape>`), and prints ONE JSON object on stdout:

    {"<id>": {"median_s": float, "flops": int, "bytes": int (memory-bound ops only),
              "impl": str}, ...,
     "_info": {...numpy version, BLAS library/kernel/threads...}}

Each case: a few warm-up calls, then the median of N timed repetitions (N grows for fast
cases up to a time budget). BLAS and OpenMP are limited to `--threads` (default 2, like the
rayon pool of the reference machine) through the environment *before* numpy is imported,
and through threadpoolctl as well when it is importable.

Implementation notes:
- matmul / linear: `a @ b` / `x @ w.T + b` (BLAS sgemm).
- conv2d: im2col (numpy strided view copied to a [C*9, H*W] matrix) + BLAS sgemm; this is
  what a straightforward numpy port does, not a tuned direct convolution.
- layer_norm / softmax: vectorised numpy (several passes over memory, each allocating a
  temporary), i.e. what numpy users get, not a fused kernel.
- stream_copy is not timed here (numpy's copy is single-threaded; the reference belongs to
  the Rust run).

Usage: bench_numpy.py [--threads N] [--filter REGEX] [--budget-s SECONDS]
"""

import argparse
import json
import os
import re
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads (default 2)")
    p.add_argument("--filter", default=None, help="only ids matching this regex (re.search)")
    p.add_argument(
        "--budget-s", type=float, default=1.5, help="timed seconds per case (default 1.5)"
    )
    p.add_argument("--min-reps", type=int, default=10, help="minimum timed repetitions")
    return p.parse_args()


ARGS = parse_args()

# Must happen before numpy (and its BLAS) is imported.
for var in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
):
    os.environ[var] = str(ARGS.threads)

try:
    import numpy as np
except ImportError as e:  # the xtask checks for this before calling us
    print(f"bench_numpy.py: numpy is not importable: {e}", file=sys.stderr)
    sys.exit(3)

try:
    import threadpoolctl
except ImportError:
    threadpoolctl = None


# ----------------------------------------------------------------------------- cases
# FLOP / byte conventions match `benches/src/lib.rs`.

F32 = 4


def matmul_flops(m, k, n):
    return 2 * m * n * k


def shape_id(dims):
    return "x".join(str(d) for d in dims)


def case_matmul(rng, n):
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return (
        f"arvis-core/matmul/cpu/{shape_id([n, n, n])}",
        lambda: a @ b,
        {"flops": matmul_flops(n, n, n), "impl": "a @ b (BLAS sgemm)"},
    )


def case_linear(rng, m, k, n):
    x = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((n, k), dtype=np.float32)
    b = rng.standard_normal((n,), dtype=np.float32)
    return (
        f"arvis-core/linear/cpu/{shape_id([m, k, n])}",
        lambda: x @ w.T + b,
        {"flops": matmul_flops(m, k, n), "impl": "x @ w.T + b (BLAS sgemm)"},
    )


def conv2d_im2col(x, w, b):
    """3x3 stride-1 pad-1 conv, NCHW, batch 1: im2col + one sgemm."""
    _, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x[0], ((0, 0), (1, 1), (1, 1)))
    # [C, H, W, kh, kw] view -> [C, kh, kw, H, W] -> contiguous [C*kh*kw, H*W]
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
    cols = np.ascontiguousarray(win.transpose(0, 3, 4, 1, 2)).reshape(c * kh * kw, h * wd)
    y = w.reshape(o, c * kh * kw) @ cols
    y += b[:, None]
    return y.reshape(1, o, h, wd)


def case_conv2d(rng, ch, hw):
    x = rng.standard_normal((1, ch, hw, hw), dtype=np.float32)
    w = rng.standard_normal((ch, ch, 3, 3), dtype=np.float32)
    b = rng.standard_normal((ch,), dtype=np.float32)
    return (
        f"arvis-core/conv2d/cpu/{shape_id([1, ch, hw, hw])}_o{ch}",
        lambda: conv2d_im2col(x, w, b),
        {"flops": 2 * ch * ch * 9 * hw * hw, "impl": "im2col + BLAS sgemm"},
    )


def layer_norm(x, w, b, eps):
    mean = x.mean(axis=-1, keepdims=True)
    xc = x - mean
    var = np.mean(xc * xc, axis=-1, keepdims=True)
    y = xc * (1.0 / np.sqrt(var + eps))
    y *= w
    y += b
    return y


def case_layer_norm(rng, rows, cols):
    x = rng.standard_normal((rows, cols), dtype=np.float32)
    w = rng.standard_normal((cols,), dtype=np.float32)
    b = rng.standard_normal((cols,), dtype=np.float32)
    eps = np.float32(1e-6)
    return (
        f"arvis-core/layer_norm/cpu/{shape_id([rows, cols])}",
        lambda: layer_norm(x, w, b, eps),
        {"flops": 8 * x.size, "bytes": 2 * F32 * x.size, "impl": "vectorised numpy"},
    )


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def case_softmax(rng, rows, cols):
    x = rng.standard_normal((rows, cols), dtype=np.float32)
    return (
        f"arvis-core/softmax/cpu/{shape_id([rows, cols])}",
        lambda: softmax(x),
        {"flops": 5 * x.size, "bytes": 2 * F32 * x.size, "impl": "vectorised numpy"},
    )


def cases(rng):
    for n in (256, 512, 1024):
        yield lambda n=n: case_matmul(rng, n)
    yield lambda: case_linear(rng, 680, 1024, 4096)
    for ch, hw in ((128, 64), (64, 128)):
        yield lambda ch=ch, hw=hw: case_conv2d(rng, ch, hw)
    for rows in (680, 4096):
        yield lambda rows=rows: case_layer_norm(rng, rows, 1024)
    yield lambda: case_softmax(rng, 16 * 680, 680)


# ----------------------------------------------------------------------------- timing


def time_median(fn, budget_s, min_reps):
    for _ in range(3):  # warm-up: page faults, BLAS buffers, thread start-up
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < budget_s and len(times) < 1000):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    mid = len(times) // 2
    median = times[mid] if len(times) % 2 else 0.5 * (times[mid - 1] + times[mid])
    return median, len(times)


# ----------------------------------------------------------------------------- info


def blas_info():
    info = {}
    if threadpoolctl is not None:
        info["threadpoolctl"] = threadpoolctl.__version__
        info["threadpools"] = [
            {
                k: v
                for k, v in pool.items()
                if k
                in (
                    "user_api",
                    "internal_api",
                    "prefix",
                    "version",
                    "num_threads",
                    "threading_layer",
                    "architecture",  # OpenBLAS kernel/coretype, e.g. "SkylakeX", "Zen"
                    "filepath",
                )
            }
            for pool in threadpoolctl.threadpool_info()
        ]
    else:
        info["threadpoolctl"] = None
        try:
            cfg = np.show_config(mode="dicts")
            blas = cfg.get("Build Dependencies", {}).get("blas", {})
            info["show_config_blas"] = {
                k: blas.get(k) for k in ("name", "version", "openblas configuration")
            }
            simd = cfg.get("SIMD Extensions", {})
            info["simd_found"] = simd.get("found")
        except Exception as e:  # older numpy: no mode="dicts"
            info["show_config_error"] = repr(e)
    return info


def main():
    limiter = None
    if threadpoolctl is not None:
        limiter = threadpoolctl.threadpool_limits(limits=ARGS.threads)
    rng = np.random.default_rng(0)
    flt = re.compile(ARGS.filter) if ARGS.filter else None
    out = {}
    for make in cases(rng):
        case_id, fn, meta = make()
        if flt is not None and not flt.search(case_id):
            continue
        median, reps = time_median(fn, ARGS.budget_s, ARGS.min_reps)
        out[case_id] = {"median_s": median, "reps": reps, **meta}
        print(f"numpy {case_id}: {median * 1e3:.3f} ms (median of {reps})", file=sys.stderr)
    out["_info"] = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "threads": ARGS.threads,
        "env": {
            k: os.environ.get(k)
            for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE")
            if k in os.environ
        },
        "conv2d": "im2col + BLAS sgemm",
        "rowwise": "vectorised numpy (unfused)",
        **blas_info(),
    }
    if limiter is not None:
        limiter.restore_original_limits()
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
