//! The model's streams, selection and engines against each other.

use burn::tensor::Tensor;

use super::engine::EngineCache;
use super::options::max_tokens;
use super::*;

/// Streams encoded as one batch give what each stream gives on its own,
/// over frames that carry temporal context (the conv cache).
#[cfg(feature = "ndarray")]
#[test]
fn batched_streams_equal_streams_stepped_alone() {
    use crate::preprocess::ModelInput;
    use burn::backend::NdArray;
    use burn::tensor::Distribution;
    type Bk = NdArray<f32>;
    let device = Default::default();
    let mut model = AutoGaze::<Bk>::random(AutoGazeConfig::release(), 3, &device);
    let options = GenerateOptions {
        gazing_ratio: 0.05,
        task_loss_requirement: None,
    };
    let streams = 3;
    // Lockstep (shared decoder calls) on both selections, and a gate
    // (streams decoded one after another).
    let gated = GenerateOptions {
        task_loss_requirement: Some(0.0),
        ..options
    };
    assert!(!model.batches_streams(), "not on the CPU by default");
    // The CPU selects on the host, gate or not, unless told otherwise.
    assert_eq!(model.selection(), None);
    assert_eq!(model.selection_for(&options), Selection::Host);
    assert_eq!(model.selection_for(&gated), Selection::Host);
    for (selection, options, batch) in [
        (Selection::Host, options, true),
        (Selection::Host, options, false),
        (Selection::Device, options, true),
        (Selection::Device, gated, true),
    ] {
        model.set_selection(selection);
        model.set_batch_streams(batch);
        let mut batched: Vec<StreamState<Bk>> = (0..streams).map(|_| model.new_stream()).collect();
        let mut alone = batched.clone();
        for t in 0..3 {
            let video =
                Tensor::<Bk, 4>::random([streams, 3, 224, 224], Distribution::Default, &device);
            let values = video.clone().into_data().into_vec::<f32>().unwrap();
            let input = ModelInput::from_vec(streams, 224, values).unwrap();
            let refs: Vec<&mut StreamState<Bk>> = batched.iter_mut().collect();
            let shared = lockstep(&refs, &options);
            assert_eq!(shared, options.task_loss_requirement.is_none());
            let together = model
                .step_streams_input(&mut batched, &input, &options)
                .unwrap();
            for (i, state) in alone.iter_mut().enumerate() {
                let frame = video.clone().narrow(0, i, 1).reshape([3, 224, 224]);
                let own = model.step(state, frame, &options).unwrap();
                let what =
                    format!("{selection:?}, {options:?}, batch {batch}, frame {t}, stream {i}");
                assert_eq!(own, together[i], "{what}");
                assert_eq!(state.cached_keys(), batched[i].cached_keys(), "{what}");
                assert_eq!(state.readbacks(), batched[i].readbacks(), "{what}");
            }
        }
    }
    let mut batched: Vec<StreamState<Bk>> = (0..streams).map(|_| model.new_stream()).collect();
    let input = ModelInput::new(224);
    assert!(
        model
            .step_streams_input(&mut batched, &input, &options)
            .is_err()
    );
    // The encoder itself: each stream's tokens (with its own temporal
    // context) are those of the stream encoded alone, and differ
    // between streams.
    // Both engines.
    for engine in [engines::BURN_OPS, engines::HOST] {
        model.set_engine(engine).unwrap();
        encoder_streams_equal_streams_alone(&model, streams);
    }
}

