//! Group `backend_pipeline`: the model on the CPU backend (ndarray), at the
//! released model's size with seeded random weights.
//!
//! - `embed/<backend>`: the vision encoder on one 224x224 frame;
//! - `stream-frame/<backend>/<ratio>[-tl]/h<horizon>`: one streamed frame
//!   (encode + decode) in the steady state of a stream whose KV cache holds
//!   `horizon` frames; `-tl` adds the task-loss stop at 0.7 (with random
//!   weights the task-loss head predicts ~0, so every frame stops after its
//!   first chunk: the cheapest case), without it the full budget is decoded
//!   (0.75: 198 tokens, the worst case).
//!
//! Tiled (448, AnyRes) and wgpu lanes join when those paths exist.

use burn::backend::NdArray;
use burn::tensor::{Distribution, Tensor};
use burn_autogaze::model::{AutoGaze, AutoGazeConfig, GenerateOptions};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

type B = NdArray<f32>;

fn frame() -> Tensor<B, 3> {
    Tensor::random(
        [3, 224, 224],
        Distribution::Normal(0.0, 1.0),
        &Default::default(),
    )
}

fn backend_pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("backend_pipeline");
    group.sample_size(10);
    let model = AutoGaze::<B>::random(AutoGazeConfig::release(), 1, &Default::default());
    let input = frame();
    group.bench_function(BenchmarkId::new("embed", "ndarray"), |b| {
        b.iter(|| {
            let mut state = model.new_stream();
            model
                .encode(&mut state, input.clone().unsqueeze::<4>())
                .into_data()
        })
    });
    for (ratio, tl, horizon) in [
        (0.1f32, None, 1usize),
        (0.75, None, 1),
        (0.75, Some(0.7f32), 1),
        (0.75, None, 4),
    ] {
        let options = GenerateOptions {
            gazing_ratio: ratio,
            task_loss_requirement: tl,
        };
        let mut state = model.new_stream();
        state.set_horizon(horizon);
        // Fill the cache to the horizon first: the steady state.
        for _ in 0..horizon + 1 {
            model
                .step(&mut state, frame(), &options)
                .expect("warm-up frame");
        }
        let name = format!(
            "{ratio}{}/h{horizon}",
            if tl.is_some() { "-tl" } else { "" }
        );
        group.bench_function(BenchmarkId::new("stream-frame/ndarray", name), |b| {
            b.iter(|| {
                model
                    .step(&mut state, input.clone(), &options)
                    .expect("frame")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, backend_pipeline);
criterion_main!(benches);
