//! Group `viewer_pipeline`: the display-side hot path, beside a plain memcpy
//! of the frame in the same group (the physical reference).
//!
//! - `memcpy/<size>`
//! - `interframe-delta-panels/<fixation-set>/<size>`: composing one frame
//!   through a precomputed plan (adaptive dispatch);
//! - `mask-geometry/<policy>/<size>`: planning + composing the 265-token
//!   `redundant-full-frame` set under each geometry policy;
//! - `mask-plan/<size>`: planning alone (deduplicated, 265 tokens);
//! - `psnr/<size>`: output-vs-input PSNR (every frame while it is shown);
//! - `compose-upload-prep/<fixation-set>/<size>`: the viewer's per-frame
//!   display work: compose, then stage the dirty regions for the texture
//!   writes (or the whole frame, when the upload cost model says so);
//! - `crossover/<size>/<path>/<coverage>`: each forced path and adaptive at
//!   coverage 0, 5, ..., 100 %.
//!
//! Wired into both `burn_autogaze` and `bevy_burn_autogaze`
//! (`cargo bench -p bevy_burn_autogaze --bench viewer_pipeline`); the lanes
//! use core APIs only, so the core crate runs them without building Bevy.

use std::hint::black_box;

use burn_autogaze::interframe::{Compositor, CompositorOptions, Dispatch};
use burn_autogaze::mask::{MaskGeometry, MaskPlan, MaskPlanner, fixation_sets};
use burn_autogaze::source::{FrameSource, PanSpeed, SyntheticPan};
use burn_autogaze::tokens::TokenLayout;
use burn_autogaze::upload::{StagedUpload, UploadCost};
use burn_autogaze::{Frame, FrameSize};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const SIZES: [(&str, u32, u32); 2] = [("720p", 1280, 720), ("1080p", 1920, 1080)];

fn frames(w: u32, h: u32) -> [Frame; 2] {
    let mut src = SyntheticPan::new(
        FrameSize::new(w, h).expect("size"),
        PanSpeed::default(),
        30.0,
    )
    .expect("pan");
    [
        src.next_frame().expect("frame"),
        src.next_frame().expect("frame"),
    ]
}

/// A compositor past its keyframe, and a closure-friendly frame toggle.
fn warm(options: CompositorOptions, frames: &[Frame; 2], plan: &MaskPlan) -> Compositor {
    let mut c = Compositor::new(options);
    c.compose(&frames[0], plan).expect("keyframe");
    c
}

fn viewer_pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("viewer_pipeline");
    let mut planner = MaskPlanner::new(TokenLayout::release());
    for (name, w, h) in SIZES {
        let size = FrameSize::new(w, h).expect("size");
        let frames = frames(w, h);
        // Alternates the two source frames, like the compose lanes, so both
        // touch the same working set.
        let mut dst = vec![0u8; size.rgba_len()];
        let mut i = 0usize;
        group.bench_function(BenchmarkId::new("memcpy", name), |b| {
            b.iter(|| {
                i += 1;
                dst.copy_from_slice(black_box(frames[i % 2].rgba()))
            })
        });
        for (set, tokens) in fixation_sets() {
            let plan = planner.plan(tokens.iter().copied(), size, MaskGeometry::Deduplicated);
            let mut comp = warm(CompositorOptions::default(), &frames, &plan);
            let mut i = 0usize;
            group.bench_function(
                BenchmarkId::new(format!("interframe-delta-panels/{set}"), name),
                |b| {
                    b.iter(|| {
                        i += 1;
                        comp.compose(&frames[i % 2], &plan).expect("compose")
                    })
                },
            );
            let mut comp = warm(CompositorOptions::default(), &frames, &plan);
            let mut staged = StagedUpload::default();
            let cost = UploadCost::default();
            group.bench_function(
                BenchmarkId::new(format!("compose-upload-prep/{set}"), name),
                |b| {
                    b.iter(|| {
                        i += 1;
                        comp.compose(&frames[i % 2], &plan).expect("compose");
                        staged.stage(comp.output(), size, comp.dirty_regions(), &cost)
                    })
                },
            );
        }
        let redundant: Vec<u32> = (0..265).collect();
        for policy in MaskGeometry::ALL {
            let mut plan = planner.plan(redundant.iter().copied(), size, policy);
            let mut comp = warm(CompositorOptions::default(), &frames, &plan);
            let mut i = 0usize;
            group.bench_function(
                BenchmarkId::new(format!("mask-geometry/{policy}"), name),
                |b| {
                    b.iter(|| {
                        i += 1;
                        planner.plan_into(redundant.iter().copied(), size, policy, &mut plan);
                        comp.compose(&frames[i % 2], &plan).expect("compose")
                    })
                },
            );
        }
        group.bench_function(BenchmarkId::new("psnr", name), |b| {
            b.iter(|| {
                burn_autogaze::quality::psnr_rgb(frames[0].rgba(), black_box(frames[1].rgba()))
            })
        });
        let mut plan = MaskPlan::default();
        group.bench_function(BenchmarkId::new("mask-plan", name), |b| {
            b.iter(|| {
                planner.plan_into(
                    black_box(0..265u32),
                    size,
                    MaskGeometry::Deduplicated,
                    &mut plan,
                )
            })
        });
    }
    group.finish();
}

/// Fine cells in a fixed scattered order (the same walk as `cargo xtask crossover`).
fn scattered(k: usize) -> Vec<u32> {
    (0..196u32).map(|i| 69 + (i * 73) % 196).take(k).collect()
}

fn crossover(c: &mut Criterion) {
    let mut group = c.benchmark_group("viewer_pipeline");
    group.sample_size(20);
    let mut planner = MaskPlanner::new(TokenLayout::release());
    for (name, w, h) in SIZES {
        let size = FrameSize::new(w, h).expect("size");
        let frames = frames(w, h);
        for pct in (0..=100).step_by(5) {
            let k = ((pct as f64 / 100.0) * 196.0).round() as usize;
            let plan = planner.plan(scattered(k), size, MaskGeometry::Deduplicated);
            for dispatch in Dispatch::ALL {
                let options = CompositorOptions {
                    dispatch,
                    ..CompositorOptions::default()
                };
                let mut comp = warm(options, &frames, &plan);
                let mut i = 0usize;
                group.bench_function(
                    BenchmarkId::new(format!("crossover/{name}/{dispatch}"), pct),
                    |b| {
                        b.iter(|| {
                            i += 1;
                            comp.compose(&frames[i % 2], &plan).expect("compose")
                        })
                    },
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, viewer_pipeline, crossover);
criterion_main!(benches);