/// The model's encoder over `streams` streams at once against each
/// stream encoded alone.
#[cfg(feature = "ndarray")]
fn encoder_streams_equal_streams_alone(
    model: &AutoGaze<burn::backend::NdArray<f32>>,
    streams: usize,
) {
    use burn::backend::NdArray;
    use burn::tensor::Distribution;
    type Bk = NdArray<f32>;
    let device = Default::default();
    let mut batched: Vec<StreamState<Bk>> = (0..streams).map(|_| model.new_stream()).collect();
    let mut own = batched.clone();
    for _ in 0..2 {
        let video =
            Tensor::<Bk, 5>::random([streams, 1, 3, 224, 224], Distribution::Default, &device);
        let mut caches: Vec<&mut dyn EngineCache<Bk>> =
            batched.iter_mut().map(|s| s.cache.as_mut()).collect();
        let together = model.engine.encode(video.clone(), &mut caches).unwrap();
        for (i, state) in own.iter_mut().enumerate() {
            let frame = video.clone().narrow(0, i, 1).reshape([1, 3, 224, 224]);
            let alone = model.encode(state, frame).unwrap();
            let [_, tk, d] = alone.dims();
            let alone = alone.reshape([1, tk, d]);
            let batch = together.clone().narrow(0, i, 1).reshape(alone.dims());
            let diff = (alone.clone() - batch).abs().max().into_scalar();
            assert!(diff <= 1e-5, "{}, stream {i}: {diff}", model.engine_name());
            if i > 0 {
                let first = together.clone().narrow(0, 0, 1).reshape(alone.dims());
                assert!((alone - first).abs().max().into_scalar() > 1e-3);
            }
        }
    }
}

/// The host engine (the ndarray default) gives the Burn-ops engine's
/// tokens, and its embeddings, logits and task losses within 1e-4 at
/// every frame and decoder call: full budget, a horizon that evicts, a
/// task-loss gate; a stream moved from one engine to the other every
/// frame ([`AutoGaze::convert_stream`]) decodes as either alone.
#[cfg(feature = "ndarray")]
#[test]
fn the_host_engine_equals_burn_ops() {
    use burn::backend::NdArray;
    use burn::tensor::Distribution;
    type Bk = NdArray<f32>;
    let device = Default::default();
    let fused = AutoGaze::<Bk>::random(AutoGazeConfig::release(), 5, &device);
    assert_eq!(fused.engine_name(), engines::HOST, "the ndarray default");
    assert_eq!(fused.engine_fallback(), None);
    let mut ops = fused.clone();
    ops.set_engine(engines::BURN_OPS).unwrap();
    assert_eq!(ops.engine_name(), engines::BURN_OPS);
    assert!(ops.set_engine("no-such-engine").is_err());
    assert_eq!(ops.engine_name(), engines::BURN_OPS);
    let frames: Vec<Tensor<Bk, 3>> = (0..4)
        .map(|_| Tensor::random([3, 224, 224], Distribution::Default, &device))
        .collect();
    for (requirement, horizon) in [(None, 0), (None, 1), (Some(0.05), 2)] {
        let options = GenerateOptions {
            gazing_ratio: 0.75,
            task_loss_requirement: requirement,
        };
        let mut streams = [fused.new_stream(), ops.new_stream(), ops.new_stream()];
        for s in &mut streams {
            s.set_horizon(horizon);
        }
        for (t, frame) in frames.iter().enumerate() {
            let mut out = Vec::new();
            let mut traces = Vec::new();
            let mut embeddings = Vec::new();
            for (i, state) in streams.iter_mut().enumerate() {
                // Stream 2 switches kernels every frame.
                let model = if i == 0 || (i == 2 && t % 2 == 1) {
                    &fused
                } else {
                    &ops
                };
                if state.engine() != model.engine_name() {
                    let mut wrong = state.clone();
                    assert!(model.step(&mut wrong, frame.clone(), &options).is_err());
                    *state = model.convert_stream(state).unwrap();
                }
                assert_eq!(state.engine(), model.engine_name());
                let tokens = model.encode(state, frame.clone().unsqueeze::<4>()).unwrap();
                embeddings.push(tokens.clone());
                let ft = tokens.reshape([196, model.config.hidden]);
                let mut trace = Vec::new();
                out.push(
                    model
                        .decode_frame(state, ft, &options, Some(&mut trace))
                        .unwrap(),
                );
                traces.push(trace);
            }
            let what = format!("requirement {requirement:?}, horizon {horizon}, frame {t}");
            for e in [&embeddings[0], &embeddings[2]] {
                let diff = (e.clone() - embeddings[1].clone())
                    .abs()
                    .max()
                    .into_scalar();
                assert!(diff <= 1e-4, "{what}: embeddings differ by {diff}");
            }
            assert_eq!(out[0], out[1], "{what}");
            assert_eq!(out[2], out[1], "{what}: switching decoders");
            assert_eq!(streams[0].cached_keys(), streams[1].cached_keys(), "{what}");
            assert_eq!(streams[2].cached_keys(), streams[1].cached_keys(), "{what}");
            for trace in [&traces[0], &traces[2]] {
                assert_eq!(trace.len(), traces[1].len(), "{what}");
                for (a, b) in trace.iter().zip(&traces[1]) {
                    assert_eq!(a.positions, b.positions, "{what}");
                    for (x, y) in [(&a.logits, &b.logits), (&a.task_loss, &b.task_loss)] {
                        let diff = x
                            .iter()
                            .zip(y)
                            .map(|(p, q)| (p - q).abs())
                            .fold(0f32, f32::max);
                        assert!(diff <= 1e-4, "{what}: {diff}");
                    }
                }
            }
        }
    }
}

