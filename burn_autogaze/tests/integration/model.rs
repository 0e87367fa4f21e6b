//! Model parity against the reference fixtures: embeddings, logits and
//! task-loss values within float tolerance; position ids, token ids, pad
//! flags, counts and per-scale masks exactly.

use serde_json::json;
use std::path::PathBuf;

use burn::backend::NdArray;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use burn_autogaze::model::{AutoGaze, DecodeStep, FrameGaze, GenerateOptions, Selection};
use burn_autogaze::tensor_file::TensorFile;

use crate::fixtures::fixtures;

type B = NdArray<f32>;

fn model_dir(name: &str) -> PathBuf {
    fixtures().join(name)
}

fn load(name: &str) -> AutoGaze<B> {
    AutoGaze::<B>::load(&model_dir(name), &Default::default()).expect("model loads")
}

fn case(model: &str, name: &str) -> (TensorFile, serde_json::Value) {
    let dir = model_dir(model).join("cases");
    let file = TensorFile::open(&dir.join(format!("{name}.safetensors"))).expect("case tensors");
    let json = std::fs::read_to_string(dir.join(format!("{name}.json"))).expect("case json");
    (file, serde_json::from_str(&json).expect("case json parses"))
}

/// Reference-style ids: frame-local id + 265 t (pads: 265 (t + 1)).
fn global_ids(frames: &[FrameGaze]) -> Vec<i64> {
    frames
        .iter()
        .enumerate()
        .flat_map(|(t, f)| f.ids.iter().map(move |&id| id as i64 + 265 * t as i64))
        .collect()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn tensor5(file: &TensorFile, name: &str) -> Tensor<B, 5> {
    tensor5_on(file, name, &Default::default())
}

fn tensor5_on<Bk: Backend>(file: &TensorFile, name: &str, device: &Bk::Device) -> Tensor<Bk, 5> {
    let t = file.f32(name, None).expect(name);
    let s: [usize; 5] = t.shape.clone().try_into().expect("5-d");
    Tensor::from_data(TensorData::new(t.values, s), device)
}

/// The reference's tokens of a clip (global ids, pad flags, counts).
struct Tokens {
    ids: Vec<i64>,
    pads: Vec<i64>,
    counts: Vec<i64>,
}

/// Our decoder calls and the reference's, to explain a divergence.
struct Calls<'a> {
    trace: &'a [DecodeStep],
    logits: Option<&'a [f32]>,
    task_loss: &'a [f32],
    k: usize,
    vocab: usize,
    requirement: Option<f32>,
}

/// The gap between the two largest values of `v`.
fn top2_margin(v: &[f32]) -> f32 {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &x in v {
        if x > a {
            (a, b) = (x, a);
        } else if x > b {
            b = x;
        }
    }
    a - b
}

/// Where our tokens first differ from the reference's: frame, decode step
/// (the frame's n-th decoder call) and head, both tokens, the top-2 logit
/// margin there (ours and the reference's) and the task-loss gap.
fn first_divergence(out: &[FrameGaze], reference: &Tokens, calls: &Calls) -> String {
    let mut start = 0usize;
    for (f, frame) in out.iter().enumerate() {
        let n = reference.counts.get(f).copied().unwrap_or(0) as usize;
        let theirs = start..(start + n).min(reference.ids.len());
        let ours: Vec<(i64, i64)> = frame
            .ids
            .iter()
            .zip(&frame.padded)
            .map(|(&id, &p)| (id as i64 + 265 * f as i64, p as i64))
            .collect();
        let refs: Vec<(i64, i64)> = reference.ids[theirs.clone()]
            .iter()
            .zip(&reference.pads[theirs])
            .map(|(&id, &p)| (id, p))
            .collect();
        start += n;
        let Some(i) = (0..ours.len().max(refs.len())).find(|&i| ours.get(i) != refs.get(i)) else {
            continue;
        };
        let (step, head) = (i / calls.k, i % calls.k);
        let call = calls
            .trace
            .iter()
            .enumerate()
            .filter(|(_, s)| s.frame == f)
            .nth(step)
            .map(|(c, _)| c);
        let Some(c) = call else {
            return format!(
                "frame {f}, token {i}: ours {:?}, reference {:?} (no decoder call {step} of the frame: the frame ended earlier)",
                ours.get(i),
                refs.get(i)
            );
        };
        let (v, k) = (calls.vocab, calls.k);
        let head_logits = |l: &[f32]| top2_margin(&l[head * v..(head + 1) * v]);
        let ours_margin = head_logits(&calls.trace[c].logits);
        let ref_margin = calls
            .logits
            .and_then(|l| l.get(c * k * v..(c + 1) * k * v))
            .map(head_logits);
        let tl = calls.trace[c].task_loss[head];
        let ref_tl = calls.task_loss.get(c * k + head).copied();
        return format!(
            "frame {f}, decode step {step} (decoder call {c}), head {head}: ours (id, pad) {:?}, reference {:?}; top-2 logit margin {ours_margin:e} (reference {ref_margin:?}); task loss {tl} (reference {ref_tl:?}, gap {:?}; requirement {:?})",
            ours.get(i),
            refs.get(i),
            ref_tl.map(|r| tl - r),
            calls.requirement
        );
    }
    "the counts (every frame's tokens agree as far as both go)".into()
}

