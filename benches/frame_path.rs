//! Frame path lanes: synthetic-pan frame generation and preprocessing at
//! 720p and 1080p, each beside a plain memcpy of the same frame in the same
//! group so the ratio can be read off one report.

use std::hint::black_box;

use burn_autogaze::source::{FrameSource, PanSpeed, SyntheticPan};
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
    }
    group.finish();
}

criterion_group!(benches, frame_generation, preprocessing);
criterion_main!(benches);
