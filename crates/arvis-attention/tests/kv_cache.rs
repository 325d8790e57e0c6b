//! The KV cache: the scale-by-scale identity with the block-causal full forward, rollback,
//! capacity and shape errors.

mod common;

use arvis_attention::{
    AttentionError, AttentionMask, BlockCausalMask, KvCache, sdpa, sdpa_reference,
};
use arvis_core::{Tensor, Tolerance};
use common::*;

const TOL: Tolerance = Tolerance::MATMUL;

/// Fills a cache scale by scale and checks that each scale's queries against the cache equal
/// the corresponding rows of the full block-causal forward, three ways: `attend` with no
/// mask, `attend` with the block-causal mask of the scales so far, `sdpa` on `keys()/values()`.
fn scale_by_scale(patch_nums: &[usize], b: usize, h: usize, d: usize, seed: u64) -> TestResult {
    let full_mask = BlockCausalMask::from_patch_nums(patch_nums);
    let l = full_mask.total_len();
    let [q, k, v] = qkv(b, h, l, l, d, seed);
    let scale = 1.0 / (d as f32).sqrt();
    let mask = AttentionMask::BlockCausal(full_mask.clone());
    let full = sdpa(&q, &k, &v, &mask, scale)?;
    TOL.check(
        &full.to_vec(),
        &sdpa_reference(&q, &k, &v, &mask, scale)?.to_vec(),
    )?;

    let mut cache = KvCache::new(b, h, d, l);
    let mut start = 0;
    for (si, &pn) in patch_nums.iter().enumerate() {
        let n = pn * pn;
        cache.append(&k.narrow(2, start, n)?, &v.narrow(2, start, n)?)?;
        assert_eq!(cache.len(), start + n);
        let qs = q.narrow(2, start, n)?;
        let want = full.narrow(2, start, n)?.to_vec();
        let prefix = AttentionMask::BlockCausal(full_mask.prefix(si + 1));
        let steps = [
            cache.attend(&qs, &AttentionMask::None, scale)?,
            cache.attend(&qs, &prefix, scale)?,
            sdpa(
                &qs,
                &cache.keys(),
                &cache.values(),
                &AttentionMask::None,
                scale,
            )?,
        ];
        for (way, got) in steps.iter().enumerate() {
            assert_eq!(got.shape(), &[b, h, n, d]);
            TOL.check(&got.to_vec(), &want)
                .map_err(|e| format!("{patch_nums:?} scale {si} way {way}: {e}"))?;
        }
        start += n;
    }
    assert_eq!(cache.remaining(), 0);
    assert_eq!(cache.keys().to_vec(), k.to_vec());
    assert_eq!(cache.values().to_vec(), v.to_vec());
    Ok(())
}

#[test]
fn cache_steps_equal_block_causal_forward() -> TestResult {
    scale_by_scale(&[1, 2, 3], 1, 1, 1, 1)?;
    scale_by_scale(&[1, 2, 3, 5, 7], 2, 3, 33, 2)?;
    scale_by_scale(&VAR_PATCH_NUMS, 2, 2, 64, 3)?;
    Ok(())
}

#[test]
fn truncate_then_append_reproduces() -> TestResult {
    let (b, h, d) = (2, 3, 16);
    let lens = [1, 4, 9, 16];
    let total: usize = lens.iter().sum();
    let [q, k, v] = qkv(b, h, total, total, d, 11);
    let mut cache = KvCache::new(b, h, d, total);
    cache.append(&k, &v)?;
    let last = lens[3];
    let q_last = q.narrow(2, total - last, last)?;
    let before = cache.attend(&q_last, &AttentionMask::None, 0.3)?.to_vec();

    // Roll back the last scale, append a wrong guess, roll back again, append the real one.
    let kept = total - last;
    cache.truncate(kept)?;
    assert_eq!(cache.len(), kept);
    assert_eq!(cache.keys().to_vec(), k.narrow(2, 0, kept)?.to_vec());
    let [_, wk, wv] = qkv(b, h, last, last, d, 99);
    cache.append(&wk, &wv)?;
    assert_ne!(
        cache.attend(&q_last, &AttentionMask::None, 0.3)?.to_vec(),
        before
    );
    cache.truncate(kept)?;
    cache.append(&k.narrow(2, kept, last)?, &v.narrow(2, kept, last)?)?;
    assert_eq!(
        cache.attend(&q_last, &AttentionMask::None, 0.3)?.to_vec(),
        before
    );
    assert_eq!(cache.keys().to_vec(), k.to_vec());
    assert_eq!(cache.values().to_vec(), v.to_vec());

    cache.clear();
    assert!(cache.is_empty());
    assert_eq!(cache.keys().shape(), &[b, h, 0, d]);
    cache.append(&k, &v)?;
    assert_eq!(
        cache.attend(&q_last, &AttentionMask::None, 0.3)?.to_vec(),
        before
    );
    Ok(())
}

