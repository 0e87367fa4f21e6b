//! The device preprocessing against the host path, on lavapipe here: the
//! processor's output (the 8-bit stage through the value table) exact, the
//! model input within a rounding, at the release's and other settings and
//! at many frame sizes.

use std::time::Duration;

use burn::backend::wgpu::WgpuDevice;
use burn::tensor::Tensor;

use super::super::{CropSize, Preprocessor, PreprocessorConfig};
use super::{DISPATCHES_A_FRAME, DevicePreprocessor};
use crate::frame::Frame;

/// A frame with texture, gradients, flat black and white areas (where
/// filters with negative lobes clip) and alpha that must be ignored.
fn pattern(w: u32, h: u32, seed: u32) -> Frame {
    let mut rgba = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let mut v = (x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663) ^ seed)
                .wrapping_mul(2_654_435_761);
            let band = (x * 8 / w.max(1) + y * 4 / h.max(1)) % 4;
            for c in 0..3u32 {
                v = v.rotate_left(7) ^ 0x9e37_79b9;
                let byte = match band {
                    0 => (v >> 24) as u8,
                    1 => ((x * 255 / w.max(1) + c * 40) % 256) as u8,
                    2 => 255,
                    _ => 0,
                };
                rgba.push(byte);
            }
            rgba.push((v & 0xff) as u8);
        }
    }
    Frame::new(0, w, h, rgba, Duration::ZERO).unwrap()
}

fn read(t: Tensor<burn::backend::Wgpu, 3>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

/// Host and device over `sizes`: the processor's output bit for bit, the
/// model input within `1e-5`; returns the largest model-input difference.
fn compare(config: PreprocessorConfig, sizes: &[(u32, u32)]) -> f32 {
    let device = WgpuDevice::default();
    let mut host = Preprocessor::new(config, 224).unwrap();
    let mut dev = DevicePreprocessor::new(host.clone(), &device);
    let mut worst = 0f32;
    for (i, &(w, h)) in sizes.iter().enumerate() {
        let frame = pattern(w, h, i as u32);
        let on_device = dev.upload(&frame);
        let (expected, size) = host.process_frame(&frame).unwrap();
        let expected = expected.to_vec();
        let got = dev.processed(&on_device).unwrap();
        assert_eq!(
            got.dims(),
            [3, size.height as usize, size.width as usize],
            "{w}x{h}"
        );
        let got = read(got);
        let differing = got.iter().zip(&expected).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 0, "{w}x{h}: processor output values differ");
        let mut model = vec![0f32; 3 * 224 * 224];
        host.model_frame_into(&frame, &mut model).unwrap();
        let got = read(dev.model_frame(&on_device).unwrap());
        assert_eq!(got.len(), model.len());
        let diff = got
            .iter()
            .zip(&model)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-5, "{w}x{h}: model input off by {diff}");
        worst = worst.max(diff);
    }
    worst
}

#[test]
fn the_release_processor_matches_the_host_at_many_sizes() {
    let worst = compare(
        PreprocessorConfig::default(),
        &[
            (1920, 1080),
            (1280, 720),
            (448, 448),
            (333, 517),
            (224, 224),
            (224, 300),
            (301, 224),
            (500, 37),
            (64, 48),
            (17, 29),
        ],
    );
    println!("release processor: model input within {worst:e} of the host");
}

#[test]
fn other_filters_crops_and_no_resize_match_the_host() {
    let crop = |resample| PreprocessorConfig {
        resample,
        do_center_crop: true,
        crop_size: Some(CropSize {
            height: 200,
            width: 180,
        }),
        ..PreprocessorConfig::default()
    };
    for resample in 1..=5 {
        compare(crop(resample), &[(640, 360), (250, 700)]);
    }
    let raw = PreprocessorConfig {
        do_resize: false,
        do_normalize: false,
        ..PreprocessorConfig::default()
    };
    compare(raw, &[(96, 80), (224, 224)]);
}

