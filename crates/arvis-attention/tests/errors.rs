//! Bad shapes and masks give errors that name the op and the shapes, from both the fused
//! kernel and the reference.

mod common;

use arvis_attention::{AttentionError, AttentionMask, Result, sdpa, sdpa_reference};
use arvis_core::Tensor;
use common::*;

type Sdpa = fn(&Tensor, &Tensor, &Tensor, &AttentionMask, f32) -> Result<Tensor>;

#[test]
fn bad_shapes_are_errors() -> TestResult {
    let ops: [(&str, Sdpa); 2] = [("sdpa", sdpa), ("sdpa_reference", sdpa_reference)];
    // (q, k, v, mask, expected variant, text the message must contain)
    type Case = (
        &'static [usize],
        &'static [usize],
        &'static [usize],
        AttentionMask,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            &[2, 4, 8],
            &[1, 2, 4, 8],
            &[1, 2, 4, 8],
            AttentionMask::None,
            "rank",
        ),
        (
            &[1, 2, 4, 8],
            &[1, 1, 2, 4, 8],
            &[1, 2, 4, 8],
            AttentionMask::None,
            "rank",
        ),
        (
            &[1, 2, 4, 8],
            &[1, 2, 4, 8],
            &[2, 4, 8],
            AttentionMask::None,
            "rank",
        ),
        (
            &[1, 2, 4, 8],
            &[1, 2, 4, 8],
            &[1, 2, 5, 8],
            AttentionMask::None,
            "same shape",
        ),
        (
            &[1, 2, 4, 8],
            &[1, 2, 4, 8],
            &[1, 2, 4, 9],
            AttentionMask::None,
            "same shape",
        ),
        (
            &[2, 2, 4, 8],
            &[1, 2, 4, 8],
            &[1, 2, 4, 8],
            AttentionMask::None,
            "B=2",
        ),
        (
            &[1, 3, 4, 8],
            &[1, 2, 4, 8],
            &[1, 2, 4, 8],
            AttentionMask::None,
            "H=3",
        ),
        (
            &[1, 2, 4, 7],
            &[1, 2, 4, 8],
            &[1, 2, 4, 8],
            AttentionMask::None,
            "head dims",
        ),
        (
            &[1, 2, 5, 8],
            &[1, 2, 4, 8],
            &[1, 2, 4, 8],
            AttentionMask::Causal,
            "5 queries but 4 keys",
        ),
        (
            &[1, 2, 1, 8],
            &[1, 2, 0, 8],
            &[1, 2, 0, 8],
            AttentionMask::None,
            "1 queries but 0 keys",
        ),
        (
            &[1, 2, 4, 8],
            &[1, 2, 4, 8],
            &[1, 2, 4, 8],
            AttentionMask::block_causal(&[1, 2]),
            "covers 3 positions",
        ),
        (
            &[1, 2, 4, 8],
            &[1, 2, 4, 8],
            &[1, 2, 4, 8],
            AttentionMask::block_causal(&[1, 4]),
            "covers 5 positions",
        ),
    ];
    for (name, op) in ops {
        for (qs, ks, vs, mask, text) in &cases {
            let (q, k, v) = (randn(qs, 1), randn(ks, 2), randn(vs, 3));
            let err = match op(&q, &k, &v, mask, 1.0) {
                Ok(t) => {
                    return Err(format!(
                        "{name}: {qs:?} {ks:?} {vs:?} {mask:?} gave {:?}",
                        t.shape()
                    )
                    .into());
                }
                Err(e) => e,
            };
            let msg = err.to_string();
            assert!(msg.starts_with(name) && msg.contains(text), "{name}: {msg}");
            let variant_ok = match &err {
                AttentionError::Rank { shape, .. } => [*qs, *ks, *vs].contains(&&shape[..]),
                AttentionError::Mismatch {
                    q: eq,
                    k: ek,
                    v: ev,
                    ..
                } => (eq, ek, ev) == (&qs.to_vec(), &ks.to_vec(), &vs.to_vec()),
                AttentionError::QueriesExceedKeys { q: eq, k: ek, .. } => {
                    (eq, ek) == (&qs.to_vec(), &ks.to_vec())
                }
                AttentionError::MaskLength { lk, .. } => *lk == ks[2],
                _ => false,
            };
            assert!(variant_ok, "{name}: {err:?}");
            // Shape errors print the offending shapes.
            if !matches!(err, AttentionError::MaskLength { .. }) {
                assert!(
                    msg.contains(&format!("{qs:?}"))
                        || msg.contains(&format!("{ks:?}"))
                        || msg.contains(&format!("{vs:?}")),
                    "{msg}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn core_errors_convert() {
    let core = Tensor::from_vec(vec![1.0], &[2]).err();
    let err: Option<AttentionError> = core.map(AttentionError::from);
    assert!(matches!(err, Some(AttentionError::Core(_))));
}
