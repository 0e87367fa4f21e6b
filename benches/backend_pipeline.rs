//! Group `backend_pipeline`: the model on the CPU backend (ndarray), at the
//! released model's size with seeded random weights.
//!
//! - `embed/<backend>`: the vision encoder on one 224x224 frame;
//! - `stream-frame/<backend>/<ratio>[-tl]/h<horizon>`: one streamed frame
//!   (encode + decode) in the steady state of a stream whose KV cache holds
//!   `horizon` frames; `-tl` adds the task-loss stop at 0.7 (with random
//!   weights the task-loss head predicts ~0, so every frame stops after its
//!   first chunk: the cheapest case), without it the full budget is decoded
//!   (0.75: 198 tokens, the worst case). `0.03` (7 tokens, fewer than K)
//!   is the prefill call alone: with `embed` it splits a frame into encoder,
//!   prefill and decode calls (`(0.75 - 0.03) / 19` per decode call).
//!   `/host-selection` and `/device-selection` run the same lane with the
//!   other `Selection` (paired with the backend's default); `/burn-ops`
//!   runs it through Burn ops instead of the fused CPU kernels
//!   (`AutoGaze::set_engine(engines::BURN_OPS)`; paired with the
//!   ndarray default);
//!
//! - `tiled-448/<backend>/0.5`: one 448x448 frame through the reference's
//!   tiling (target scales 64/128/224/448, patch 16: 4 tiles) at ratio 0.5;
//! - `anyres/<backend>/<size>`: one streamed frame of AnyRes (up to 8 square
//!   tiles) at ratio 0.1, horizon 1; on wgpu also `<size>/per-stream`, the
//!   same with the tiles' decoders run one after another instead of as one
//!   lockstep batch (the backend's default there).
//!
//! With `--features wgpu`, every lane also runs on the wgpu backend
//! (lavapipe where there is no GPU).

use burn::backend::NdArray;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use burn_autogaze::model::{
    AnyResStream, AutoGaze, AutoGazeConfig, GenerateOptions, Selection, TileGrid,
};
use burn_autogaze::source::{FrameSource, PanSpeed, SyntheticPan};
use burn_autogaze::{FrameSize, Preprocessor};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};

type B = NdArray<f32>;

fn random_frame<Bk: Backend>(device: &Bk::Device) -> Tensor<Bk, 3> {
    Tensor::random([3, 224, 224], Distribution::Normal(0.0, 1.0), device)
}

/// How a lane's model differs from the backend's default.
#[derive(Clone, Copy)]
enum Variant {
    Default,
    Selection(Selection),
    /// Through Burn ops (the fused CPU kernels off).
    BurnOps,
}

/// The encoder and streamed-frame lanes of one backend: `(ratio, task-loss,
/// horizon, variant)` per streamed lane.
fn model_lanes<Bk: Backend>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    backend: &str,
    device: &Bk::Device,
    lanes: &[(f32, Option<f32>, usize, Variant)],
) -> AutoGaze<Bk> {
    let model = AutoGaze::<Bk>::random(AutoGazeConfig::release(), 1, device);
    // The default selection (`AutoGaze::selection_for`) in the plain lanes;
    // a lane naming a selection runs the same model with it (a paired
    // comparison).
    let mut other;
    let input = random_frame::<Bk>(device);
    group.bench_function(BenchmarkId::new("embed", backend), |b| {
        b.iter(|| {
            let mut state = model.new_stream();
            model
                .encode(&mut state, input.clone().unsqueeze::<4>())
                .expect("encode")
                .into_data()
        })
    });
    for &(ratio, tl, horizon, variant) in lanes {
        let model = match variant {
            Variant::Selection(selection) => {
                other = model.clone();
                other.set_selection(selection);
                &other
            }
            Variant::BurnOps => {
                other = model.clone();
                other
                    .set_engine(burn_autogaze::model::engines::BURN_OPS)
                    .expect("the Burn-ops engine");
                &other
            }
            Variant::Default => &model,
        };
        let options = GenerateOptions {
            gazing_ratio: ratio,
            task_loss_requirement: tl,
        };
        let mut state = model.new_stream();
        state.set_horizon(horizon);
        // Fill the cache to the horizon first: the steady state.
        for _ in 0..horizon {
            model
                .step(&mut state, random_frame::<Bk>(device), &options)
                .expect("warm-up frame");
        }
        // The last warm-up frame is a steady-state one (it evicts the
        // oldest frame): what it costs in the engine's own counts.
        let (dispatches, readbacks) = (model.engine_dispatches(), state.readbacks());
        model
            .step(&mut state, random_frame::<Bk>(device), &options)
            .expect("warm-up frame");
        let per_frame = |after: Option<u64>| match (dispatches, after) {
            (Some(a), Some(b)) => format!("{} engine dispatches", b - a),
            _ => "dispatches not counted by the engine".into(),
        };
        let counts = format!(
            "{}, {} readback(s) a frame",
            per_frame(model.engine_dispatches()),
            state.readbacks() - readbacks
        );
        let name = format!(
            "{ratio}{}/h{horizon}{}",
            if tl.is_some() { "-tl" } else { "" },
            match variant {
                Variant::Default => "",
                Variant::Selection(Selection::Host) => "/host-selection",
                Variant::Selection(Selection::Device) => "/device-selection",
                Variant::BurnOps => "/burn-ops",
            }
        );
        println!(
            "stream-frame/{backend}/{name}: engine {}: {counts}",
            model.engine_name()
        );
        group.bench_function(
            BenchmarkId::new(format!("stream-frame/{backend}"), name),
            |b| {
                b.iter(|| {
                    model
                        .step(&mut state, input.clone(), &options)
                        .expect("frame")
                })
            },
        );
    }
    model
}

