//! The fused engine against the host engine, both on Burn's wgpu backend
//! (lavapipe here): same tokens, heads within 1e-4.

use burn::backend::Wgpu;
use burn::tensor::{Distribution, Tensor};

use super::super::engine::{ChunkIds, DecoderCall, EngineCache};
use super::super::{AutoGaze, AutoGazeConfig, GenerateOptions, Selection, StreamState, engines};
use super::NAME;

type Bk = Wgpu;

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, f32::max)
}

/// The release-size model on wgpu with the fused engine (the default) and
/// a copy on the host engine.
fn models(layers: usize, seed: u64) -> (AutoGaze<Bk>, AutoGaze<Bk>) {
    let mut config = AutoGazeConfig::release();
    config.layers = layers;
    let fused = AutoGaze::<Bk>::random(config, seed, &Default::default());
    assert_eq!(fused.engine_name(), engines::FUSED_GPU, "the wgpu default");
    assert_eq!(fused.engine_fallback(), None);
    let mut host = fused.clone();
    host.set_engine(engines::HOST).unwrap();
    (fused, host)
}

/// Single decoder calls straight through each engine (a prefill of
/// vision rows, some keys masked, then a chunk of ids): heads within 1e-4,
/// and the dispatches counted.
#[test]
fn decoder_calls_agree() {
    let device = Default::default();
    let (fused, host) = models(2, 5);
    let d = fused.config.hidden;
    for (rows, hidden) in [(196, 0), (100, 30)] {
        let vision = Tensor::<Bk, 3>::random([1, rows, d], Distribution::Default, &device);
        let positions: Vec<i64> = (0..rows as i64).collect();
        let mask: Vec<bool> = (0..rows).map(|j| j >= hidden).collect();
        let ids = vec![3u32, 7, 11];
        let later: Vec<i64> = (rows as i64 - 3..rows as i64).collect();
        let mask2 = [mask.clone(), vec![true; 3]].concat();
        let mut heads = Vec::new();
        for model in [&fused, &host] {
            let before = model.engine.dispatches();
            let mut state = model.new_stream();
            let mut caches: Vec<&mut dyn EngineCache<Bk>> = vec![state.cache.as_mut()];
            for (ids, vision, positions, mask) in [
                (None, Some(vision.clone()), &positions, &mask),
                (Some(ChunkIds::Host(ids.clone())), None, &later, &mask2),
            ] {
                let call = DecoderCall {
                    streams: 1,
                    ids,
                    vision,
                    positions,
                    key_mask: mask,
                };
                heads.push(model.engine.decode(call, &mut caches).unwrap().into_host());
            }
            if model.engine_name() == NAME {
                let calls = model.engine.dispatches().unwrap() - before.unwrap();
                // Two calls of 2 layers: one dispatch a layer, one to
                // finish the last row and one for the heads each, and the
                // KV buffer's first allocation copies nothing.
                assert_eq!(
                    calls,
                    2 * (2 + 2),
                    "dispatches: a layer's each, the last row's and the heads'"
                );
            }
        }
        for call in 0..2 {
            let (f, h) = (&heads[call], &heads[2 + call]);
            let what = format!("{rows} rows, {hidden} hidden, call {call}");
            assert!(max_diff(&f.0, &h.0) <= 1e-4, "{what}: logits");
            assert!(max_diff(&f.1, &h.1) <= 1e-4, "{what}: task losses");
        }
    }
}

/// One stream on each engine over a few frames: full budget, a horizon
/// that evicts, a task-loss gate; every decoder call's heads compared.
#[test]
fn the_fused_engine_equals_the_host_engine() {
    let device = Default::default();
    let (fused, host) = models(4, 5);
    let frames: Vec<Tensor<Bk, 3>> = (0..3)
        .map(|_| Tensor::random([3, 224, 224], Distribution::Default, &device))
        .collect();
    for (requirement, horizon) in [(None, 0), (None, 1), (Some(0.05), 2)] {
        let options = GenerateOptions {
            gazing_ratio: 0.75,
            task_loss_requirement: requirement,
        };
        let mut streams = [fused.new_stream(), host.new_stream()];
        for s in &mut streams {
            s.set_horizon(horizon);
        }
        for (t, frame) in frames.iter().enumerate() {
            let what = format!("requirement {requirement:?}, horizon {horizon}, frame {t}");
            let mut out = Vec::new();
            let mut traces = Vec::new();
            for (model, state) in [&fused, &host].into_iter().zip(streams.iter_mut()) {
                let tokens = model.encode(state, frame.clone().unsqueeze::<4>()).unwrap();
                let ft = tokens.reshape([196, model.config.hidden]);
                let mut trace = Vec::new();
                out.push(
                    model
                        .decode_frame(state, ft, &options, Some(&mut trace))
                        .unwrap(),
                );
                traces.push(trace);
            }
            assert_eq!(traces[0].len(), traces[1].len(), "{what}");
            for (a, b) in traces[0].iter().zip(&traces[1]) {
                assert!(max_diff(&a.logits, &b.logits) <= 1e-4, "{what}: logits");
                assert!(max_diff(&a.task_loss, &b.task_loss) <= 1e-4, "{what}");
            }
            assert_eq!(out[0], out[1], "{what}");
            assert_eq!(streams[0].cached_keys(), streams[1].cached_keys(), "{what}");
        }
    }
}