/// Runs a case and checks every stored output.
fn check_case(model_name: &str, name: &str, input: &str) {
    check_case_on(&load(model_name), model_name, name, input);
}

/// [`check_case`] on `model`, on any backend.
fn check_case_on<Bk: Backend>(model: &AutoGaze<Bk>, model_name: &str, name: &str, input: &str) {
    let device = model.device();
    let (file, meta) = case(model_name, name);
    let ratio = meta["gazing_ratio"].as_f64().expect("ratio") as f32;
    let requirement = meta["task_loss_requirement"].as_f64().map(|r| r as f32);
    let options = GenerateOptions {
        gazing_ratio: ratio,
        task_loss_requirement: requirement,
    };
    let video = tensor5_on::<Bk>(&file, input, &device);
    let [_, t, _, _, _] = video.dims();

    // Embeddings.
    let mut state = model.new_stream();
    let frames = video.clone().reshape([t, 3, 224, 224]);
    let emb = model.encode(&mut state, frames).expect("encode");
    let emb_host = emb.into_data().into_vec::<f32>().expect("f32");
    let reference = file.f32("embeddings", None).expect("embeddings").values;
    let emb_err = max_abs(&emb_host, &reference);

    // Generation with a trace of every decoder call.
    let mut trace: Vec<DecodeStep> = Vec::new();
    let out: Vec<FrameGaze> = model
        .generate(video.clone(), &options, Some(&mut trace))
        .expect("generate");
    // Untraced with selection on the device (one readback per frame): the
    // same tokens.
    let mut on_device = model.clone();
    on_device.set_selection(Selection::Device);
    let untraced = on_device.generate(video, &options, None).expect("generate");
    for (f, (a, b)) in out.iter().zip(&untraced).enumerate() {
        assert_eq!(
            (&a.ids, &a.padded),
            (&b.ids, &b.padded),
            "{name}: frame {f}, device-side selection"
        );
    }

    let positions: Vec<i64> = trace
        .iter()
        .flat_map(|s| s.positions.iter().copied())
        .collect();
    let ref_positions = file
        .i64("decode_step_position_ids", None)
        .expect("positions")
        .values;
    let ref_frames = file.i64("decode_step_frame", None).expect("frames").values;
    let our_frames: Vec<i64> = trace.iter().map(|s| s.frame as i64).collect();

    let logits_ref = file.f32("decode_step_logits", None).ok().map(|t| t.values);
    let tl_ref = file
        .f32("decode_step_task_loss", None)
        .expect("task loss")
        .values;
    let (mut logit_err, mut tl_err) = (0f32, 0f32);
    let steps = trace.len().min(ref_frames.len());
    for (i, step) in trace.iter().take(steps).enumerate() {
        let kv = step.logits.len();
        if let Some(l) = &logits_ref {
            logit_err = logit_err.max(max_abs(&step.logits, &l[i * kv..(i + 1) * kv]));
        }
        let kk = step.task_loss.len();
        tl_err = tl_err.max(max_abs(&step.task_loss, &tl_ref[i * kk..(i + 1) * kk]));
    }
    println!(
        "{model_name}/{name}: embeddings max abs {emb_err:e}, logits {logit_err:e}, task loss {tl_err:e} over {steps} decoder calls (tolerance 1e-4)"
    );

    let counts: Vec<i64> = out.iter().map(|f| f.ids.len() as i64).collect();
    let ids = global_ids(&out);
    let pads: Vec<i64> = out
        .iter()
        .flat_map(|f| f.padded.iter().map(|&p| p as i64))
        .collect();
    let reference = Tokens {
        ids: file.i64("gazing_pos", None).expect("pos").values,
        pads: file.i64("if_padded_gazing", None).expect("pads").values,
        counts: file.i64("num_gazing_each_frame", None).expect("num").values,
    };
    if (&ids, &pads, &counts) != (&reference.ids, &reference.pads, &reference.counts) {
        let config = model.config();
        let calls = Calls {
            trace: &trace,
            logits: logits_ref.as_deref(),
            task_loss: &tl_ref,
            k: config.multi_token,
            vocab: config.vocab(),
            requirement,
        };
        panic!(
            "{model_name}/{name}: tokens differ from the reference at {}",
            first_divergence(&out, &reference, &calls)
        );
    }
    assert_eq!(our_frames, ref_frames, "{name}: decoder calls per frame");
    assert_eq!(positions, ref_positions, "{name}: position ids");
    // Per-scale masks from the valid ids.
    let offsets = [0usize, 4, 20, 69, 265];
    for s in 0..4 {
        let reference = file
            .f32(&format!("gazing_mask_{s}"), None)
            .expect("mask")
            .values;
        let n = offsets[s + 1] - offsets[s];
        let mut ours = vec![0f32; t * n];
        for (ti, f) in out.iter().enumerate() {
            for id in f.valid() {
                let id = id as usize;
                if (offsets[s]..offsets[s + 1]).contains(&id) {
                    ours[ti * n + id - offsets[s]] = 1.0;
                }
            }
        }
        assert_eq!(ours, reference, "{name}: gazing_mask_{s}");
    }
    assert!(emb_err <= 1e-4, "{name}: embeddings {emb_err}");
    assert!(
        logit_err <= 1e-4 && tl_err <= 1e-4,
        "{name}: logits {logit_err} task loss {tl_err}"
    );
}

