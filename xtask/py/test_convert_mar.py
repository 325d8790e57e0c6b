#!/usr/bin/env python3
"""Round-trip test for convert_mar.py against the official MAR (plain asserts).

    /work/venv/bin/python xtask/py/test_convert_mar.py --mar-repo /path/to/mar

Builds the golden fixture's tiny official MAR and VAE (same seeds, so the same weights as
crates/arvis-models/tests/golden/mar_tiny.safetensors), saves them in the release formats
(`{model, model_ema, epoch, args}` with `model_ema` ≠ `model`, and `{"model": vae}`), runs the
converter CLI and checks keys, values, the EMA choice and the config against the fixture (whose
layout the Rust loader reads); infers the config of a full-size official MAR-B; then the failure
modes.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
from functools import partial

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert_mar as cm  # noqa: E402
import golden_klvae as gk  # noqa: E402
import golden_mar as gm  # noqa: E402
from golden_mar_head import stabilize  # noqa: E402

FIXTURE = os.path.join(gm.REPO_ROOT, gm.OUT_PATH)


def run_cli(*argv: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return cm.main(list(argv))


def read(path: str):
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mar-repo", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.Tensor.cuda = lambda self, *a, **k: self
    with contextlib.redirect_stdout(io.StringIO()):
        vae_mod = gk.import_official(args.mar_repo)
        gm.stub_scipy_stats()
        from models.mar import MAR, mar_base  # official code
        vae = gk.build_tiny(vae_mod, gk.TINY)
    gk.randomize(vae, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = MAR(norm_layer=partial(nn.LayerNorm, eps=1e-6), num_sampling_steps=str(gm.HEAD_STEPS),
                **gm.MAR_CFG, **gm.HEAD)
    gm.randomize_mar(model, g)
    stabilize(model.diffloss.net, g)
    ema = {k: v.clone() for k, v in model.state_dict().items()}
    raw = {k: v + 1.0 for k, v in ema.items()}  # so the test sees which one was taken
    fixture, fixture_meta = read(FIXTURE)

    with tempfile.TemporaryDirectory() as tmp:
        ckpt, vck, out = (os.path.join(tmp, n) for n in ("mar.pth", "kl.ckpt", "out.safetensors"))
        torch.save({"model": raw, "model_ema": ema, "epoch": 3,
                    "args": argparse.Namespace(model="mar_tiny")}, ckpt)
        torch.save({"model": vae.state_dict()}, vck)
        flags = ("--num-heads", "2", "--vae-resolution", "64", "--vae-norm-groups", str(gk.TINY_GROUPS))
        assert run_cli("--ckpt", ckpt, "--vae", vck, "--out", out, *flags) == 0
        tensors, meta = read(out)
        want = set(ema) | {f"vae.{k}" for k in vae.state_dict()}
        assert set(tensors) == want, sorted(set(tensors) ^ want)[:10]
        assert all(torch.equal(tensors[k], v) for k, v in ema.items())
        assert meta["arvis.family"] == "mar"
        cfg = json.loads(meta["arvis.config"])
        assert cfg == json.loads(fixture_meta["arvis.config"]), (cfg, fixture_meta["arvis.config"])
        assert set(fixture) - {k for k in fixture if k.startswith("golden.")} == set(tensors)
        assert all(torch.equal(fixture[k].float(), tensors[k]) for k in tensors)  # f16-exact values
        assert run_cli("--ckpt", ckpt, "--vae", vck, "--out", out + "2", "--key", "model", *flags) == 0
        assert torch.equal(read(out + "2")[0]["fake_latent"], raw["fake_latent"])

        def fails(bad_sd, *extra):
            path, bad = os.path.join(tmp, "bad.pth"), os.path.join(tmp, "bad.safetensors")
            torch.save({"model_ema": bad_sd}, path)
            code = run_cli("--ckpt", path, "--vae", vck, "--out", bad, *extra)
            assert code == 2 and not os.path.exists(bad), (code, extra)

        fails({k: v for k, v in ema.items() if k != "decoder_blocks.1.mlp.fc2.bias"}, *flags)
        fails({**ema, "encoder_blocks.0.attn.q_norm.weight": torch.ones(32)}, *flags)  # unknown
        fails({**ema, "mask_token": torch.zeros(1, 64)}, *flags)  # mis-shaped
        fails({k: v for k, v in ema.items() if k != "diffloss.net.res_blocks.1.in_ln.bias"}, *flags)
        fails(ema, "--vae-resolution", "64", "--vae-norm-groups", "4")  # width 64: heads unknown
        fails(ema, "--num-heads", "3", "--vae-resolution", "64", "--vae-norm-groups", "4")

    # The release structure: the official MAR-B with the B head (PyTorch's init; shapes only).
    full = mar_base(diffloss_d=6, diffloss_w=1024).state_dict()
    cfg = cm.infer_config(full)
    assert cfg == dict(img_size=256, vae_stride=16, patch_size=1, vae_embed_dim=16, encoder_embed_dim=768,
                       encoder_depth=12, encoder_num_heads=12, decoder_embed_dim=768, decoder_depth=12,
                       decoder_num_heads=12, mlp_ratio=4.0, class_num=1000, buffer_size=64,
                       norm_eps=1e-6), cfg
    expected = cm.expected_shapes(cfg, cm.head_config(full))
    assert len(expected) == len(full) == 364, (len(expected), len(full))
    assert all(tuple(full[k].shape) == v for k, v in expected.items())
    print("test_convert_mar: ok")


if __name__ == "__main__":
    main()