/// The default path on wgpu: selection on the device (the picked ids go
/// back into the next call as a device tensor), three streams in lockstep
/// sharing calls, a copied stream, and a stream moved to the host engine
/// and back: all give the host engine's frames.
#[test]
fn device_selection_and_batched_streams_equal_the_host_engine() {
    use crate::preprocess::ModelInput;
    let device = Default::default();
    let (fused, host) = models(4, 9);
    let options = GenerateOptions {
        gazing_ratio: 0.3,
        task_loss_requirement: None,
    };
    assert_eq!(fused.selection_for(&options), Selection::Device);
    assert!(fused.batches_streams());
    let streams = 3;
    let mut batched: Vec<StreamState<Bk>> = (0..streams).map(|_| fused.new_stream()).collect();
    let mut alone: Vec<StreamState<Bk>> = (0..streams).map(|_| host.new_stream()).collect();
    let mut moved = fused.new_stream();
    for t in 0..3 {
        let video = Tensor::<Bk, 4>::random([streams, 3, 224, 224], Distribution::Default, &device);
        let values = video.clone().into_data().into_vec::<f32>().unwrap();
        let input = ModelInput::from_vec(streams, 224, values).unwrap();
        let copy = batched[0].clone();
        let together = fused
            .step_streams_input(&mut batched, &input, &options)
            .unwrap();
        for (i, state) in alone.iter_mut().enumerate() {
            let frame = video.clone().narrow(0, i, 1).reshape([3, 224, 224]);
            let own = host.step(state, frame, &options).unwrap();
            assert_eq!(together[i], own, "frame {t}, stream {i}");
        }
        // The copy made before the frame decodes it again on its own buffer.
        let mut copy = copy;
        let frame0 = video.clone().narrow(0, 0, 1).reshape([3, 224, 224]);
        assert_eq!(
            fused.step(&mut copy, frame0.clone(), &options).unwrap(),
            together[0]
        );
        // A stream moved between the engines every frame.
        let model = if t % 2 == 0 { &host } else { &fused };
        moved = model.convert_stream(&moved).unwrap();
        assert_eq!(
            model.step(&mut moved, frame0, &options).unwrap(),
            together[0]
        );
    }
}

/// A model whose shapes the kernels do not take is passed to the Burn-ops
/// engine, with the reason kept; naming the fused engine then is a typed
/// error that says why.
#[test]
fn unsupported_shapes_fall_back_to_burn_ops() {
    let mut config = AutoGazeConfig::release();
    config.head_dim = 31;
    config.heads = 6;
    let mut model = AutoGaze::<Bk>::random(config, 1, &Default::default());
    assert_eq!(model.engine_name(), engines::BURN_OPS);
    let why = model.engine_fallback().expect("the reason is kept");
    assert!(why.contains("head_dim 31"), "{why}");
    let err = model
        .set_engine(engines::FUSED_GPU)
        .unwrap_err()
        .to_string();
    assert!(err.contains("head_dim 31"), "{err}");
    // The vec4 reads: widths a multiple of 4, heads of 8.
    let refused = |f: fn(&mut AutoGazeConfig)| {
        let mut config = AutoGazeConfig::release();
        f(&mut config);
        super::unsupported(&config).expect("refused")
    };
    let why = refused(|c| (c.heads, c.head_dim) = (16, 12));
    assert!(
        why.contains("head_dim 12") && why.contains("multiple of 8"),
        "{why}"
    );
    let why = refused(|c| c.intermediate = 386);
    assert!(
        why.contains("MLP width 386") && why.contains("multiple of 4"),
        "{why}"
    );
}