/// Selection on the device (one readback per frame) gives the host
/// path's ids, pads, cached keys and later frames: full budget, a small
/// one, and a task-loss gate that stops frames mid-budget (the KV cache
/// is cut back to the stop).
#[cfg(feature = "ndarray")]
#[test]
fn device_selection_equals_host_selection() {
    use burn::backend::NdArray;
    use burn::tensor::Distribution;
    type Bk = NdArray<f32>;
    let device = Default::default();
    let mut model = AutoGaze::<Bk>::random(AutoGazeConfig::release(), 11, &device);
    assert_eq!(
        model.selection_for(&GenerateOptions::default()),
        Selection::Host,
        "ndarray selects on the host"
    );
    model.set_selection(Selection::Device);
    let mut host_model = model.clone();
    host_model.set_selection(Selection::Host);
    let frames: Vec<Tensor<Bk, 3>> = (0..3)
        .map(|_| Tensor::random([3, 224, 224], Distribution::Default, &device))
        .collect();
    // A requirement met inside the first frame's second chunk.
    let mut probe = Vec::new();
    let mut s = model.new_stream();
    let tokens = model
        .encode(&mut s, frames[0].clone().unsqueeze::<4>())
        .unwrap();
    let ft = tokens.reshape([196, model.config.hidden]);
    let full = GenerateOptions {
        gazing_ratio: 0.75,
        task_loss_requirement: None,
    };
    model
        .decode_frame(&mut s, ft, &full, Some(&mut probe))
        .unwrap();
    let second = &probe[1].task_loss;
    let gate = second.iter().copied().fold(f32::INFINITY, f32::min);
    for (ratio, requirement) in [(0.75, None), (0.1, None), (0.75, Some(gate))] {
        let options = GenerateOptions {
            gazing_ratio: ratio,
            task_loss_requirement: requirement,
        };
        let (mut host, mut device_side) = (model.new_stream(), model.new_stream());
        let mut untraced = host_model.new_stream();
        let mut trace = Vec::new();
        for (t, frame) in frames.iter().enumerate() {
            let tokens = model
                .encode(&mut host, frame.clone().unsqueeze::<4>())
                .unwrap();
            let ft = tokens.reshape([196, model.config.hidden]);
            let a = model
                .decode_frame(&mut host, ft, &options, Some(&mut trace))
                .unwrap();
            let b = model
                .step(&mut device_side, frame.clone(), &options)
                .unwrap();
            let c = host_model
                .step(&mut untraced, frame.clone(), &options)
                .unwrap();
            assert_eq!(a, c, "untraced host selection");
            let what = format!("ratio {ratio}, requirement {requirement:?}, frame {t}");
            assert_eq!(a.ids, b.ids, "{what}");
            assert_eq!(a.padded, b.padded, "{what}");
            assert_eq!(host.cached_keys(), device_side.cached_keys(), "{what}");
            assert_eq!(host.next_pos, device_side.next_pos, "{what}");
            if requirement.is_some() && t == 0 {
                let budget = max_tokens(ratio, 265).unwrap();
                assert!(a.ids.len() < budget, "the gate stops frame 0 early");
            }
        }
        assert_eq!(device_side.readbacks(), frames.len() as u64);
        assert_eq!(host.readbacks(), 2 * trace.len() as u64);
        assert_eq!(untraced.readbacks(), host.readbacks());
    }
}

