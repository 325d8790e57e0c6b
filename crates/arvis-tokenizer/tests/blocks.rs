//! Each VQ-VAE block against a naive f64 re-implementation of the official module, loaded
//! through the official key names.

mod common;

use arvis_core::{Tensor, Tolerance};
use arvis_tokenizer::blocks::{AttnBlock, Downsample, GroupNorm, ResnetBlock, Upsample};
use common::*;

const EPS: f64 = 1e-6;

/// Random tensors under `prefix` with the given names and shapes (norm weights near 1).
fn tensors(prefix: &str, specs: &[(&str, Vec<usize>)], seed: u64) -> Vec<(String, Tensor)> {
    specs
        .iter()
        .enumerate()
        .map(|(i, (n, s))| {
            let t = randn(s, seed * 1000 + i as u64);
            let fan_in: usize = s.iter().skip(1).product();
            let t = if n.starts_with("norm") && n.ends_with("weight") {
                t.affine(0.2, 1.0)
            } else if s.len() == 4 {
                t.scale(1.0 / (fan_in as f32).sqrt())
            } else {
                t.scale(0.1)
            }
            .expect("CPU affine");
            (format!("{prefix}.{n}"), t)
        })
        .collect()
}

fn get<'a>(ts: &'a [(String, Tensor)], name: &str) -> &'a Tensor {
    &ts.iter()
        .find(|(n, _)| n.ends_with(name))
        .expect("test tensor present")
        .1
}

fn resnet_specs(cin: usize, cout: usize) -> Vec<(&'static str, Vec<usize>)> {
    let mut v = vec![
        ("norm1.weight", vec![cin]),
        ("norm1.bias", vec![cin]),
        ("conv1.weight", vec![cout, cin, 3, 3]),
        ("conv1.bias", vec![cout]),
        ("norm2.weight", vec![cout]),
        ("norm2.bias", vec![cout]),
        ("conv2.weight", vec![cout, cout, 3, 3]),
        ("conv2.bias", vec![cout]),
    ];
    if cin != cout {
        v.push(("nin_shortcut.weight", vec![cout, cin, 1, 1]));
        v.push(("nin_shortcut.bias", vec![cout]));
    }
    v
}

fn naive_resnet(x: &T4, ts: &[(String, Tensor)], groups: usize) -> T4 {
    let h = silu(&group_norm(
        x,
        groups,
        get(ts, "norm1.weight"),
        get(ts, "norm1.bias"),
        EPS,
    ));
    let h = conv_same(&h, get(ts, "conv1.weight"), get(ts, "conv1.bias"));
    let h = silu(&group_norm(
        &h,
        groups,
        get(ts, "norm2.weight"),
        get(ts, "norm2.bias"),
        EPS,
    ));
    let h = conv_same(&h, get(ts, "conv2.weight"), get(ts, "conv2.bias"));
    let short = if ts.iter().any(|(n, _)| n.contains("nin_shortcut")) {
        conv_same(
            x,
            get(ts, "nin_shortcut.weight"),
            get(ts, "nin_shortcut.bias"),
        )
    } else {
        x.clone()
    };
    short.add(&h)
}

#[test]
fn resnet_block_matches_naive() -> TestResult {
    for (cin, cout, seed) in [(8, 8, 1), (8, 16, 2), (16, 8, 3)] {
        let ts = tensors("enc.block", &resnet_specs(cin, cout), seed);
        let w = weights_from(&ts, None)?;
        let block = ResnetBlock::load(&w.scope("enc.block"), cin, cout, 4)?;
        let x = randn(&[2, cin, 6, 5], 100 + seed);
        let got = block.forward(&x)?;
        assert_eq!(got.shape(), &[2, cout, 6, 5]);
        let want = naive_resnet(&T4::from(&x), &ts, 4);
        check(Tolerance::MATMUL, "resnet", &got.to_vec(), &want.d)?;
    }
    Ok(())
}

