//! The wgpu runtime: context, transfers, the buffer pool, command batching, the profiler and the
//! errors. The kernels themselves are tested per op on both devices in `device_ops.rs`.
//!
//! Without an adapter these tests print why and pass, except under `CI=true`.

mod common;

use arvis_core::gpu::{GpuBuffer, GpuContext};
use arvis_core::{Device, Error, Tensor};
use common::*;

/// The shared context, or `None` (test skipped) when no adapter exists outside CI.
fn context() -> Result<Option<&'static GpuContext>, Box<dyn std::error::Error>> {
    if !device_ready(Device::Gpu)? {
        return Ok(None);
    }
    Ok(Some(GpuContext::shared()?))
}

#[test]
fn context_reports_real_limits() -> TestResult {
    let Some(ctx) = context()? else { return Ok(()) };
    let info = ctx.info();
    eprintln!("{info}");
    assert!(!info.name.is_empty());
    // WebGPU's guaranteed minimums; the device is requested with the adapter's own limits.
    assert!(info.max_storage_binding >= 128 << 20);
    assert!(info.max_workgroup_storage >= 16 << 10);
    assert!(info.max_invocations_per_workgroup >= 256);
    assert!(info.max_workgroups_per_dim >= 65535);
    Ok(())
}

#[test]
fn upload_download_round_trip() -> TestResult {
    let Some(ctx) = context()? else { return Ok(()) };
    for n in [0usize, 1, 7, 1001] {
        let x = randn(&[n.max(1)], n as u64).to_vec()[..n].to_vec();
        let buf = GpuBuffer::upload(ctx, &x)?;
        assert_eq!(buf.len(), n);
        assert_eq!(buf.download(ctx)?, x);
    }
    let t = randn(&[3, 5, 2], 9);
    let g = t.to_device(Device::Gpu)?;
    assert_eq!(g.device(), Device::Gpu);
    assert_eq!(g.shape(), t.shape());
    assert_eq!(g.to_vec(), t.to_vec());
    // A reshape on the GPU shares the buffer; a clone of the data comes back unchanged.
    assert_eq!(g.reshape(&[6, 5])?.to_cpu()?.to_vec(), t.to_vec());
    Ok(())
}

/// Released buffers serve later requests of the same size class, and their old contents never
/// leak into a result: every kernel writes its whole output.
#[test]
fn the_pool_reuses_released_buffers() -> TestResult {
    let Some(ctx) = context()? else { return Ok(()) };
    let x = randn(&[1000], 1).to_device(Device::Gpu)?;
    let before = ctx.pool_stats();
    for i in 0..20 {
        let y = x.scale(i as f32)?; // allocated, then dropped at the end of the iteration
        if i == 19 {
            let want: Vec<f32> = x.to_vec().iter().map(|v| v * 19.0).collect();
            assert_eq!(y.to_vec(), want);
        }
    }
    let after = ctx.pool_stats();
    assert!(
        after.reused - before.reused >= 18,
        "expected reuse across iterations: {before:?} -> {after:?}"
    );
    Ok(())
}

/// A chain of ops longer than one batch gives the same numbers as step-by-step CPU ops: the
/// automatic submits in the middle and buffer reuse keep program order.
#[test]
fn a_long_chain_of_ops_keeps_program_order() -> TestResult {
    let Some(_) = context()? else { return Ok(()) };
    let x = randn(&[257], 2);
    let mut cpu = x.clone();
    let mut gpu = x.to_device(Device::Gpu)?;
    let n = arvis_core::gpu::MAX_OPS_PER_BATCH as usize + 37;
    for i in 0..n {
        let (a, b) = (1.0 + (i % 3) as f32 * 1e-3, (i % 5) as f32 * 1e-2 - 0.02);
        cpu = cpu.affine(a, b)?.add(&x)?.scale(0.5)?;
        gpu = gpu
            .affine(a, b)?
            .add(&x.to_device(Device::Gpu)?)?
            .scale(0.5)?;
    }
    let (got, want) = (gpu.to_vec(), cpu.to_vec());
    let want64: Vec<f64> = want.iter().map(|&v| f64::from(v)).collect();
    arvis_core::Tolerance::ELEMENTWISE.check(&got, &want64)?;
    Ok(())
}

/// With TIMESTAMP_QUERY the profiler attributes GPU time to the ops that ran.
#[test]
fn the_profiler_times_each_op() -> TestResult {
    let Some(_) = context()? else { return Ok(()) };
    // A private context: profiling the shared one would race with the other tests.
    let ctx = GpuContext::new()?;
    if !ctx.info().timestamps {
        assert!(matches!(ctx.set_profiling(true), Err(Error::Gpu { .. })));
        return Ok(());
    }
    ctx.set_profiling(true)?;
    let x = randn(&[4096], 3).to_gpu(&ctx)?;
    let y = x.silu()?.add(&x)?.silu()?;
    y.to_vec();
    let rows = ctx.profile()?;
    let count = |name: &str| rows.iter().find(|r| r.0 == name).map(|r| r.1.count);
    assert_eq!(count("silu"), Some(2), "{rows:?}");
    assert_eq!(count("add"), Some(1), "{rows:?}");
    assert!(rows.iter().all(|r| r.1.nanos >= 0.0));
    ctx.set_profiling(false)?;
    Ok(())
}

#[test]
fn tensors_on_two_devices_are_an_error() -> TestResult {
    let Some(_) = context()? else { return Ok(()) };
    let a = randn(&[4], 1);
    let b = a.to_device(Device::Gpu)?;
    match a.add(&b) {
        Err(Error::Device { op, msg }) => {
            assert_eq!(op, "add");
            assert!(msg.contains("to_device"), "{msg}");
        }
        other => panic!("expected a device error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn a_buffer_over_the_binding_limit_is_an_error() -> TestResult {
    let Some(ctx) = context()? else { return Ok(()) };
    let too_many = (ctx.info().max_storage_binding / 4 + 1) as usize;
    match GpuBuffer::uninit(ctx, too_many) {
        Err(Error::Gpu { msg, .. }) => assert!(msg.contains("binding limit"), "{msg}"),
        other => panic!("expected a size error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn unknown_adapter_name_is_an_error() {
    match GpuContext::with_adapter(Some("no-such-adapter-xyz")) {
        Err(Error::Gpu { op, msg }) => {
            assert_eq!(op, "adapter");
            assert!(msg.contains("no-such-adapter-xyz"), "{msg}");
        }
        other => panic!("expected an adapter error, got {other:?}"),
    }
}

#[test]
fn cpu_tensors_stay_on_the_cpu() -> TestResult {
    let t = Tensor::ones(&[2]);
    assert_eq!(t.device(), Device::Cpu);
    assert_eq!(t.to_device(Device::Cpu)?.to_vec(), vec![1.0, 1.0]);
    Ok(())
}