/// A model too wide for the kernels' workgroup memory is refused, the sizes
/// named (so it stays on the Burn-ops engine, as above); the release model
/// fits.
#[test]
fn too_wide_a_model_is_refused_with_its_sizes() {
    assert_eq!(super::unsupported(&AutoGazeConfig::release()), None);
    let mut config = AutoGazeConfig::release();
    (config.hidden, config.heads, config.head_dim) = (2048, 16, 128);
    let why = super::unsupported(&config).expect("refused");
    assert!(
        why.contains("hidden size 2048") && why.contains("16384"),
        "{why}"
    );
}

/// The picking kernel against the selection's Burn ops over three chunks
/// of random heads (no ties): the same record; and on equal logits it takes
/// the lowest unbarred id, as the host selection does.
#[test]
fn the_picking_kernel_equals_the_burn_ops_picks() {
    use super::super::engine::{FramePicker, Heads};
    use super::super::select::OpsPicker;
    let device: burn::backend::wgpu::WgpuDevice = Default::default();
    let (fused, _) = models(1, 3);
    let c = &fused.config;
    let (n, k, vocab, pad) = (2, c.multi_token, c.vocab(), c.layout.pad_id());
    let budget = 2 * k + 3;
    let mut kernel = fused
        .engine
        .frame_picker(n, budget)
        .expect("the fused engine picks");
    let mut ops: Box<dyn FramePicker<Bk>> =
        Box::new(OpsPicker::new(n, k, vocab, pad, device.clone()));
    for (j, m) in [(0, k), (1, k), (2, 3)] {
        let logits = Tensor::<Bk, 2>::random([n, k * vocab], Distribution::Default, &device);
        let task_loss = Tensor::<Bk, 2>::random([n, k], Distribution::Default, &device);
        let heads = Heads::Device { logits, task_loss };
        let a = kernel.pick(heads.clone(), j, m).unwrap().into_host();
        let b = ops.pick(heads, j, m).unwrap().into_host();
        assert_eq!(a, b, "chunk {j}");
    }
    let read = |picker: Box<dyn FramePicker<Bk>>| {
        crate::wait::block_on("the test's picks", picker.read()).unwrap()
    };
    assert_eq!(read(kernel), read(ops));
    let mut kernel = fused.engine.frame_picker(1, k).unwrap();
    let flat = Heads::Device {
        logits: Tensor::<Bk, 2>::zeros([1, k * vocab], &device),
        task_loss: Tensor::<Bk, 2>::zeros([1, k], &device),
    };
    let ids = kernel.pick(flat, 0, k).unwrap().into_host();
    let lowest: Vec<u32> = (0..vocab as u32).filter(|&id| id != pad).take(k).collect();
    assert_eq!(ids, lowest);
}