#[test]
fn capacity_and_shape_errors() -> TestResult {
    let (b, h, d) = (1, 2, 8);
    let mut cache = KvCache::new(b, h, d, 5);
    assert_eq!((cache.batch(), cache.heads(), cache.head_dim()), (b, h, d));
    assert_eq!(cache.capacity(), 5);
    assert_eq!(cache.keys().shape(), &[b, h, 0, d]);
    let kv3 = randn(&[b, h, 3, d], 1);
    cache.append(&kv3, &kv3)?;
    cache.append(&randn(&[b, h, 0, d], 2), &randn(&[b, h, 0, d], 2))?;
    let err = cache.append(&kv3, &kv3);
    assert!(
        matches!(
            err,
            Err(AttentionError::CacheFull {
                len: 3,
                added: 3,
                capacity: 5
            })
        ),
        "{err:?}"
    );
    assert_eq!(cache.len(), 3, "a failed append leaves the cache unchanged");
    assert_eq!(cache.keys().to_vec(), kv3.to_vec());

    let bad: [(&[usize], &[usize]); 5] = [
        (&[b, h, 1, d + 1], &[b, h, 1, d + 1]),
        (&[b, h + 1, 1, d], &[b, h + 1, 1, d]),
        (&[b + 1, h, 1, d], &[b + 1, h, 1, d]),
        (&[b, h, 1, d], &[b, h, 2, d]),
        (&[h, 1, d], &[h, 1, d]),
    ];
    for (ks, vs) in bad {
        let err = cache.append(&randn(ks, 3), &randn(vs, 4));
        assert!(
            matches!(err, Err(AttentionError::CacheShape { .. })),
            "{err:?}"
        );
        let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("KvCache::append") && msg.contains(&format!("{ks:?}")),
            "{msg}"
        );
    }
    assert_eq!(cache.len(), 3);

    let err = cache.truncate(4);
    assert!(
        matches!(
            err,
            Err(AttentionError::Truncate {
                requested: 4,
                len: 3
            })
        ),
        "{err:?}"
    );
    let q = randn(&[b, h, 4, d], 5);
    let err = cache.attend(&q, &AttentionMask::None, 1.0);
    assert!(
        matches!(err, Err(AttentionError::QueriesExceedKeys { .. })),
        "{err:?}"
    );
    let err = cache.attend(&randn(&[b, h, 1, d + 1], 5), &AttentionMask::None, 1.0);
    assert!(
        matches!(err, Err(AttentionError::CacheShape { .. })),
        "{err:?}"
    );
    let err = cache.attend(
        &randn(&[b, h, 1, d], 5),
        &AttentionMask::block_causal(&[1, 1]),
        1.0,
    );
    assert!(
        matches!(
            err,
            Err(AttentionError::MaskLength {
                covered: 2,
                lk: 3,
                ..
            })
        ),
        "{err:?}"
    );

    // Capacity too large to allocate: an error on the first append, not an abort.
    let mut huge = KvCache::new(1, 2, 4, usize::MAX / 4);
    let one = Tensor::zeros(&[1, 2, 1, 4]);
    let err = huge.append(&one, &one);
    assert!(
        matches!(err, Err(AttentionError::CacheTooLarge { .. })),
        "{err:?}"
    );
    assert!(huge.is_empty());
    Ok(())
}
