//! Attention on every device against the f64 reference: the fused CPU kernel and the GPU flash
//! and decode kernels (`device_tests!`: `<case>::cpu`, `<case>::gpu`), every mask, odd sizes,
//! large scores, fully masked rows; the KV cache on each device. GPU shapes stay tiny: CI runs
//! them on lavapipe (a CPU Vulkan driver).

mod common;

use arvis_attention::{
    AttentionError, AttentionMask, ExplicitMask, GpuKernel, KvCache, sdpa, sdpa_reference,
    sdpa_with_kernel,
};
use arvis_core::{Device, Tensor, Tolerance};
use common::*;

const TOL: Tolerance = Tolerance::MATMUL;

/// The GPU kernels to try on `device` (the CPU has one path).
fn kernels(device: Device) -> &'static [GpuKernel] {
    match device {
        Device::Gpu => &[GpuKernel::Flash, GpuKernel::Decode],
        _ => &[GpuKernel::Auto],
    }
}

/// sdpa on `device` vs the reference for one shape, for `masks` (or every mask).
#[allow(clippy::too_many_arguments)]
fn check_case(
    device: Device,
    [b, h, lq, lk, d]: [usize; 5],
    scale: f32,
    seed: u64,
    masks: &[(&'static str, AttentionMask)],
) -> TestResult {
    let [q, k, v] = qkv(b, h, lq, lk, d, seed);
    let (qd, kd, vd) = (
        q.to_device(device)?,
        k.to_device(device)?,
        v.to_device(device)?,
    );
    for (name, mask) in masks {
        let want = sdpa_reference(&q, &k, &v, mask, scale)?.to_vec();
        for &kernel in kernels(device) {
            let got = sdpa_with_kernel(&qd, &kd, &vd, mask, scale, kernel)?;
            assert_eq!(got.device(), device);
            assert_eq!(got.shape(), &[b, h, lq, d]);
            TOL.check(&got.try_to_vec()?, &want).map_err(|e| {
                format!("{device:?} {kernel:?} B={b} H={h} Lq={lq} Lk={lk} D={d} {name}: {e}")
            })?;
        }
    }
    Ok(())
}

fn odd_sizes_d64(device: Device) -> TestResult {
    for (i, &(lq, lk)) in [(1, 1), (1, 5), (5, 33), (33, 33), (70, 70)]
        .iter()
        .enumerate()
    {
        let seed = 10 + i as u64;
        check_case(
            device,
            [2, 2, lq, lk, 64],
            0.125,
            seed,
            &all_masks(lk, seed),
        )?;
    }
    Ok(())
}

fn odd_sizes_d128(device: Device) -> TestResult {
    for (i, &(lq, lk)) in [(1, 70), (5, 5), (33, 70)].iter().enumerate() {
        let seed = 30 + i as u64;
        check_case(
            device,
            [2, 2, lq, lk, 128],
            0.088,
            seed,
            &all_masks(lk, seed),
        )?;
    }
    Ok(())
}

fn odd_head_dims(device: Device) -> TestResult {
    // Not multiples of 4 (the kernels pad to vec4 / bound-check), tiny, and past the GPU's 128
    // (host fallback on the GPU).
    for (i, &d) in [1usize, 7, 20, 33, 130].iter().enumerate() {
        let seed = 50 + i as u64;
        check_case(device, [2, 1, 5, 9, d], 0.3, seed, &masks_for(9, seed))?;
    }
    Ok(())
}

fn large_scores(device: Device) -> TestResult {
    // Scores of tens of units: the running maximum grows across tiles and chunks.
    check_case(device, [1, 2, 20, 300, 32], 3.0, 7, &masks_for(300, 7))?;
    check_case(device, [1, 1, 3, 260, 64], 0.0, 8, &masks_for(260, 8))?;
    // A new maximum in every tile and every decode chunk: increasing scores along the keys
    // (head dims 1 and 128: the decode kernel's second output column too).
    for d in [1, 128] {
        increasing_scores(device, d)?;
    }
    Ok(())
}

fn increasing_scores(device: Device, d: usize) -> TestResult {
    let (lq, lk) = (4, 600);
    let q = Tensor::full(&[1, 1, lq, d], 1.0);
    let ramp: Vec<f32> = (0..lk * d)
        .map(|i| (i / d) as f32 * 0.2 / d as f32)
        .collect();
    let k = Tensor::from_vec(ramp, &[1, 1, lk, d])?;
    let v = randn(&[1, 1, lk, d], 9);
    for mask in [AttentionMask::None, AttentionMask::Causal] {
        let want = sdpa_reference(&q, &k, &v, &mask, 1.0)?.to_vec();
        for &kernel in kernels(device) {
            let got = sdpa_with_kernel(
                &q.to_device(device)?,
                &k.to_device(device)?,
                &v.to_device(device)?,
                &mask,
                1.0,
                kernel,
            )?;
            TOL.check(&got.try_to_vec()?, &want)
                .map_err(|e| format!("{kernel:?} {mask:?}: {e}"))?;
        }
    }
    Ok(())
}

fn fully_masked_rows(device: Device) -> TestResult {
    // Rows 0 and 2 see nothing: zeros (not NaN) everywhere, like the CPU kernel.
    let lk = 6;
    let mask = AttentionMask::Explicit(ExplicitMask::from_fn(lk, |q, k| q % 2 == 1 && k <= q));
    let [q, k, v] = qkv(1, 2, lk, lk, 8, 3);
    let want = sdpa_reference(&q, &k, &v, &mask, 0.5)?.to_vec();
    let cpu = sdpa(&q, &k, &v, &mask, 0.5)?.to_vec();
    for &kernel in kernels(device) {
        let got = sdpa_with_kernel(
            &q.to_device(device)?,
            &k.to_device(device)?,
            &v.to_device(device)?,
            &mask,
            0.5,
            kernel,
        )?
        .try_to_vec()?;
        TOL.check(&got, &want)?;
        for head in 0..2 {
            for row in [0, 2, 4] {
                let r = &got[(head * lk + row) * 8..][..8];
                assert!(r.iter().all(|&x| x == 0.0), "{kernel:?} row {row}: {r:?}");
                assert_eq!(r, &cpu[(head * lk + row) * 8..][..8]);
            }
        }
    }
    Ok(())
}

fn decode_long_cache(device: Device) -> TestResult {
    // Lk crosses the decode kernel's 256-key chunks; few queries.
    for (i, &lq) in [1usize, 3, 16].iter().enumerate() {
        let seed = 70 + i as u64;
        let masks = [
            ("none", AttentionMask::None),
            ("causal", AttentionMask::Causal),
            (
                "block",
                AttentionMask::block_causal(&random_blocks(600, seed)),
            ),
        ];
        check_case(device, [1, 2, lq, 600, 64], 0.125, seed, &masks)?;
    }
    Ok(())
}

fn empty_shapes(device: Device) -> TestResult {
    let cases: &[([usize; 4], [usize; 4])] = &[
        ([0, 2, 3, 4], [0, 2, 5, 4]),
        ([1, 2, 0, 4], [1, 2, 5, 4]),
        ([1, 2, 3, 0], [1, 2, 5, 0]),
    ];
    for (qs, ks) in cases {
        let (q, k) = (
            randn(qs, 1).to_device(device)?,
            randn(ks, 2).to_device(device)?,
        );
        let got = sdpa(&q, &k, &k, &AttentionMask::Causal, 1.0)?;
        assert_eq!(got.shape(), qs);
        assert_eq!(got.device(), device);
    }
    Ok(())
}

/// Appends in chunks and attends after each against the reference over the prefix; checks
/// `keys()/values()`, rollback, capacity.
fn kv_cache(device: Device) -> TestResult {
    let (b, h, d) = (2, 2, 64);
    let chunks = [1usize, 4, 9, 3, 16];
    let total: usize = chunks.iter().sum();
    let [q, k, v] = qkv(b, h, total, total, d, 21);
    let scale = 0.125;
    let mut cache = KvCache::new(b, h, d, total + 2);
    let mut start = 0;
    for (ci, &n) in chunks.iter().enumerate() {
        let kc = k.narrow(2, start, n)?.to_device(device)?;
        let vc = v.narrow(2, start, n)?.to_device(device)?;
        cache.append(&kc, &vc)?;
        start += n;
        assert_eq!(cache.len(), start);
        assert_eq!(cache.device(), Some(device));
        let qs = q.narrow(2, start - n, n)?;
        let (kp, vp) = (k.narrow(2, 0, start)?, v.narrow(2, 0, start)?);
        let prefix_lens: Vec<usize> = chunks[..=ci].to_vec();
        for mask in [
            AttentionMask::None,
            AttentionMask::Causal,
            AttentionMask::block_causal(&prefix_lens),
            AttentionMask::Explicit(ExplicitMask::from_fn(start, |q, k| {
                (q + k) % 3 != 0 || k == q
            })),
        ] {
            let want = sdpa_reference(&qs, &kp, &vp, &mask, scale)?.to_vec();
            for &kernel in kernels(device) {
                let got = cache.attend_with_kernel(&qs.to_device(device)?, &mask, scale, kernel)?;
                assert_eq!(got.device(), device);
                TOL.check(&got.try_to_vec()?, &want)
                    .map_err(|e| format!("{device:?} {kernel:?} chunk {ci} {mask:?}: {e}"))?;
            }
        }
        let keys = cache.try_keys()?;
        assert_eq!(keys.device(), device);
        assert_eq!(keys.try_to_vec()?, kp.to_vec());
        assert_eq!(cache.try_values()?.try_to_vec()?, vp.to_vec());
        // sdpa on the gathered keys/values agrees with attend.
        let via = sdpa(
            &qs.to_device(device)?,
            &keys,
            &cache.try_values()?,
            &AttentionMask::None,
            scale,
        )?;
        let att = cache.attend(&qs.to_device(device)?, &AttentionMask::None, scale)?;
        TOL.check(
            &via.try_to_vec()?,
            &att.try_to_vec()?
                .iter()
                .map(|&x| f64::from(x))
                .collect::<Vec<_>>(),
        )?;
    }
    // Capacity overflow is an error and leaves the cache unchanged.
    let three = k.narrow(2, 0, 3)?.to_device(device)?;
    let err = cache.append(&three, &three).expect_err("over capacity");
    assert!(matches!(err, AttentionError::CacheFull { .. }), "{err}");
    assert_eq!(cache.len(), total);

    // Rollback: truncate then append again equals a fresh cache with the same prefix, bit for
    // bit.
    let keep = 14;
    let q_last = q.narrow(2, total - 5, 5)?.to_device(device)?;
    cache.truncate(keep)?;
    assert_eq!(cache.len(), keep);
    let (kt, vt) = (
        k.narrow(2, keep, total - keep)?,
        v.narrow(2, keep, total - keep)?,
    );
    // Speculative junk first, then the real tail.
    let junk = randn(&[b, h, 7, d], 99).to_device(device)?;
    cache.append(&junk, &junk)?;
    cache.truncate(keep)?;
    cache.append(&kt.to_device(device)?, &vt.to_device(device)?)?;
    let mut fresh = KvCache::new(b, h, d, total);
    fresh.append(&k.to_device(device)?, &v.to_device(device)?)?;
    for &kernel in kernels(device) {
        for mask in [AttentionMask::None, AttentionMask::Causal] {
            let a = cache
                .attend_with_kernel(&q_last, &mask, scale, kernel)?
                .try_to_vec()?;
            let f = fresh
                .attend_with_kernel(&q_last, &mask, scale, kernel)?
                .try_to_vec()?;
            assert_eq!(
                a, f,
                "{kernel:?} {mask:?}: rollback differs from a fresh cache"
            );
        }
    }
    assert!(cache.truncate(total + 1).is_err());

    // A clone shares its data until it appends; appending to one leaves the other intact.
    let mut clone = cache.clone();
    clone.truncate(3)?;
    clone.append(&junk, &junk)?;
    assert_eq!(cache.try_keys()?.try_to_vec()?, k.to_vec());
    assert_eq!(
        clone.try_keys()?.narrow(2, 0, 3)?.try_to_vec()?,
        k.narrow(2, 0, 3)?.to_vec()
    );
    Ok(())
}

device_tests! {
    flash_odd_sizes_d64: odd_sizes_d64;
    flash_odd_sizes_d128: odd_sizes_d128;
    odd_head_dims_all_kernels: odd_head_dims;
    large_scores_exercise_the_online_rescale: large_scores;
    fully_masked_rows_are_zero: fully_masked_rows;
    decode_against_a_long_cache: decode_long_cache;
    empty_shapes_give_empty_outputs: empty_shapes;
    kv_cache_chunks_rollback_capacity: kv_cache;
}

#[test]
fn mixed_devices_are_an_error() -> TestResult {
    if !device_ready(Device::Gpu)? {
        return Ok(());
    }
    let [q, k, v] = qkv(1, 1, 2, 3, 4, 1);
    let kg = k.to_device(Device::Gpu)?;
    let err = sdpa(&q, &kg, &v, &AttentionMask::None, 1.0).expect_err("mixed devices");
    assert!(matches!(err, AttentionError::Device { .. }), "{err}");
    // A cache keeps the device of its first append.
    let mut cache = KvCache::new(1, 1, 4, 8);
    cache.append(&kg, &kg)?;
    assert!(matches!(
        cache.append(&k, &v),
        Err(AttentionError::Device { .. })
    ));
    assert!(matches!(
        cache.attend(&q.narrow(2, 0, 1)?, &AttentionMask::None, 1.0),
        Err(AttentionError::Device { .. })
    ));
    // Two GPU contexts (two devices on one adapter) do not mix either.
    let other = arvis_core::gpu::GpuContext::new()?;
    let (qg, vg) = (q.to_device(Device::Gpu)?, v.to_device(Device::Gpu)?);
    let err =
        sdpa(&qg, &k.to_gpu(&other)?, &vg, &AttentionMask::None, 1.0).expect_err("two contexts");
    assert!(matches!(err, AttentionError::Device { .. }), "{err}");
    let mut cpu_cache = KvCache::new(1, 1, 4, 8);
    cpu_cache.append(&k, &v)?;
    assert!(matches!(
        cpu_cache.append(&kg, &kg),
        Err(AttentionError::Device { .. })
    ));
    Ok(())
}
