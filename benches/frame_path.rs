//! Frame path lanes: synthetic-pan frame generation and preprocessing at
//! 720p and 1080p, each beside a plain memcpy of the same frame in the same
//! group so the ratio can be read off one report (with `wgpu`, the model
//! input made on the host and uploaded against made on the device); and the `images` source:
//! time to first frame for a short and a long directory, and the reader's
//! cost per frame with and without prefetching.

use std::hint::black_box;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn_autogaze::source::{FrameSource, ImageSequence, PanSpeed, SyntheticPan};
use burn_autogaze::{FrameSize, ModelInput, Preprocessor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const SIZES: [(&str, u32, u32); 2] = [("720p", 1280, 720), ("1080p", 1920, 1080)];

fn pan(w: u32, h: u32) -> SyntheticPan {
    let size = FrameSize::new(w, h).expect("valid size");
    SyntheticPan::new(size, PanSpeed::default(), 30.0).expect("valid pan")
}

fn frame_generation(c: &mut Criterion) {
    let mut group = c.benchmark_group("synthetic_pan");
    for (name, w, h) in SIZES {
        let bytes = w as usize * h as usize * 4;
        group.throughput(Throughput::Bytes(bytes as u64));
        let mut source = pan(w, h);
        let reference = source.next_frame().expect("frame");
        let mut dst = vec![0u8; bytes];
        group.bench_function(BenchmarkId::new("memcpy", name), |b| {
            b.iter(|| dst.copy_from_slice(black_box(reference.rgba())))
        });
        drop(reference);
        group.bench_function(BenchmarkId::new("next_frame", name), |b| {
            b.iter(|| black_box(source.next_frame().expect("frame")))
        });
    }
    group.finish();
}

fn preprocessing(c: &mut Criterion) {
    let mut group = c.benchmark_group("preprocess");
    for (name, w, h) in SIZES {
        let bytes = w as usize * h as usize * 4;
        group.throughput(Throughput::Bytes(bytes as u64));
        let frame = pan(w, h).next_frame().expect("frame");
        let mut dst = vec![0u8; bytes];
        group.bench_function(BenchmarkId::new("memcpy", name), |b| {
            b.iter(|| dst.copy_from_slice(black_box(frame.rgba())))
        });
        let mut pre = Preprocessor::release();
        let mut input = ModelInput::new(pre.model_size());
        let clip = std::slice::from_ref(&frame);
        group.bench_function(BenchmarkId::new("model_input", name), |b| {
            b.iter(|| {
                pre.clip_into(black_box(clip), &mut input)
                    .expect("preprocess")
            })
        });
        #[cfg(feature = "wgpu")]
        wgpu_lanes(&mut group, name, &frame);
    }
    group.finish();
}

/// The model input on Burn's wgpu device (lavapipe here), waited for:
/// made on the host then uploaded (`f32`), or the frame's bytes uploaded
/// and made by the device kernels.
#[cfg(feature = "wgpu")]
fn wgpu_lanes(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    frame: &burn_autogaze::Frame,
) {
    use burn::backend::Wgpu;
    use burn::backend::wgpu::WgpuDevice;
    use burn::tensor::backend::Backend;
    use burn_autogaze::preprocess::DevicePreprocessor;
    let device = WgpuDevice::default();
    let mut pre = Preprocessor::release();
    let mut input = ModelInput::new(pre.model_size());
    let clip = std::slice::from_ref(frame);
    group.bench_function(BenchmarkId::new("model_input_wgpu_host", name), |b| {
        b.iter(|| {
            pre.clip_into(black_box(clip), &mut input)
                .expect("preprocess");
            let x = input.to_tensor::<Wgpu>(&device);
            <Wgpu as Backend>::sync(&device).expect("sync");
            x
        })
    });
    let mut on_device = DevicePreprocessor::new(Preprocessor::release(), &device);
    group.bench_function(BenchmarkId::new("model_input_wgpu_device", name), |b| {
        b.iter(|| {
            let x = on_device.frame_input(black_box(frame)).expect("preprocess");
            <Wgpu as Backend>::sync(&device).expect("sync");
            x
        })
    });
    // AnyRes (the default 8 tiles): the host's crops preprocessed and
    // uploaded, against the frame uploaded once and its tiles cut and made
    // on the device.
    use burn_autogaze::model::{AnyResGrid, crop_tile};
    let grid = AnyResGrid::new(frame.size(), 8).expect("grid");
    let rects: Vec<_> = grid.rects().collect();
    let mut pool = burn_autogaze::FramePool::new((grid.side * grid.side * 4) as usize, grid.len());
    group.bench_function(BenchmarkId::new("anyres_wgpu_host", name), |b| {
        b.iter(|| {
            let tiles: Vec<_> = rects
                .iter()
                .map(|r| crop_tile(black_box(frame), *r, &mut pool).expect("crop"))
                .collect();
            pre.clip_into(&tiles, &mut input).expect("preprocess");
            let x = input.to_tensor::<Wgpu>(&device);
            <Wgpu as Backend>::sync(&device).expect("sync");
            x
        })
    });
    group.bench_function(BenchmarkId::new("anyres_wgpu_device", name), |b| {
        b.iter(|| {
            let x = on_device
                .tiles_input(black_box(frame), grid.side, &rects)
                .expect("preprocess");
            <Wgpu as Backend>::sync(&device).expect("sync");
            x
        })
    });
}

/// Writes `n` frames of the synthetic pan at `w` x `h` as PNG files.
fn write_clip(dir: &Path, n: usize, w: u32, h: u32) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("bench dir");
    let mut source = pan(w, h);
    for i in 0..n {
        let frame = source.next_frame().expect("frame");
        image::RgbaImage::from_raw(w, h, frame.rgba().to_vec())
            .expect("rgba")
            .save(dir.join(format!("{i:05}.png")))
            .expect("save png");
    }
}

fn image_sequence(c: &mut Criterion) {
    let root = std::env::temp_dir().join(format!("autogaze_bench_seq_{}", std::process::id()));
    let mut group = c.benchmark_group("image_sequence");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    // Time to first frame: listing + one decode, whatever the length.
    for n in [10, 2000] {
        let dir = root.join(format!("open{n}"));
        write_clip(&dir, n, 160, 90);
        group.bench_function(BenchmarkId::new("open", n), |b| {
            b.iter(|| black_box(ImageSequence::open(&dir, 30.0, 64 << 20).expect("open")))
        });
    }
    // Steady state at 720p, a clip longer than the cache (8 frames), read
    // at a display pace of one frame per 30 ms: the reader's own cost per
    // frame (only the `next_frame` call is timed), decoding itself or
    // served by the prefetcher.
    let dir: PathBuf = root.join("clip720p");
    write_clip(&dir, 32, 1280, 720);
    let cap = 8 * 1280 * 720 * 4;
    for prefetch in [0, 4] {
        let mut seq = ImageSequence::open_with(&dir, 30.0, cap, prefetch).expect("open");
        group.bench_function(
            BenchmarkId::new("next_frame_720p_paced_prefetch", prefetch),
            |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        std::thread::sleep(Duration::from_millis(30));
                        let t = Instant::now();
                        black_box(seq.next_frame().expect("frame"));
                        spent += t.elapsed();
                    }
                    spent
                })
            },
        );
    }
    group.finish();
    let _ = std::fs::remove_dir_all(root);
}

criterion_group!(benches, frame_generation, preprocessing, image_sequence);
criterion_main!(benches);
