#!/usr/bin/env python3
"""Writes the MAR diffusion-head golden fixture from the official LTH14/mar code (random weights).

    /work/venv/bin/python xtask/py/golden_mar_head.py --mar-repo /path/to/mar [--out REPO_ROOT]

Output (relative to --out, default the repository root):
crates/arvis-heads/tests/golden/mar_head_tiny.safetensors, holding

- the weights of an official `DiffLoss(target_channels=16, z_channels=24, depth=3, width=64)`
  head under MAR's checkpoint prefix `diffloss.net.` (F32), every parameter re-randomised with
  seeded values (the official init zeroes the AdaLN and final layers, which would make every
  golden trivial);
- `golden.fwd.*`: one `forward(x, t, c)` with a different timestep per row, and
  `golden.cfg.out`: `forward_with_cfg` on the same inputs (cfg 3);
- `golden.sched.<n>.*`: the respaced schedule of `create_diffusion(str(n), "cosine")`
  (timestep_map, betas, posterior_log_variance_clipped) for the step counts sampled below;
- `golden.run.<name>.*`: recorded `DiffLoss.sample` runs (DDPM: the official entry point;
  DDIM: `gen_diffusion.ddim_sample_loop` set up exactly as `DiffLoss.sample` sets up
  `p_sample_loop`): `z` (the `[2B, 24]` or `[B, 24]` conditions), `init` (the initial noise of the
  `B` kept rows), `noise` `[steps, B, 16]` (the noise torch drew at respaced step i, stored at
  index i, first B rows: the rows MAR keeps), `sample` (the `B` kept tokens) and, for every step,
  `x` `[steps, rows, 16]` (the head's input) and `out` `[steps, rows, 32]` (the head's raw output,
  before guidance), also indexed by respaced step.

The `golden.run.*` chains come from a second head of the same shape under
`stable.diffloss.net.`, built by `stabilize` so that its chains stay O(1) (a random head's reach
|x_t| ~ 10⁵: see `stabilize`). Its outputs are also checked against the Rust head at every step.

The official code is imported from --mar-repo (tested at LTH14/mar fe470ac), never copied. CPU,
fp32, one thread; `.cuda()` is patched to a no-op (the reference hard-codes it).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT_PATH = "crates/arvis-heads/tests/golden/mar_head_tiny.safetensors"
HEAD = dict(target_channels=16, z_channels=24, depth=3, width=64)
# name: (method, respaced steps, B, cfg, temperature)
RUNS = {
    "ddpm100_cfg": ("ddpm", 100, 4, 4.0, 1.0),
    "ddpm100_plain": ("ddpm", 100, 4, 1.0, 0.95),
    "ddpm7_cfg": ("ddpm", 7, 3, 2.5, 0.8),
    "ddim20_cfg": ("ddim", 20, 3, 3.0, 1.0),
}


@torch.no_grad()
def randomize(net: nn.Module, g: torch.Generator) -> None:
    """Seeded values everywhere: linears N(0, 1/fan_in) (the final projection ×0.5 so the
    variance channel stays O(1)), biases N(0, 0.1²), LayerNorm weights 1 + N(0, 0.1²)."""
    for name, p in sorted(net.named_parameters()):
        if p.ndim == 2:
            gain = 0.5 if name.startswith("final_layer.linear") else 1.0
            p.copy_(torch.randn(p.shape, generator=g) * gain / p.shape[1] ** 0.5)
        elif name.endswith("in_ln.weight"):
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(0.1 * torch.randn(p.shape, generator=g))


@torch.no_grad()
def stabilize(net: nn.Module, g: torch.Generator, bias_norm: float = 100.0,
              ada_gain: float = 3e-4) -> None:
    """A head whose sampling chains stay O(1), like a trained one's.

    At t = 999, √(1/ᾱ) ≈ 2·10⁴: the first DDPM step multiplies x_t − ε by ~350, so a random
    head (ε unrelated to x_t) drives the chains to |x_t| ~ 10⁵, where the tokens are differences
    of huge states and the noise's effect is invisible. Here ε ≈ x_t·(1 − 8·10⁻⁴): `input_proj`
    maps x to Q·x (Q: orthonormal, zero-mean columns) plus a bias of norm 100 orthogonal to Q,
    which makes the final LayerNorm nearly linear in x; the ε rows of `final_layer.linear` are
    Qᵀ·100/√w; the AdaLN modulations are scaled by 3e-4, so the blocks (and the condition, and
    so CFG) perturb ε at the 1e-3 level: the chains peak at |x_t| ≈ 10 after the first step and
    contract to O(1) tokens. The rest keeps `randomize`'s values; the variance rows
    stay random (v is O(1)).
    """
    randomize(net, g)
    w, c = net.model_channels, net.in_channels
    a = torch.randn(w, c + 1, generator=g)
    q, _ = torch.linalg.qr(a - a.mean(0, keepdim=True))
    net.input_proj.weight.copy_(q[:, :c])
    net.input_proj.bias.copy_(q[:, c] * bias_norm)
    for lin in [b.adaLN_modulation[-1] for b in net.res_blocks] + [net.final_layer.adaLN_modulation[-1]]:
        lin.weight.mul_(ada_gain)
        lin.bias.mul_(ada_gain)
    net.final_layer.linear.weight[:c] = q[:, :c].T * bias_norm / w ** 0.5
    net.final_layer.linear.bias[:c] = 0.0


class Recorder:
    """Records torch.randn / torch.randn_like draws and the head's forward calls."""

    def __init__(self):
        self.randn = []
        self.randn_like = []
        self.calls = []
        self._randn = torch.randn
        self._randn_like = torch.randn_like

    def __enter__(self):
        def randn(*a, **k):
            t = self._randn(*a, **k)
            self.randn.append(t.clone())
            return t

        def randn_like(*a, **k):
            t = self._randn_like(*a, **k)
            self.randn_like.append(t.clone())
            return t

        torch.randn, torch.randn_like = randn, randn_like
        return self

    def __exit__(self, *exc):
        torch.randn, torch.randn_like = self._randn, self._randn_like


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mar-repo", required=True)
    ap.add_argument("--out", default=REPO_ROOT)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.Tensor.cuda = lambda self, *a, **k: self  # the reference hard-codes .cuda()
    torch.set_num_threads(1)
    sys.path.insert(0, os.path.abspath(args.mar_repo))
    from diffusion import create_diffusion  # noqa: E402  (official code)
    from models.diffloss import DiffLoss  # noqa: E402

    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed + 1)
    dl = DiffLoss(num_sampling_steps="100", **HEAD).eval()
    net = dl.net
    randomize(net, g)
    tensors = {f"diffloss.net.{k}": v.detach().clone().contiguous() for k, v in net.state_dict().items()}

    c, d = HEAD["target_channels"], HEAD["z_channels"]
    with torch.no_grad():
        x = torch.randn(8, c, generator=g)
        t = torch.tensor([0, 1, 10, 99, 500, 999, 250, 61])
        z = torch.randn(8, d, generator=g)
        tensors["golden.fwd.x"] = x
        tensors["golden.fwd.t"] = t.float()
        tensors["golden.fwd.z"] = z
        tensors["golden.fwd.out"] = net(x, t, z)
        tensors["golden.cfg.out"] = net.forward_with_cfg(x, t, z, 3.0)

    for steps in sorted({r[1] for r in RUNS.values()}):
        diff = create_diffusion(str(steps), "cosine")
        pre = f"golden.sched.{steps}"
        tensors[f"{pre}.timestep_map"] = torch.tensor(diff.timestep_map, dtype=torch.float32)
        tensors[f"{pre}.betas"] = torch.from_numpy(diff.betas).float()
        tensors[f"{pre}.posterior_log_variance_clipped"] = torch.from_numpy(
            diff.posterior_log_variance_clipped).float()

    # The sampling runs use a second head, built to keep the chains O(1) (see `stabilize`).
    stable = DiffLoss(num_sampling_steps="100", **HEAD).eval()
    stabilize(stable.net, g)
    tensors.update({f"stable.diffloss.net.{k}": v.detach().clone().contiguous()
                    for k, v in stable.net.state_dict().items()})
    dl, net = stable, stable.net
    forward = net.forward
    for name, (method, steps, b, cfg, temperature) in RUNS.items():
        guided = cfg != 1.0
        rows = 2 * b if guided else b
        z = torch.randn(rows, d, generator=g)
        dl.gen_diffusion = create_diffusion(str(steps), "cosine")
        rec = Recorder()

        def recording_forward(x, t, c, _rec=rec):
            out = forward(x, t, c)
            _rec.calls.append((x.clone(), t.clone(), out.clone()))
            return out

        net.forward = recording_forward
        with rec, torch.no_grad():
            if method == "ddpm":
                sample = dl.sample(z, temperature, cfg)
            else:
                # DiffLoss.sample's setup, with ddim_sample_loop in place of p_sample_loop.
                if guided:
                    noise = torch.randn(b, c)
                    noise = torch.cat([noise, noise], dim=0)
                    kwargs = dict(c=z, cfg_scale=cfg)
                    fn = net.forward_with_cfg
                else:
                    noise = torch.randn(b, c)
                    kwargs = dict(c=z)
                    fn = net.forward
                sample = dl.gen_diffusion.ddim_sample_loop(
                    fn, noise.shape, noise, clip_denoised=False, model_kwargs=kwargs,
                    progress=False, eta=0.0)
        del net.forward
        peak = max(float(cl[0].abs().max()) for cl in rec.calls)
        print(f"{name}: max |x_t| along the chain {peak:.2f}, max |sample| {float(sample[:b].abs().max()):.2f}")
        assert peak < 500.0, f"{name}: the chain diverged (max |x_t| = {peak})"
        assert len(rec.randn) == 1 and len(rec.calls) == steps, (len(rec.randn), len(rec.calls))
        timestep_map = dl.gen_diffusion.timestep_map
        # Draws and calls run from respaced step steps-1 down to 0: store them at index i.
        assert [int(cl[1][0]) for cl in rec.calls] == list(reversed(timestep_map))
        pre = f"golden.run.{name}"
        tensors[f"{pre}.z"] = z
        tensors[f"{pre}.init"] = rec.randn[0][:b]
        tensors[f"{pre}.noise"] = torch.stack([n[:b] for n in reversed(rec.randn_like)]) \
            if rec.randn_like else torch.zeros(steps, b, c)
        tensors[f"{pre}.sample"] = sample[:b]
        tensors[f"{pre}.x"] = torch.stack([cl[0] for cl in reversed(rec.calls)])
        tensors[f"{pre}.out"] = torch.stack([cl[2] for cl in reversed(rec.calls)])

    tensors = {k: v.float().contiguous() for k, v in tensors.items()}
    meta = {
        "arvis.family": "mar-head",
        "arvis.config": json.dumps({"token_channels": c, "z_channels": d,
                                    "width": HEAD["width"], "depth": HEAD["depth"]}),
        "arvis.golden": json.dumps({k: dict(zip(["method", "steps", "batch", "cfg", "temperature"], v))
                                    for k, v in RUNS.items()}),
        "arvis.source": (f"xtask/py/golden_mar_head.py --seed {args.seed} (LTH14/mar fe470ac, "
                         f"torch {torch.__version__}, CPU fp32)"),
    }
    path = os.path.join(args.out, OUT_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(tensors, path, metadata=meta)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
