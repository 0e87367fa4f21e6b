//! Whether an adapter holds a workgroup at a barrier: the fused kernels'
//! phases meet at workgroup barriers, and Mesa's lavapipe before 23 lets
//! invocations past one after long work (PERF_LOOP, 2026-12-07). One
//! workgroup writes, spins, meets at a storage + workgroup barrier, then
//! its first invocation counts what the others wrote. Checked once a
//! device.
#![cfg_attr(target_arch = "wasm32", allow(dead_code, unused_imports))]

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use burn::backend::wgpu::{WgpuDevice, WgpuRuntime};
use cubecl::prelude::*;

/// Invocations of the probe's workgroup.
const UNITS: u32 = 256;

#[cube(launch)]
fn barrier_probe(buf: &mut Array<f32>, out: &mut Array<f32>, tasks: u32, spin: u32) {
    let unit = UNIT_POS;
    let mut t = unit;
    while t < tasks {
        buf[t as usize] = 1.0;
        t += UNITS;
    }
    let mut acc = 0.0f32;
    for i in 0..spin {
        acc = acc * 0.5 + f32::cast_from(i);
    }
    sync_storage();
    sync_cube();
    if unit == 0 {
        let mut sum = 0.0f32;
        for i in 0..tasks {
            sum += buf[i as usize];
        }
        out[0] = sum;
        out[1] = acc;
    }
}

/// Values the probe's first invocation saw of `tasks` written before a
/// barrier that followed `spin` iterations of arithmetic.
fn seen(client: &ComputeClient<WgpuRuntime>, tasks: u32, spin: u32) -> f32 {
    let buf = client.create_from_slice(f32::as_bytes(&vec![0f32; tasks as usize]));
    let out = client.empty(8);
    // SAFETY: the lengths are the values each handle holds.
    unsafe {
        barrier_probe::launch(
            client,
            CubeCount::Static(1, 1, 1),
            CubeDim::new_1d(UNITS),
            ArrayArg::from_raw_parts(buf, tasks as usize),
            ArrayArg::from_raw_parts(out.clone(), 2),
            tasks,
            spin,
        );
    }
    f32::from_bytes(&client.read_one_unchecked(out))[0]
}

/// Ok when `device` held the workgroup at the barrier in every case, else
/// what it missed (remembered a device). In the browser the probe is not
/// run: WebGPU's `workgroupBarrier` holds by its specification (the flaw is
/// a native driver's), and its readback could not be waited for there.
#[cfg(target_arch = "wasm32")]
pub fn barriers_hold(_device: &WgpuDevice) -> Result<(), String> {
    Ok(())
}

/// Ok when `device` held the workgroup at the barrier in every case, else
/// what it missed (remembered a device).
#[cfg(not(target_arch = "wasm32"))]
pub fn barriers_hold(device: &WgpuDevice) -> Result<(), String> {
    static SEEN: OnceLock<Mutex<HashMap<WgpuDevice, Result<(), String>>>> = OnceLock::new();
    let mut known = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    known
        .entry(device.clone())
        .or_insert_with(|| {
            let client = WgpuRuntime::client(device);
            for (tasks, spin) in [(UNITS, 100_000), (60_000, 0), (UNITS, 0)] {
                let got = seen(&client, tasks, spin);
                if got != tasks as f32 {
                    return Err(format!(
                        "the adapter does not hold a workgroup at a barrier (of {tasks} values \
                         written before it, {got} were seen after it; Mesa's lavapipe before 23 \
                         does this)"
                    ));
                }
            }
            Ok(())
        })
        .clone()
}

#[cfg(test)]
mod tests {
    /// The CI adapter (lavapipe from Mesa 25) holds its barriers; a broken
    /// one fails here first.
    #[test]
    fn barriers_hold_on_this_adapter() {
        assert_eq!(super::barriers_hold(&Default::default()), Ok(()));
    }
}
