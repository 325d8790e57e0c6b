#!/usr/bin/env python3
"""Round-trip test for convert_var.py against the official VAR / VQVAE classes (plain asserts).

    /work/venv/bin/python xtask/py/test_convert_var.py --var-repo /path/to/VAR

Builds tiny official models, saves them as `.pth` in the official release formats (bare
OrderedDicts, the VAR one including its buffers `lvl_1L`, `attn_bias_for_masking` and
`*.zero_k_bias`; the VAE one including `quantize.ema_vocab_hit_SV`; see models.md §1.5), runs
the converter CLI and checks keys, values, dtypes and metadata, then the failure modes.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert_var as cv  # noqa: E402
import var_official as vo  # noqa: E402


def run_cli(*argv: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return cv.main(list(argv))


def read(path: str):
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def check_roundtrip(vae, var, out: str, dtype: str) -> None:
    tensors, meta = read(out)
    want = {}
    for k, v in var.state_dict().items():
        if k not in ("lvl_1L", "attn_bias_for_masking") and not k.endswith("attn.zero_k_bias"):
            want[k] = v
    for k, v in vae.state_dict().items():
        if k != "quantize.ema_vocab_hit_SV":
            want[f"vae.{k}"] = v
    assert set(tensors) == set(want), (set(tensors) ^ set(want))
    for k, v in want.items():
        got = tensors[k]
        assert got.dtype == cv.DTYPES[dtype], (k, got.dtype)
        assert tuple(got.shape) == tuple(v.shape), k
        assert torch.equal(got, v.to(cv.DTYPES[dtype])), k
    assert meta["arvis.family"] == "var"
    assert "convert_var.py" in meta["arvis.source"]
    cfg = json.loads(meta["arvis.config"])
    assert cfg["vae"] == vo.vae_config_of(vae), cfg["vae"]
    exp_var = {"depth": len(var.blocks), "embed_dim": var.C, "num_heads": var.num_heads,
               "mlp_ratio": 4.0, "num_classes": var.num_classes, "norm_eps": 1e-6,
               "shared_aln": var.blocks[0].shared_aln, "attn_l2_norm": True,
               "patch_nums": list(var.patch_nums)}
    assert cfg["var"] == exp_var, cfg["var"]


def expect_error(fn, needle: str) -> None:
    try:
        fn()
    except cv.ConversionError as e:
        assert needle in str(e), f"expected {needle!r} in {e}"
        return
    raise AssertionError(f"no ConversionError (wanted {needle!r})")


# The tiny official VAE uses 8 GroupNorm groups (see var_official.TINY_NORM_GROUPS).
NG = ("--norm-groups", str(vo.TINY_NORM_GROUPS))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--var-repo", default=os.environ.get("VAR_REPO", "/work/var-ref"))
    args = ap.parse_args()
    models = vo.import_official(args.var_repo)
    g = torch.Generator().manual_seed(0)
    vae = vo.quiet_ctor(vo.build_tiny_vae, models)
    vo.randomize_vae(vae, g)
    n = 0
    with tempfile.TemporaryDirectory() as tmp:
        vae_pth = os.path.join(tmp, "vae.pth")
        torch.save(vae.state_dict(), vae_pth)  # bare OrderedDict, like vae_ch160v4096z32.pth

        # Both AdaLN variants, plus a non-tiny-default shape (depth 3, 64·depth, heads = depth).
        for shared, over in ((False, {}), (True, {}),
                             (False, dict(depth=3, embed_dim=192, num_heads=3))):
            var = vo.quiet_ctor(vo.build_tiny_var, models, vae, shared, **over)
            vo.randomize_var(var, g)
            var_pth = os.path.join(tmp, f"var_{n}.pth")
            torch.save(var.state_dict(), var_pth)  # bare OrderedDict with buffers, like var_d16.pth
            for dtype in ("f32", "f16", "bf16"):
                out = os.path.join(tmp, f"out_{n}_{dtype}.safetensors")
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # the official buffers must match the recomputed
                    rc = run_cli("--vae", vae_pth, "--var", var_pth, "--out", out, "--dtype", dtype,
                                 "--depth", str(len(var.blocks)), *NG)
                assert rc == 0
                check_roundtrip(vae, var, out, dtype)
            n += 1
        print(f"ok: round trip, {n} VAR variants × f32/f16/bf16")

        # A training checkpoint ({"trainer": {"var_wo_ddp": ..., "vae_local": ...}}) unwraps.
        var = vo.quiet_ctor(vo.build_tiny_var, models, vae, False)
        vo.randomize_var(var, g)
        trainer_pth = os.path.join(tmp, "ar-ckpt.pth")
        torch.save({"epoch": 1, "trainer": {"var_wo_ddp": var.state_dict(),
                                            "vae_local": vae.state_dict(), "config": {}}},
                   trainer_pth)
        out = os.path.join(tmp, "trainer.safetensors")
        assert run_cli("--vae", trainer_pth, "--var", trainer_pth, "--out", out, *NG) == 0
        check_roundtrip(vae, var, out, "f32")
        print("ok: training-checkpoint unwrap")

        # VAE only → family "vqvae", config {"vae": ...}.
        out = os.path.join(tmp, "vae.safetensors")
        assert run_cli("--vae", vae_pth, "--out", out, *NG) == 0
        tensors, meta = read(out)
        assert meta["arvis.family"] == "vqvae"
        assert json.loads(meta["arvis.config"]) == {"vae": vo.vae_config_of(vae)}
        assert set(tensors) == {f"vae.{k}" for k in vae.state_dict()
                                if k != "quantize.ema_vocab_hit_SV"}
        print("ok: VAE-only file")

        # save() is byte-reproducible: metadata / tensor insertion order does not matter.
        a, b = os.path.join(tmp, "a.safetensors"), os.path.join(tmp, "b.safetensors")
        ts = {"z": torch.arange(6.0).view(2, 3), "a": torch.ones(3, dtype=torch.float16),
              "m": torch.zeros(0)}
        cv.save(a, ts, {"x": "1", "arvis.family": "var"})
        cv.save(b, dict(reversed(list(ts.items()))), {"arvis.family": "var", "x": "1"})
        with open(a, "rb") as fa, open(b, "rb") as fb:
            assert fa.read() == fb.read()
        back, meta = read(a)
        assert meta == {"x": "1", "arvis.family": "var"}
        assert all(torch.equal(back[k], v) and back[k].dtype == v.dtype for k, v in ts.items())
        print("ok: reproducible writer")

        # The enumerated layouts equal the official ones exactly (keys, order-insensitive, shapes).
        vae_cfg = vo.vae_config_of(vae)
        assert {k: tuple(v.shape) for k, v in vae.state_dict().items()} == \
            dict(cv.expected_vae_shapes(vae_cfg))
        var_cfg = cv.infer_var_config(var.state_dict(), vo.PATCH_NUMS)
        assert {k: tuple(v.shape) for k, v in var.state_dict().items()} == \
            dict(cv.expected_var_shapes(var_cfg, vae_cfg))
        # The recomputed buffers equal the official ones bit for bit.
        for k, t in cv.recompute_var_buffers(vo.PATCH_NUMS).items():
            assert torch.equal(t, getattr(var, k)) and t.dtype == getattr(var, k).dtype, k
        assert cv.patch_nums_from_lvl(var.lvl_1L) == list(vo.PATCH_NUMS)
        print("ok: layouts and buffers equal the official ones")

        # Failure modes: unknown / missing / mis-shaped keys, wrong --depth, bad buffers.
        var_sd, vae_sd = var.state_dict(), vae.state_dict()
        bad = dict(var_sd, **{"blocks.0.attn.extra": torch.zeros(3)})
        expect_error(lambda: cv.convert(vae_sd, bad, norm_groups=vo.TINY_NORM_GROUPS), "unknown keys: blocks.0.attn.extra")
        bad = {k: v for k, v in var_sd.items() if k != "head.bias"}
        expect_error(lambda: cv.convert(vae_sd, bad, norm_groups=vo.TINY_NORM_GROUPS), "missing keys: head.bias")
        bad = {k: v for k, v in vae_sd.items() if k != "decoder.up.2.block.1.conv2.weight"}
        expect_error(lambda: cv.convert(bad, var_sd, norm_groups=vo.TINY_NORM_GROUPS), "missing keys: decoder.up.2.block.1.conv2")
        bad = dict(vae_sd, **{"decoder.norm_out.bias": torch.zeros(7)})
        expect_error(lambda: cv.convert(bad, var_sd, norm_groups=vo.TINY_NORM_GROUPS), "mis-shaped keys: decoder.norm_out.bias")
        bad = dict(var_sd, **{"pos_1LC": torch.zeros(1, 679, var.C)})
        expect_error(lambda: cv.convert(vae_sd, {k: v for k, v in bad.items() if k != "lvl_1L"},
                                            norm_groups=vo.TINY_NORM_GROUPS),
                     "disagree with pos_1LC")
        var_pth = os.path.join(tmp, "var_last.pth")
        torch.save(var_sd, var_pth)
        assert run_cli("--vae", vae_pth, "--var", var_pth, "--out",
                       os.path.join(tmp, "x.safetensors"), "--depth", "16") == 2
        # Buffers may be absent (recomputed) ...
        nobuf = {k: v for k, v in var_sd.items()
                 if k not in ("lvl_1L", "attn_bias_for_masking") and "zero_k_bias" not in k}
        t1, _ = cv.convert(vae_sd, nobuf, norm_groups=vo.TINY_NORM_GROUPS)
        t2, _ = cv.convert(vae_sd, var_sd, norm_groups=vo.TINY_NORM_GROUPS)
        assert set(t1) == set(t2)
        # ... but wrong ones warn.
        tampered = dict(var_sd)
        tampered["attn_bias_for_masking"] = torch.zeros_like(var_sd["attn_bias_for_masking"])
        tampered["blocks.1.attn.zero_k_bias"] = torch.ones(var.C)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            cv.convert(vae_sd, tampered, norm_groups=vo.TINY_NORM_GROUPS)
        msgs = " | ".join(str(x.message) for x in w)
        assert "attn_bias_for_masking differs" in msgs and "zero_k_bias is not all zeros" in msgs
        print("ok: failure modes")
    print("all convert_var tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