#[test]
fn resnet_block_wrong_checkpoint_names_the_tensor() -> TestResult {
    // A checkpoint whose conv1 is for other channel counts.
    let mut ts = tensors("b", &resnet_specs(8, 16), 4);
    ts.retain(|(n, _)| !n.contains("nin_shortcut"));
    let w = weights_from(&ts, None)?;
    let err = ResnetBlock::load(&w.scope("b"), 8, 16, 4)
        .err()
        .ok_or("expected an error")?;
    let msg = err.to_string();
    assert!(msg.contains("b.nin_shortcut.weight"), "{msg}");
    let err = ResnetBlock::load(&w.scope("b"), 8, 8, 4)
        .err()
        .ok_or("expected an error")?;
    let msg = err.to_string();
    assert!(
        msg.contains("b.conv1.weight") && msg.contains("[8, 8, 3, 3]"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn attn_block_matches_naive() -> TestResult {
    let c = 16;
    let specs = vec![
        ("norm.weight", vec![c]),
        ("norm.bias", vec![c]),
        ("qkv.weight", vec![3 * c, c, 1, 1]),
        ("qkv.bias", vec![3 * c]),
        ("proj_out.weight", vec![c, c, 1, 1]),
        ("proj_out.bias", vec![c]),
    ];
    let ts = tensors("mid.attn_1", &specs, 7);
    let w = weights_from(&ts, None)?;
    let attn = AttnBlock::load(&w.scope("mid.attn_1"), c, 8)?;
    let x = randn(&[2, c, 5, 4], 8);
    let got = attn.forward(&x)?;

    // Official: qkv = conv(norm(x)); q, k, v = reshape(B, 3, C, H, W).unbind(1);
    // w[i, j] = Σ_c q[c, i] k[c, j] · C^-0.5; softmax over j; h[c, i] = Σ_j v[c, j] w[i, j].
    let xt = T4::from(&x);
    let xn = group_norm(&xt, 8, get(&ts, "norm.weight"), get(&ts, "norm.bias"), EPS);
    let qkv = conv_same(&xn, get(&ts, "qkv.weight"), get(&ts, "qkv.bias"));
    let hw = 20;
    let mut h = T4::zeros(2, c, 5, 4);
    for n in 0..2 {
        let at = |part: usize, ch: usize, p: usize| qkv.at(n, part * c + ch, p / 4, p % 4);
        for i in 0..hw {
            let logits: Vec<f64> = (0..hw)
                .map(|j| {
                    (0..c).map(|ch| at(0, ch, i) * at(1, ch, j)).sum::<f64>() / (c as f64).sqrt()
                })
                .collect();
            let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
            let s: f64 = e.iter().sum();
            for ch in 0..c {
                *h.at_mut(n, ch, i / 4, i % 4) = (0..hw).map(|j| at(2, ch, j) * e[j] / s).sum();
            }
        }
    }
    let want = xt.add(&conv_same(
        &h,
        get(&ts, "proj_out.weight"),
        get(&ts, "proj_out.bias"),
    ));
    check(Tolerance::MATMUL, "attn", &got.to_vec(), &want.d)
}

#[test]
fn downsample_pads_right_and_bottom() -> TestResult {
    let c = 4;
    let ts = tensors(
        "down.0.downsample",
        &[("conv.weight", vec![c, c, 3, 3]), ("conv.bias", vec![c])],
        9,
    );
    let w = weights_from(&ts, None)?;
    let down = Downsample::load(&w.scope("down.0.downsample"), c)?;
    for (h, wd) in [(8, 8), (6, 10)] {
        let x = randn(&[1, c, h, wd], 10);
        let got = down.forward(&x)?;
        assert_eq!(got.shape(), &[1, c, h / 2, wd / 2]);
        // F.pad(x, (0, 1, 0, 1)): padding (top 0, bottom 1, left 0, right 1), stride 2.
        let want = common::conv(
            &T4::from(&x),
            get(&ts, "conv.weight"),
            get(&ts, "conv.bias"),
            2,
            [0, 1, 0, 1],
        );
        check(Tolerance::MATMUL, "downsample", &got.to_vec(), &want.d)?;
    }
    Ok(())
}

#[test]
fn upsample_is_nearest_then_conv() -> TestResult {
    let c = 4;
    let ts = tensors(
        "up.1.upsample",
        &[("conv.weight", vec![c, c, 3, 3]), ("conv.bias", vec![c])],
        11,
    );
    let w = weights_from(&ts, None)?;
    let up = Upsample::load(&w.scope("up.1.upsample"), c)?;
    let x = randn(&[2, c, 3, 5], 12);
    let got = up.forward(&x)?;
    assert_eq!(got.shape(), &[2, c, 6, 10]);
    let xt = T4::from(&x);
    let mut near = T4::zeros(2, c, 6, 10);
    for n in 0..2 {
        for ch in 0..c {
            for y in 0..6 {
                for xx in 0..10 {
                    *near.at_mut(n, ch, y, xx) = xt.at(n, ch, y / 2, xx / 2);
                }
            }
        }
    }
    let want = conv_same(&near, get(&ts, "conv.weight"), get(&ts, "conv.bias"));
    check(Tolerance::MATMUL, "upsample", &got.to_vec(), &want.d)
}

#[test]
fn group_norm_uses_eps_1e6() -> TestResult {
    let c = 8;
    let ts = tensors("norm_out", &[("weight", vec![c]), ("bias", vec![c])], 13);
    let w = weights_from(&ts, None)?;
    let gn = GroupNorm::load(&w.scope("norm_out"), c, 2)?;
    // Tiny values: eps dominates the variance, so a wrong eps shows.
    let x = randn(&[1, c, 3, 3], 14).scale(1e-3)?;
    let got = gn.forward_silu(&x)?;
    let want = silu(&group_norm(&T4::from(&x), 2, &ts[0].1, &ts[1].1, 1e-6));
    check(Tolerance::ELEMENTWISE, "group_norm", &got.to_vec(), &want.d)
}