#[test]
fn tiny_ratio_only() {
    check_case("autogaze-tiny", "clip224_r020", "video");
}

#[test]
fn tiny_task_loss_interleaves_pads() {
    check_case("autogaze-tiny", "clip224_r030_tl", "video");
}

#[test]
fn k10_ratio_only_four_frames() {
    check_case("autogaze-random-k10", "clip224_r010", "video");
}

#[test]
fn k10_task_loss_negative_requirement() {
    check_case("autogaze-random-k10", "clip224_r075_tlneg", "video");
}

#[test]
fn k10_task_loss_first_token_only() {
    check_case("autogaze-random-k10", "clip224_r075_tl070", "video");
}

#[test]
fn k10_full_budget() {
    check_case("autogaze-random-k10", "clip224_r075_full", "video");
}

#[test]
fn k10_bicubic_input() {
    check_case(
        "autogaze-random-k10",
        "clip128x320_r010_bicubic",
        "model_input_224",
    );
}

/// Streaming, one frame per call, gives exactly the full-clip result.
#[test]
fn k10_streaming_equals_full_clip() {
    streaming_equals_full_clip(&load("autogaze-random-k10"));
}

/// [`k10_streaming_equals_full_clip`] on `model`, on any backend.
fn streaming_equals_full_clip<Bk: Backend>(model: &AutoGaze<Bk>) {
    let (file, meta) = case("autogaze-random-k10", "clip224_streaming_equiv");
    let options = GenerateOptions {
        gazing_ratio: meta["gazing_ratio"].as_f64().expect("ratio") as f32,
        task_loss_requirement: None,
    };
    let video = tensor5_on::<Bk>(&file, "video", &model.device());
    let [_, t, _, _, _] = video.dims();
    let mut state = model.new_stream();
    let mut ids = Vec::new();
    for i in 0..t {
        let frame = video.clone().slice([0..1, i..i + 1]).reshape([3, 224, 224]);
        let out = model.step(&mut state, frame, &options).expect("step");
        ids.extend(out.ids.iter().map(|&id| id as i64 + 265 * i as i64));
    }
    assert_eq!(state.frames(), t);
    assert_eq!(ids, file.i64("gazing_pos", None).expect("pos").values);
}