/// Not a check: runs `AUTOGAZE_FRAMES` (default 2) full-budget streamed
/// frames of the release model on the default engine, for counting every
/// kernel a frame launches (Burn ops included) from CubeCL's profiling log:
/// `CUBECL_DEBUG_LOG=/tmp/k2.log CUBECL_DEBUG_OPTION=profile-medium
/// AUTOGAZE_FRAMES=2 cargo test -p burn_autogaze --features wgpu --lib
/// kernels_a_frame -- --ignored`, again with 4 frames, and the difference
/// of the two logs' `WgpuRuntime` lines over 2 (PERF_LOOP, 2026-12-07).
#[test]
#[ignore]
fn kernels_a_frame() {
    let frames: usize = std::env::var("AUTOGAZE_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let device = Default::default();
    let model = AutoGaze::<Bk>::random(AutoGazeConfig::release(), 1, &device);
    let options = GenerateOptions {
        gazing_ratio: 0.75,
        task_loss_requirement: None,
    };
    let mut state = model.new_stream();
    state.set_horizon(1);
    let before = model.engine_dispatches();
    for i in 0..frames {
        let frame = Tensor::<Bk, 3>::random([3, 224, 224], Distribution::Default, &device);
        let t = std::time::Instant::now();
        model.step(&mut state, frame, &options).unwrap();
        eprintln!("frame {i}: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    }
    eprintln!(
        "{} frames on {}: {:?} engine dispatches, {} readbacks",
        frames,
        model.engine_name(),
        model.engine_dispatches().zip(before).map(|(a, b)| a - b),
        state.readbacks()
    );
}

/// The encoder's kernels against the host engine's encoder: two streams
/// in one call, two frames then one at a time (each stream's context made
/// by the kernels and read whole by the next call), then the streams in
/// the other order (their contexts joined), a video read through strides
/// (a stream's frames from a permuted buffer): tokens and contexts within
/// 1e-4, two dispatches a call.
#[test]
fn the_encoder_kernels_equal_the_host_encoder() {
    let device = Default::default();
    let (fused, host) = models(1, 3);
    let mut states = [
        [fused.new_stream(), fused.new_stream()],
        [host.new_stream(), host.new_stream()],
    ];
    for (call, t) in [2usize, 1, 1, 1].into_iter().enumerate() {
        let video = Tensor::<Bk, 5>::random([t, 2, 3, 224, 224], Distribution::Default, &device)
            .swap_dims(0, 1);
        let mut tokens = Vec::new();
        let mut contexts = Vec::new();
        for (model, pair) in [&fused, &host].into_iter().zip(states.iter_mut()) {
            let before = model.engine.dispatches();
            let [a, b] = pair;
            if call == 3 {
                std::mem::swap(a, b);
            }
            let mut caches: Vec<&mut dyn EngineCache<Bk>> =
                vec![a.cache.as_mut(), b.cache.as_mut()];
            let out = model.engine.encode(video.clone(), &mut caches).unwrap();
            assert_eq!(out.dims(), [2, t, 196, model.config.hidden]);
            tokens.push(out.into_data().into_vec::<f32>().unwrap());
            contexts.push([a.cache.export().conv, b.cache.export().conv]);
            if let Some(before) = before {
                assert_eq!(
                    model.engine.dispatches().unwrap() - before,
                    2,
                    "call {call}"
                );
            }
        }
        let diff = max_diff(&tokens[0], &tokens[1]);
        assert!(diff <= 1e-4, "call {call}: tokens differ by {diff}");
        for (s, (kernels, host)) in contexts[0].iter().zip(&contexts[1]).enumerate() {
            assert!(!kernels.is_empty(), "call {call}, stream {s}");
            let diff = max_diff(kernels, host);
            assert!(
                diff <= 1e-4,
                "call {call}, stream {s}: contexts differ by {diff}"
            );
        }
    }
}

/// Encoder shapes the kernels do not take leave the encoder in Burn ops
/// on the fused engine, the reason named by the model, the tokens the host
/// engine's.
#[test]
fn unsupported_encoder_shapes_are_named() {
    let device = Default::default();
    let mut config = AutoGazeConfig::release();
    (config.vision_hidden, config.layers) = (190, 1);
    let fused = AutoGaze::<Bk>::random(config, 1, &device);
    assert_eq!(fused.engine_name(), NAME);
    let why = fused.engine_fallback().expect("the reason is kept");
    assert!(
        why.contains("encoder") && why.contains("190") && why.contains("multiples of 4"),
        "{why}"
    );
    let mut host = fused.clone();
    host.set_engine(engines::HOST).unwrap();
    assert_eq!(host.engine_fallback(), None);
    let frame = Tensor::<Bk, 4>::random([1, 3, 224, 224], Distribution::Default, &device);
    let tokens: Vec<Vec<f32>> = [&fused, &host]
        .into_iter()
        .map(|m| {
            let mut state = m.new_stream();
            let t = m.encode(&mut state, frame.clone()).unwrap();
            t.into_data().into_vec::<f32>().unwrap()
        })
        .collect();
    assert!(max_diff(&tokens[0], &tokens[1]) <= 1e-4);
}

/// What the adapter's best matrix product reaches (the ceiling of any
/// engine's arithmetic on it): Burn's autotuned matmul over square f32
/// products, multiply-adds a second, after a warm-up. Run with
/// `cargo test -p burn_autogaze --features wgpu --lib gemm_ceiling --
/// --ignored --nocapture` (PERF_LOOP, fifteenth session).
#[test]
#[ignore]
fn gemm_ceiling() {
    use burn::tensor::backend::Backend;
    let device = Default::default();
    for n in [256usize, 512, 1024] {
        let a = Tensor::<Bk, 2>::random([n, n], Distribution::Default, &device);
        let b = Tensor::<Bk, 2>::random([n, n], Distribution::Default, &device);
        let _ = a.clone().matmul(b.clone()).into_data();
        let reps = (2_000_000_000 / (n * n * n)).clamp(2, 200);
        Bk::sync(&device).unwrap();
        let t = std::time::Instant::now();
        for _ in 0..reps {
            let _ = a.clone().matmul(b.clone());
        }
        Bk::sync(&device).unwrap();
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "{n}^3 x {reps}: {:.2} G multiply-adds a second",
            (n * n * n * reps) as f64 / secs / 1e9
        );
    }
}

/// The encoder's wall time a frame on each engine (one stream, a frame at
/// a time with its temporal context, the device synced after each), after
/// a warm-up: `cargo test -p burn_autogaze --features wgpu --lib
/// encoder_time -- --ignored --nocapture` (PERF_LOOP, fifteenth session).
#[test]
#[ignore]
fn encoder_time() {
    use burn::tensor::backend::Backend;
    let device = Default::default();
    let fused = AutoGaze::<Bk>::random(AutoGazeConfig::release(), 1, &device);
    let mut reference = fused.clone();
    reference.set_engine(engines::BURN_OPS).unwrap();
    let frame = Tensor::<Bk, 4>::random([1, 3, 224, 224], Distribution::Default, &device);
    for round in 0..3 {
        for model in [&fused, &reference] {
            let mut state = model.new_stream();
            for _ in 0..3 {
                let _ = model.encode(&mut state, frame.clone()).unwrap();
            }
            Bk::sync(&device).unwrap();
            let reps = 10;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                let _ = model.encode(&mut state, frame.clone()).unwrap();
                Bk::sync(&device).unwrap();
            }
            eprintln!(
                "round {round}, {}: {:.1} ms a frame",
                model.engine_name(),
                t.elapsed().as_secs_f64() * 1e3 / reps as f64
            );
        }
    }
}

/// Three streams in lockstep share each dispatch of a call (the layers',
/// the last row's, the heads'), their caches side by side in one buffer:
/// heads within 1e-4 of the host engine's, call after call, and a stream's
/// keys read back from its slot; the caches move into a shared buffer only
/// when they are not there already (after a stream's eviction), one
/// dispatch a stream.
#[test]
fn lockstep_streams_share_each_dispatch() {
    let device = Default::default();
    let (fused, host) = models(2, 7);
    let (n, d, rows) = (3usize, fused.config.hidden, 40usize);
    let vision = Tensor::<Bk, 3>::random([n, rows, d], Distribution::Default, &device);
    let positions: Vec<i64> = (0..rows as i64).collect();
    let mask = vec![true; rows];
    let ids: Vec<u32> = (0..n as u32 * 2).map(|i| 5 + 11 * i).collect();
    let mut heads = Vec::new();
    let mut counts = Vec::new();
    let mut exported = Vec::new();
    for model in [&fused, &host] {
        let mut states: Vec<_> = (0..n).map(|_| model.new_stream()).collect();
        let mut keys = 0usize;
        for call in 0..4 {
            let before = model.engine.dispatches();
            if call == 3 {
                // A stream evicts its oldest key: every stream follows
                // (lockstep), the first's cache leaves the shared buffer.
                for s in &mut states {
                    s.cache.evict_front(1);
                }
                keys -= 1;
            }
            let (call_ids, call_vision, new) = if call == 0 {
                (None, Some(vision.clone()), rows)
            } else {
                (Some(ChunkIds::Host(ids.clone())), None, 2)
            };
            let pos: Vec<i64> = (keys as i64..(keys + new) as i64).collect();
            let key_mask = vec![true; keys + new];
            let mut caches: Vec<&mut dyn EngineCache<Bk>> =
                states.iter_mut().map(|s| s.cache.as_mut()).collect();
            let out = model
                .engine
                .decode(
                    DecoderCall {
                        streams: n,
                        ids: call_ids,
                        vision: call_vision,
                        positions: if call == 0 { &positions } else { &pos },
                        key_mask: if call == 0 { &mask } else { &key_mask },
                    },
                    &mut caches,
                )
                .unwrap();
            keys += new;
            heads.push(out.into_host());
            if let Some(before) = before {
                counts.push(model.engine.dispatches().unwrap() - before);
            }
            if call == 2 {
                // Read back from its slot of the shared buffer.
                exported.push(states[1].cache.export());
            }
        }
    }
    let (f, h) = (&exported[0], &exported[1]);
    assert_eq!(f.keys, h.keys);
    for (a, b) in f.layers.iter().zip(&h.layers) {
        assert!(max_diff(&a.0, &b.0) <= 1e-4 && max_diff(&a.1, &b.1) <= 1e-4);
    }
    for call in 0..4 {
        let (f, h) = (&heads[call], &heads[4 + call]);
        assert!(max_diff(&f.0, &h.0) <= 1e-4, "call {call}: logits");
        assert!(max_diff(&f.1, &h.1) <= 1e-4, "call {call}: task losses");
    }
    // 2 layers + the last row + the heads a call, whatever the streams;
    // the first call's empty caches move nothing; the eviction moves each
    // stream's keys once into its own buffer and once back into a shared one.
    assert_eq!(counts, vec![4, 4, 4, 4 + n as u64 + n as u64]);
}