/// `tiled-448/<backend>/0.5` and `anyres/<backend>/<size>`; with `paired`,
/// also `anyres/<backend>/<size>/per-stream`: the same tiles with the
/// lockstep batching of the tiles' decoders turned off (a paired
/// comparison of `AutoGaze::batches_streams`).
fn tiled_and_anyres_lanes<Bk: Backend>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    backend: &str,
    model: &AutoGaze<Bk>,
    device: &Bk::Device,
    paired: bool,
) {
    let grid = TileGrid::new(&model.config().layout, &[64, 128, 224, 448], 16).expect("grid");
    let clip = Tensor::<Bk, 5>::random([1, 1, 3, 448, 448], Distribution::Normal(0.0, 1.0), device);
    let half = GenerateOptions {
        gazing_ratio: 0.5,
        task_loss_requirement: None,
    };
    group.bench_function(
        BenchmarkId::new(format!("tiled-448/{backend}"), "0.5"),
        |b| {
            b.iter(|| {
                model
                    .generate_tiled(clip.clone(), &grid, &half)
                    .expect("tiled")
            })
        },
    );
    let tenth = GenerateOptions {
        gazing_ratio: 0.1,
        task_loss_requirement: None,
    };
    let mut unbatched = model.clone();
    unbatched.set_batch_streams(false);
    let variants: &[(&AutoGaze<Bk>, &str)] = if paired {
        &[(model, ""), (&unbatched, "/per-stream")]
    } else {
        &[(model, "")]
    };
    for (name, w, h) in [("720p", 1280, 720), ("1080p", 1920, 1080)] {
        for &(model, suffix) in variants {
            let size = FrameSize::new(w, h).expect("size");
            let mut source = SyntheticPan::new(size, PanSpeed::default(), 30.0).expect("pan");
            let mut stream =
                AnyResStream::new(model, Preprocessor::release(), size, 8, 1).expect("anyres");
            let warm = source.next_frame().expect("frame");
            stream.step(model, &warm, &tenth).expect("warm-up");
            group.bench_function(
                BenchmarkId::new(format!("anyres/{backend}"), format!("{name}{suffix}")),
                |b| {
                    b.iter(|| {
                        let frame = source.next_frame().expect("frame");
                        stream.step(model, &frame, &tenth).expect("anyres frame")
                    })
                },
            );
        }
    }
}

fn backend_pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("backend_pipeline");
    group.sample_size(10);
    let model = model_lanes::<B>(
        &mut group,
        "ndarray",
        &Default::default(),
        &[
            // Budget 7 < K: the prefill call only (the split's second term).
            (0.03, None, 1, Variant::Default),
            (0.1, None, 1, Variant::Default),
            (0.75, None, 1, Variant::Default),
            (0.75, Some(0.7), 1, Variant::Default),
            (0.75, None, 4, Variant::Default),
            (0.75, None, 1, Variant::Selection(Selection::Device)),
            (0.75, Some(0.7), 1, Variant::Selection(Selection::Device)),
            (0.03, None, 1, Variant::BurnOps),
            (0.75, None, 1, Variant::BurnOps),
        ],
    );
    // The same model on wgpu (Vulkan; lavapipe on a machine without a GPU):
    // by default selection on the device (one readback per frame) without a
    // task-loss gate and on the host (one per decoder call, stopping at the
    // gate) with one; each paired with the other selection.
    #[cfg(feature = "wgpu")]
    {
        use burn::backend::Wgpu;
        use burn::backend::wgpu::WgpuDevice;
        let device = WgpuDevice::default();
        let model = model_lanes::<Wgpu>(
            &mut group,
            "wgpu",
            &device,
            &[
                (0.1, None, 1, Variant::Default),
                (0.75, None, 1, Variant::Default),
                (0.1, None, 1, Variant::Selection(Selection::Host)),
                (0.75, None, 1, Variant::Selection(Selection::Host)),
                (0.75, Some(0.7), 1, Variant::Default),
                (0.75, Some(0.7), 1, Variant::Selection(Selection::Device)),
            ],
        );
        tiled_and_anyres_lanes(&mut group, "wgpu", &model, &device, true);
    }
    tiled_and_anyres_lanes(&mut group, "ndarray", &model, &Default::default(), false);
    group.finish();
}

criterion_group!(benches, backend_pipeline);
criterion_main!(benches);
