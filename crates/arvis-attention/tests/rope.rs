//! LlamaGen's 2D RoPE on each device against a naive f64 rotation computed from the angles
//! directly (not from the table).

mod common;

use arvis_attention::{AttentionError, RopeTable, rope2d};
use arvis_core::{Device, Tensor, Tolerance};
use common::*;

/// The rotation of `x [.., L, D]` in f64: sequence row `l` is position `start + l`; positions
/// below `prefix` are zeroed (LlamaGen's class-token row), grid token `g = pos − prefix` at
/// `(g / width, g % width)` rotates pair `p < D/4` by `row·f_p`, the others by `col·f_{p−D/4}`,
/// `f_i = base^(−2i/(D/2))`, pairs interleaved `(x[2p], x[2p+1])`.
fn naive(x: &Tensor, width: usize, prefix: usize, start: usize, base: f64) -> Vec<f64> {
    let shape = x.shape();
    let (l, d) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let xs: Vec<f64> = x.to_vec().iter().map(|&v| f64::from(v)).collect();
    let mut out = vec![0.0; xs.len()];
    let quarter = d / 4;
    for (ri, row) in xs.chunks(d).enumerate() {
        let pos = start + ri % l;
        if pos < prefix {
            continue;
        }
        let g = pos - prefix;
        let (r, c) = ((g / width) as f64, (g % width) as f64);
        for p in 0..d / 2 {
            let (t, i) = if p < quarter {
                (r, p)
            } else {
                (c, p - quarter)
            };
            let angle = t * base.powf(-((2 * i) as f64) / (d / 2) as f64);
            let (x0, x1) = (row[2 * p], row[2 * p + 1]);
            out[ri * d + 2 * p] = x0 * angle.cos() - x1 * angle.sin();
            out[ri * d + 2 * p + 1] = x0 * angle.sin() + x1 * angle.cos();
        }
    }
    out
}

fn rope_case(device: Device) -> TestResult {
    // (grid, head dim, sequence length, start): a full forward from the class token, a decode
    // step of one token, a middle chunk.
    for (i, &(grid, d, l, start)) in [
        (4, 64, 17, 0),
        (4, 64, 1, 9),
        (5, 16, 7, 12),
        (16, 64, 20, 200),
    ]
    .iter()
    .enumerate()
    {
        let table = RopeTable::llamagen(grid, d, 10000.0, 1)?.to_device(device)?;
        assert_eq!(table.rows(), 1 + grid * grid);
        let x = randn(&[2, 3, l, d], 40 + i as u64);
        let got = rope2d(&x.to_device(device)?, &table, start)?;
        assert_eq!(got.device(), device);
        assert_eq!(got.shape(), x.shape());
        let want = naive(&x, grid, 1, start, 10000.0);
        Tolerance::ELEMENTWISE
            .check(&got.try_to_vec()?, &want)
            .map_err(|e| format!("{device:?} grid {grid} D={d} L={l} start {start}: {e}"))?;
    }
    // A non-square grid, no prefix, rank 3.
    let table = RopeTable::grid_2d(3, 5, 8, 100.0, 0)?.to_device(device)?;
    let x = randn(&[2, 15, 8], 3);
    let got = rope2d(&x.to_device(device)?, &table, 0)?;
    Tolerance::ELEMENTWISE.check(&got.try_to_vec()?, &naive(&x, 5, 0, 0, 100.0))?;
    Ok(())
}

device_tests! {
    rope2d_matches_naive_rotation: rope_case;
}

#[test]
fn llamagen_table_facts() -> TestResult {
    let t = RopeTable::llamagen(16, 64, 10000.0, 1)?;
    assert_eq!((t.rows(), t.pairs()), (257, 32));
    let (cos, sin) = (t.cos().to_vec(), t.sin().to_vec());
    // The class token's row is all zeros (its q and k vanish).
    assert!(cos[..32].iter().chain(&sin[..32]).all(|&v| v == 0.0));
    // Token (0, 0) is the identity.
    assert!(cos[32..64].iter().all(|&v| v == 1.0) && sin[32..64].iter().all(|&v| v == 0.0));
    // Token (r, c) = (2, 3): pair 0 by 2·1, pair 16 by 3·1, pair 1 by 2·10000^(−1/16).
    let row = (1 + 2 * 16 + 3) * 32;
    assert!((cos[row] - 2f32.cos()).abs() < 1e-6);
    assert!((sin[row + 16] - 3f32.sin()).abs() < 1e-6);
    let f1 = 10000f64.powf(-1.0 / 16.0);
    assert!((f64::from(sin[row + 1]) - (2.0 * f1).sin()).abs() < 1e-6);
    Ok(())
}

#[test]
fn rope_argument_errors() -> TestResult {
    assert!(matches!(
        RopeTable::llamagen(4, 6, 10000.0, 1),
        Err(AttentionError::Rope(_))
    ));
    let t = RopeTable::llamagen(2, 8, 10000.0, 1)?;
    let x = randn(&[1, 1, 3, 8], 1);
    assert!(rope2d(&x, &t, 2).is_ok());
    assert!(matches!(rope2d(&x, &t, 3), Err(AttentionError::Rope(_))));
    assert!(matches!(
        rope2d(&randn(&[1, 1, 3, 4], 1), &t, 0),
        Err(AttentionError::Rope(_))
    ));
    assert!(matches!(
        rope2d(&randn(&[8], 1), &t, 0),
        Err(AttentionError::Rope(_))
    ));
    if device_ready(Device::Gpu)? {
        let xg = x.to_device(Device::Gpu)?;
        assert!(matches!(
            rope2d(&xg, &t, 0),
            Err(AttentionError::Device { .. })
        ));
    }
    Ok(())
}