#[test]
fn budget_follows_the_reference_rounding() {
    assert_eq!(max_tokens(0.75, 265).unwrap(), 198);
    assert_eq!(max_tokens(0.03, 265).unwrap(), 7);
    assert_eq!(max_tokens(0.1, 265).unwrap(), 26);
    assert_eq!(max_tokens(0.3, 265).unwrap(), 79);
    assert_eq!(max_tokens(0.001, 265).unwrap(), 1);
    assert_eq!(max_tokens(1.0, 265).unwrap(), 265);
    for bad in [0.0, -0.5, 1.5, f32::NAN] {
        assert!(max_tokens(bad, 265).is_err(), "{bad}");
    }
}

/// An engine from outside the registry plugs in through the trait alone:
/// one that wraps another and counts its calls decodes the wrapped
/// engine's tokens, and a stream moves onto it and back.
#[cfg(feature = "ndarray")]
#[test]
fn an_engine_outside_the_registry_plugs_in() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use burn::backend::NdArray;
    use burn::tensor::Distribution;
    type Bk = NdArray<f32>;

    #[derive(Debug)]
    struct Counting {
        inner: Arc<dyn Engine<Bk>>,
        encodes: AtomicUsize,
        decodes: AtomicUsize,
    }
    impl Engine<Bk> for Counting {
        fn name(&self) -> &'static str {
            self.inner.name()
        }
        fn new_cache(&self) -> Box<dyn EngineCache<Bk>> {
            self.inner.new_cache()
        }
        fn import(&self, portable: &PortableCache) -> crate::Result<Box<dyn EngineCache<Bk>>> {
            self.inner.import(portable)
        }
        fn encode(
            &self,
            video: Tensor<Bk, 5>,
            caches: &mut [&mut dyn EngineCache<Bk>],
        ) -> crate::Result<Tensor<Bk, 4>> {
            self.encodes.fetch_add(1, Ordering::Relaxed);
            self.inner.encode(video, caches)
        }
        fn decode(
            &self,
            call: DecoderCall<'_, Bk>,
            caches: &mut [&mut dyn EngineCache<Bk>],
        ) -> crate::Result<Heads<Bk>> {
            self.decodes.fetch_add(1, Ordering::Relaxed);
            self.inner.decode(call, caches)
        }
    }

    let device = Default::default();
    let mut model = AutoGaze::<Bk>::random(AutoGazeConfig::release(), 7, &device);
    model.set_engine(engines::BURN_OPS).unwrap();
    let reference = model.clone();
    let counting = Arc::new(Counting {
        inner: model.engine.clone(),
        encodes: AtomicUsize::new(0),
        decodes: AtomicUsize::new(0),
    });
    model.set_engine_instance(counting.clone());
    let options = GenerateOptions {
        gazing_ratio: 0.1,
        task_loss_requirement: None,
    };
    let (mut a, mut b) = (model.new_stream(), reference.new_stream());
    for _ in 0..2 {
        let frame = Tensor::<Bk, 3>::random([3, 224, 224], Distribution::Default, &device);
        let got = model.step(&mut a, frame.clone(), &options).unwrap();
        assert_eq!(got, reference.step(&mut b, frame, &options).unwrap());
    }
    // 26 tokens a frame: one prefill and two decode calls of 10.
    assert_eq!(counting.encodes.load(Ordering::Relaxed), 2);
    assert_eq!(counting.decodes.load(Ordering::Relaxed), 2 * 3);
    // Onto the host engine and back: the same caches.
    let mut host = model.clone();
    host.set_engine(engines::HOST).unwrap();
    let moved = host.convert_stream(&a).unwrap();
    assert_eq!(moved.engine(), engines::HOST);
    let back = model.convert_stream(&moved).unwrap();
    assert_eq!(back.cache.export(), a.cache.export());
    assert_eq!(back.cached_keys(), a.cached_keys());
}