/// The whole chain from raw RGBA frames: preprocessing, then the model.
#[test]
fn k10_video_from_rgba() {
    use burn_autogaze::{Frame, Preprocessor, PreprocessorConfig};
    let model = load("autogaze-random-k10");
    let (file, meta) = case("autogaze-random-k10", "video_rgba_r030");
    let rgba = file.u8("rgba_u8", None).expect("rgba");
    let (t, h, w) = (rgba.shape[0], rgba.shape[1], rgba.shape[2]);
    let frames: Vec<Frame> = (0..t)
        .map(|i| {
            let px = rgba.values[i * h * w * 4..(i + 1) * h * w * 4].to_vec();
            Frame::new(i as u64, w as u32, h as u32, px, std::time::Duration::ZERO).expect("frame")
        })
        .collect();
    let cfg = PreprocessorConfig::from_file(
        &model_dir("autogaze-random-k10").join("preprocessor_config.json"),
    )
    .expect("cfg");
    let input = Preprocessor::new(cfg, 224)
        .expect("pre")
        .clip(&frames)
        .expect("clip");
    let options = GenerateOptions {
        gazing_ratio: meta["gazing_ratio"].as_f64().expect("ratio") as f32,
        task_loss_requirement: meta["task_loss_requirement"].as_f64().map(|r| r as f32),
    };
    let out = model
        .generate(input.to_tensor::<B>(&Default::default()), &options, None)
        .expect("generate");
    let ids = global_ids(&out);
    assert_eq!(ids, file.i64("gazing_pos", None).expect("pos").values);
}

