#!/usr/bin/env python3
"""Round-trip test for convert_klvae.py against the official MAR `AutoencoderKL` (plain asserts).

    /work/venv/bin/python xtask/py/test_convert_klvae.py --mar-repo /path/to/mar

Builds the golden fixture's tiny official model (same seed, so its weights equal the committed
fixture's `vae.*`), saves it in the release format (`{"model": state_dict}`, plus a stray
training-loss key), runs the converter CLI and checks keys, values, dtypes and metadata against
the fixture; infers the config of a full-size official KL-16; then the failure modes.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert_klvae as ck  # noqa: E402
import golden_klvae as gk  # noqa: E402

FIXTURE = os.path.join(gk.REPO_ROOT, gk.OUT_PATH)
TINY_FLAGS = ("--norm-groups", str(gk.TINY_GROUPS), "--resolution", str(gk.TINY["resolution"]))


def run_cli(*argv: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return ck.main(list(argv))


def read(path: str):
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mar-repo", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with contextlib.redirect_stdout(io.StringIO()):  # the official Decoder prints z's shape
        vae = gk.import_official(args.mar_repo)
        model = gk.build_tiny(vae, gk.TINY)
    gk.randomize(model, torch.Generator().manual_seed(0))  # the fixture's default seed
    sd = model.state_dict()
    fixture, fixture_meta = read(FIXTURE)

    with tempfile.TemporaryDirectory() as tmp:
        ckpt, out = os.path.join(tmp, "kl.ckpt"), os.path.join(tmp, "out.safetensors")
        torch.save({"model": {**sd, "loss.discriminator.main.0.weight": torch.zeros(2)}}, ckpt)
        assert run_cli("--ckpt", ckpt, "--out", out, *TINY_FLAGS) == 0
        tensors, meta = read(out)
        assert set(tensors) == {f"vae.{k}" for k in sd}, sorted(set(tensors) ^ {f"vae.{k}" for k in sd})[:10]
        for k, v in sd.items():
            assert tensors[f"vae.{k}"].dtype == torch.float32 and torch.equal(tensors[f"vae.{k}"], v), k
        assert meta["arvis.family"] == "klvae"
        cfg = json.loads(meta["arvis.config"])
        assert cfg == {"vae": gk.arvis_config(gk.TINY)}, cfg
        # The converter's layout and config are the fixture's (which the Rust loader reads).
        assert cfg == json.loads(fixture_meta["arvis.config"])
        weights = {k: v for k, v in fixture.items() if k.startswith("vae.")}
        assert set(weights) == set(tensors)
        assert all(torch.equal(weights[k].float(), tensors[k]) for k in weights)

        # f16 output is exactly the fixture's; byte-reproducible.
        assert run_cli("--ckpt", ckpt, "--out", out + "2", *TINY_FLAGS, "--dtype", "f16") == 0
        t16, _ = read(out + "2")
        assert all(v.dtype == torch.float16 and torch.equal(v, weights[k]) for k, v in t16.items())
        assert run_cli("--ckpt", ckpt, "--out", out + "3", *TINY_FLAGS) == 0
        assert open(out, "rb").read() == open(out + "3", "rb").read()

        # Failure modes: each is a clean error (exit 2), no file written.
        def fails(bad_sd, *extra):
            path, bad = os.path.join(tmp, "bad.ckpt"), os.path.join(tmp, "bad.safetensors")
            torch.save({"model": bad_sd}, path)
            code = run_cli("--ckpt", path, "--out", bad, *extra)
            assert code == 2 and not os.path.exists(bad), (code, extra)

        fails({k: v for k, v in sd.items() if k != "decoder.up.1.block.0.nin_shortcut.weight"}, *TINY_FLAGS)
        fails({**sd, "encoder.extra.weight": torch.zeros(1)}, *TINY_FLAGS)  # unknown
        fails({**sd, "decoder.norm_out.weight": torch.zeros(3)}, *TINY_FLAGS)  # mis-shaped
        fails({**sd, "quant_conv.weight": torch.zeros(16, 32, 1, 1),
               "quant_conv.bias": torch.zeros(16)}, *TINY_FLAGS)  # not variational
        fails(sd)  # 32 groups do not divide ch 8
        # Attention is recorded relative to --resolution: the same keys at resolution 256 put
        # level 2 at 64×64 (what the official Encoder(resolution=256, attn_resolutions=(64,))
        # builds).
        assert run_cli("--ckpt", ckpt, "--out", out + "4", "--norm-groups", "4") == 0
        cfg256 = json.loads(read(out + "4")[1]["arvis.config"])["vae"]
        assert cfg256["encoder_attn_resolutions"] == [64] and cfg256["resolution"] == 256, cfg256

    # The release structure: a full-size official KL-16 (PyTorch's init; only shapes matter).
    with contextlib.redirect_stdout(io.StringIO()):
        vae_full = vae.AutoencoderKL(embed_dim=16, ch_mult=(1, 1, 2, 2, 4))
    full_sd = vae_full.state_dict()
    cfg = ck.infer_config(full_sd)
    assert cfg == dict(embed_dim=16, ch_mult=[1, 1, 2, 2, 4], ch=128, num_res_blocks=2, resolution=256,
                       encoder_attn_resolutions=[16], decoder_attn_resolutions=[], in_channels=3,
                       norm_groups=32, latent_scale=0.2325), cfg
    expected = ck.expected_shapes(cfg)
    assert len(expected) == len(full_sd) == 312
    assert all(tuple(full_sd[k].shape) == v for k, v in expected.items())
    print("test_convert_klvae: ok")


if __name__ == "__main__":
    main()