#[test]
fn counts_and_errors() {
    let device = WgpuDevice::default();
    let mut dev = DevicePreprocessor::new(Preprocessor::release(), &device);
    let tables = dev.counts().uploaded_bytes;
    assert_eq!(tables, 3 * 256 * 4, "the value table");
    let frame = pattern(320, 240, 1);
    for _ in 0..3 {
        let x = dev.frame_input(&frame).unwrap();
        assert_eq!(x.dims(), [3, 224, 224]);
    }
    let counts = dev.counts();
    assert_eq!(counts.frames, 3);
    assert_eq!(counts.dispatches, 3 * DISPATCHES_A_FRAME);
    let frames = 3 * frame.rgba().len() as u64;
    // The frames, the value table and one size's tap tables.
    let plan = counts.uploaded_bytes - frames - tables;
    assert!(plan > 0 && plan < 64 * 1024, "tap tables: {plan} bytes");
    // A frame beyond the model's aspect limit: the host path's typed error,
    // before any upload.
    let thin = pattern(340, 20, 0);
    let host_err = Preprocessor::release()
        .process_frame(&thin)
        .map(|_| ())
        .unwrap_err();
    let err = dev.frame_input(&thin).unwrap_err();
    assert_eq!(err.to_string(), host_err.to_string());
    assert_eq!(dev.counts().uploaded_bytes, counts.uploaded_bytes);
}

/// A renderer lending its frames (here a thread writing each asked buffer
/// through its queue, as the display's lend pass fills it from the
/// texture): a lent frame's model input equals an uploaded one's exactly
/// and uploads no frame bytes; an ask for an older frame than the renderer
/// holds is refused, and one nobody serves is withdrawn after the wait,
/// both uploaded instead.
#[test]
fn a_lent_frame_makes_the_uploaded_frames_input() {
    use std::sync::Arc;

    use cubecl::wgpu::{AutoGraphicsApi, RuntimeOptions, init_setup};

    use super::super::FrameShare;

    // The only lib test on this device: its queue is the renderer's.
    let device = WgpuDevice::Cpu;
    let setup = init_setup::<AutoGraphicsApi>(&device, RuntimeOptions::default());
    let frame = pattern(96, 54, 3);
    let mut plain = DevicePreprocessor::new(Preprocessor::release(), &device);
    let expected = read(plain.frame_input(&frame).unwrap());

    let share = Arc::new(FrameShare::new(Duration::from_secs(20)));
    let mut dev = DevicePreprocessor::new(Preprocessor::release(), &device);
    dev.share_frames(Arc::clone(&share));
    let serve = |held: crate::frame::Frame| {
        let share = Arc::clone(&share);
        let queue = setup.queue.clone();
        std::thread::spawn(move || {
            while !share.asked() {
                std::thread::sleep(Duration::from_millis(1));
            }
            for ask in share.take(&held) {
                ask.with_target(|r| queue.write_buffer(&r.buffer, r.offset, ask.frame().rgba()))
                    .unwrap();
                queue.submit([]);
                share.finish(ask, true);
            }
        })
    };
    let renderer = serve(frame.clone());
    let got = read(dev.frame_input(&frame).unwrap());
    renderer.join().unwrap();
    assert_eq!(got, expected, "the lent frame's input");
    // The tables alone went up (the plain path's bytes less the frame).
    let bytes = frame.rgba().len() as u64;
    let tables = plain.counts().uploaded_bytes - bytes;
    let c = dev.counts();
    assert_eq!((c.lent_frames, c.uploaded_bytes), (1, tables), "{c:?}");

    // The renderer holds a newer frame: refused, uploaded.
    let newer = Frame::new(1, 96, 54, frame.rgba().to_vec(), Duration::ZERO).unwrap();
    let renderer = serve(newer);
    let got = read(dev.frame_input(&frame).unwrap());
    renderer.join().unwrap();
    assert_eq!(got, expected);
    let c = dev.counts();
    assert_eq!((c.lent_frames, c.uploaded_bytes), (1, tables + bytes));

    // Nobody serves: withdrawn after the wait, uploaded.
    let idle = Arc::new(FrameShare::new(Duration::from_millis(50)));
    dev.share_frames(Arc::clone(&idle));
    let t = std::time::Instant::now();
    let got = read(dev.frame_input(&frame).unwrap());
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert_eq!(got, expected);
    assert_eq!(dev.counts().uploaded_bytes, tables + 2 * bytes);
    let (a, b) = (share.counts(), idle.counts());
    assert_eq!((a.asked, a.lent, a.refused, a.withdrawn), (2, 1, 1, 0));
    assert_eq!((b.asked, b.lent, b.refused, b.withdrawn), (1, 0, 0, 1));
    assert!(!share.asked() && !idle.asked());
}