/// Bad input is a typed error, never a panic.
#[test]
fn bad_model_input_is_a_clear_error() {
    use burn_autogaze::model::AutoGazeConfig;
    let model = load("autogaze-tiny");
    let video = Tensor::<B, 5>::zeros([1, 2, 3, 100, 224], &Default::default());
    let err = model
        .generate(video, &GenerateOptions::default(), None)
        .expect_err("shape")
        .to_string();
    assert!(err.contains("video") && err.contains("100"), "{err}");
    let video = Tensor::<B, 5>::zeros([1, 1, 3, 224, 224], &Default::default());
    let bad = GenerateOptions {
        gazing_ratio: f32::NAN,
        task_loss_requirement: None,
    };
    assert!(model.generate(video, &bad, None).is_err());
    let missing = AutoGaze::<B>::load(&fixtures().join("no-such-model"), &Default::default())
        .expect_err("missing");
    assert!(missing.to_string().contains("no-such-model"), "{missing}");
    let err =
        AutoGazeConfig::from_json(r#"{"scales": "32+64", "num_vision_tokens_each_frame": 265}"#)
            .expect_err("bad");
    assert!(
        err.to_string().contains("scales") || err.to_string().contains("config"),
        "{err}"
    );
    // Settings the model cannot run are named: the vision encoder's and the
    // RoPE scaling's.
    let text = std::fs::read_to_string(model_dir("autogaze-tiny").join("config.json"))
        .expect("tiny config");
    let tiny: serde_json::Value = serde_json::from_str(&text).expect("json");
    for (path, value, named) in [
        (
            "/gaze_model_config/vision_model_config/depth",
            json!(2),
            "depth",
        ),
        (
            "/gaze_model_config/vision_model_config/kernel_size",
            json!(0),
            "kernel_size",
        ),
        (
            "/gaze_model_config/vision_model_config/out_dim",
            json!(7),
            "out_dim",
        ),
        (
            "/gaze_model_config/gaze_decoder_config/rope_scaling",
            json!({"rope_type": "yarn", "factor": 2.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 64.0}),
            "yarn",
        ),
    ] {
        let mut bad = tiny.clone();
        *bad.pointer_mut(path).expect(path) = value;
        let err = AutoGazeConfig::from_json(&bad.to_string())
            .expect_err(path)
            .to_string();
        assert!(err.contains(named), "{path}: {err}");
    }
    // A weights file for another config names the first mismatched tensor.
    let tiny_cfg = AutoGazeConfig::from_file(&model_dir("autogaze-tiny").join("config.json"))
        .expect("tiny cfg");
    let err = burn_autogaze::model::load_weights::<B>(
        &tiny_cfg,
        &model_dir("autogaze-random-k10").join("model.safetensors"),
        &Default::default(),
    )
    .expect_err("mismatch")
    .to_string();
    assert!(err.contains("unexpected tensor gazing_model."), "{err}");
    // A tensor of the wrong shape names it and both shapes.
    let mut four_heads = tiny_cfg.clone();
    four_heads.multi_token = 4;
    let err = burn_autogaze::model::load_weights::<B>(
        &four_heads,
        &model_dir("autogaze-tiny").join("model.safetensors"),
        &Default::default(),
    )
    .expect_err("shape")
    .to_string();
    assert!(
        err.contains("lm_head.weight") && err.contains("[1064, 48]") && err.contains("[798, 48]"),
        "{err}"
    );
}

/// A horizon bounds the KV cache on long streams.
#[test]
fn horizon_bounds_the_cache() {
    let model = load("autogaze-tiny");
    let options = GenerateOptions {
        gazing_ratio: 0.05,
        task_loss_requirement: None,
    };
    let frame = || {
        Tensor::<B, 3>::random(
            [3, 224, 224],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &Default::default(),
        )
    };
    let mut bounded = model.new_stream();
    bounded.set_horizon(2);
    let mut unbounded = model.new_stream();
    let mut sizes = Vec::new();
    for _ in 0..6 {
        let f = frame();
        model
            .step(&mut bounded, f.clone(), &options)
            .expect("bounded step");
        model
            .step(&mut unbounded, f, &options)
            .expect("unbounded step");
        sizes.push(bounded.cached_keys());
    }
    // 196 vision tokens + 13 budget tokens a frame (some pending): at most 2 frames.
    assert!(sizes.iter().all(|&n| n <= 2 * (196 + 13)), "{sizes:?}");
    assert_eq!(
        sizes[3], sizes[5],
        "steady size once the horizon is reached: {sizes:?}"
    );
    assert!(unbounded.cached_keys() > 5 * 196);
}

/// Tiled inference (448 px, target scales 64/128/224/448, patch 16): every
/// tile's raw output and the stitched ids and masks match the reference.
#[test]
fn k10_tiled_448() {
    tiled_448(&load("autogaze-random-k10"));
}

/// [`k10_tiled_448`] on `model`, on any backend.
fn tiled_448<Bk: Backend>(model: &AutoGaze<Bk>) {
    use burn_autogaze::model::TileGrid;
    let (file, meta) = case("autogaze-random-k10", "tile448_r050");
    let scales: Vec<u32> = meta["target_scales"]
        .as_array()
        .expect("scales")
        .iter()
        .map(|v| v.as_u64().expect("u64") as u32)
        .collect();
    let patch = meta["target_patch_size"].as_u64().expect("patch") as u32;
    let grid = TileGrid::new(&model.config().layout, &scales, patch).expect("grid");
    let options = GenerateOptions {
        gazing_ratio: meta["gazing_ratio"].as_f64().expect("ratio") as f32,
        task_loss_requirement: None,
    };
    let video = tensor5_on::<Bk>(&file, "video", &model.device());
    let [_, t, _, _, _] = video.dims();
    let out = model.generate_tiled(video, &grid, &options).expect("tiled");
    // Raw per-tile outputs.
    let tile_pos = file.i64("tile_gazing_pos", None).expect("tile pos");
    let per_tile = tile_pos.shape[1];
    for (k, tile) in out.tiles.iter().enumerate() {
        let ids: Vec<i64> = tile
            .iter()
            .enumerate()
            .flat_map(|(f, g)| g.ids.iter().map(move |&id| id as i64 + 265 * f as i64))
            .collect();
        assert_eq!(
            ids,
            tile_pos.values[k * per_tile..(k + 1) * per_tile],
            "tile {k}"
        );
    }
    // Stitched ids (ascending per frame, offset 1060 t) and masks.
    let stitched = grid.stitched_layout().tokens() as i64;
    let ids: Vec<i64> = out
        .frames
        .iter()
        .enumerate()
        .flat_map(|(f, ids)| ids.iter().map(move |&id| id as i64 + stitched * f as i64))
        .collect();
    assert_eq!(ids, file.i64("gazing_pos", None).expect("pos").values);
    let counts: Vec<i64> = out.frames.iter().map(|f| f.len() as i64).collect();
    assert_eq!(
        counts,
        file.i64("num_gazing_each_frame", None).expect("num").values
    );
    for (s, scale) in grid.stitched_layout().scales().iter().enumerate() {
        let reference = file
            .f32(&format!("gazing_mask_{s}"), None)
            .expect("mask")
            .values;
        let n = (scale.grid * scale.grid) as usize;
        let mut ours = vec![0f32; t * n];
        for (f, ids) in out.frames.iter().enumerate() {
            for &id in ids {
                if (scale.offset..scale.offset + n as u32).contains(&id) {
                    ours[f * n + (id - scale.offset) as usize] = 1.0;
                }
            }
        }
        assert_eq!(ours, reference, "stitched mask {s}");
    }
    println!(
        "autogaze-random-k10/tile448_r050: 4 tiles x {t} frames, per-tile and stitched ids exact ({} stitched tokens a frame)",
        stitched
    );
}

/// The wgpu backend (lavapipe here) gives the same integer outputs as the
/// reference on the small model, every tiny case (with and without the
/// task-loss gate), selecting on the device with one readback per frame,
/// on the fused GPU engine (the default) and on the Burn-ops engine (whose
/// time it prints beside the fused engine's).
/// Built whenever the `wgpu` feature is on (the workspace test run enables
/// it through the Bevy crate).
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_matches_the_reference_on_the_tiny_model() {
    use burn::backend::Wgpu;
    use burn::backend::wgpu::WgpuDevice;
    let device = WgpuDevice::default();
    let mut model =
        AutoGaze::<Wgpu>::load(&model_dir("autogaze-tiny"), &device).expect("model on wgpu");
    // The default rule on a GPU backend: the device without a task-loss
    // gate, the host (stopping at the gate) with one.
    let gated = GenerateOptions {
        gazing_ratio: 0.75,
        task_loss_requirement: Some(0.7),
    };
    let ungated = GenerateOptions {
        task_loss_requirement: None,
        ..gated
    };
    assert_eq!(model.selection_for(&ungated), Selection::Device);
    assert_eq!(model.selection_for(&gated), Selection::Host);
    assert!(model.batches_streams());
    // Both cases on the device here: one readback per frame.
    model.set_selection(Selection::Device);
    assert_eq!(
        model.engine_name(),
        burn_autogaze::model::engines::FUSED_GPU
    );
    let mut reference = model.clone();
    reference
        .set_engine(burn_autogaze::model::engines::BURN_OPS)
        .expect("the reference engine");
    let cases = ["clip224_r020", "clip224_r030_tl"];
    for (model, name) in [&model, &reference]
        .into_iter()
        .flat_map(|m| cases.map(|c| (m, c)))
    {
        let (file, meta) = case("autogaze-tiny", name);
        let options = GenerateOptions {
            gazing_ratio: meta["gazing_ratio"].as_f64().expect("ratio") as f32,
            task_loss_requirement: meta["task_loss_requirement"].as_f64().map(|r| r as f32),
        };
        let video = file.f32("video", None).expect("video");
        let shape: [usize; 5] = video.shape.clone().try_into().expect("5-d");
        let t = shape[1];
        let video = Tensor::<Wgpu, 5>::from_data(TensorData::new(video.values, shape), &device);
        let started = std::time::Instant::now();
        let mut state = model.new_stream();
        let tokens = model
            .encode(&mut state, video.reshape([t, 3, 224, 224]))
            .expect("encode on wgpu");
        let [_, n, d] = tokens.dims();
        let out: Vec<FrameGaze> = (0..t)
            .map(|i| {
                let ft = tokens.clone().narrow(0, i, 1).reshape([n, d]);
                model
                    .decode_frame(&mut state, ft, &options, None)
                    .expect("decode on wgpu")
            })
            .collect();
        assert_eq!(
            global_ids(&out),
            file.i64("gazing_pos", None).expect("pos").values,
            "{name}: gazing_pos"
        );
        let pads: Vec<i64> = out
            .iter()
            .flat_map(|f| f.padded.iter().map(|&p| p as i64))
            .collect();
        assert_eq!(
            pads,
            file.i64("if_padded_gazing", None).expect("pads").values,
            "{name}: pad flags"
        );
        assert_eq!(
            state.readbacks(),
            t as u64,
            "{name}: one readback per frame"
        );
        println!(
            "wgpu (tiny model, {name}, engine {}): ids and pads exact, {} readbacks for {t} frames, {:.1} s including shader compilation",
            model.engine_name(),
            state.readbacks(),
            started.elapsed().as_secs_f64()
        );
    }
}

/// A divergence is reported by frame, decode step and head, with the
/// logit margin and task-loss gap there.
#[test]
fn a_divergence_names_frame_step_and_head() {
    let model = load("autogaze-tiny");
    let (file, meta) = case("autogaze-tiny", "clip224_r020");
    let options = GenerateOptions {
        gazing_ratio: meta["gazing_ratio"].as_f64().expect("ratio") as f32,
        task_loss_requirement: None,
    };
    let mut trace = Vec::new();
    let out = model
        .generate(tensor5(&file, "video"), &options, Some(&mut trace))
        .expect("generate");
    let k = model.config().multi_token;
    let mut reference = Tokens {
        ids: global_ids(&out),
        pads: out
            .iter()
            .flat_map(|f| f.padded.iter().map(|&p| p as i64))
            .collect(),
        counts: out.iter().map(|f| f.ids.len() as i64).collect(),
    };
    let tl = file.f32("decode_step_task_loss", None).expect("tl").values;
    let calls = Calls {
        trace: &trace,
        logits: None,
        task_loss: &tl,
        k,
        vocab: model.config().vocab(),
        requirement: None,
    };
    // Token k + 1 of frame 1: its second decode step, second head.
    let at = reference.counts[0] as usize + k + 1;
    assert!(at < reference.ids.len(), "the case has enough tokens");
    reference.ids[at] += 1;
    let report = first_divergence(&out, &reference, &calls);
    assert!(
        report.starts_with("frame 1, decode step 1 (decoder call")
            && report.contains("head 1:")
            && report.contains("top-2 logit margin")
            && report.contains("task loss"),
        "{report}"
    );
}

/// Every K = 10 clip case of the release-size model, streaming against
/// the full clip and the tiled 448 case (its tiles in lockstep), on wgpu (lavapipe here) with the fused GPU engine (the
/// default there): the same integer outputs as the reference; embeddings,
/// logits and task losses within 1e-4. Traced runs select on the host (two
/// readbacks a call), untraced ones on the device (one a frame).
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_k10_cases_match_the_reference() {
    use burn::backend::Wgpu;
    let name = "autogaze-random-k10";
    let model = AutoGaze::<Wgpu>::load(&model_dir(name), &Default::default()).expect("on wgpu");
    assert_eq!(
        model.engine_name(),
        burn_autogaze::model::engines::FUSED_GPU
    );
    for (case, input) in [
        ("clip224_r010", "video"),
        ("clip224_r075_tlneg", "video"),
        ("clip224_r075_tl070", "video"),
        ("clip224_r075_full", "video"),
        ("clip128x320_r010_bicubic", "model_input_224"),
    ] {
        let started = std::time::Instant::now();
        check_case_on(&model, name, case, input);
        println!(
            "{name}/{case} on wgpu: {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    streaming_equals_full_clip(&model);
    let started = std::time::Instant::now();
    tiled_448(&model);
    println!(
        "{name}/tile448_r050 on wgpu: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
