//! A lost device under the wgpu model: the pipeline keeps giving masks from
//! the host model, names the fault, and nothing panics or hangs. The device
//! is a real one (lavapipe here), destroyed between frames.

use burn_autogaze::device_fault::FaultKind;
use burn_autogaze::frame::FrameSize;
use burn_autogaze::mask_source::{MaskSourceKind, ModelBackend, wgpu_model_source};
use burn_autogaze::pipeline::{FramePipeline, PipelineOptions};
use burn_autogaze::source::{SourceKind, SourceOptions};
use cubecl::wgpu::{AutoGraphicsApi, RuntimeOptions, WgpuDevice, init_setup};

#[test]
fn a_destroyed_device_moves_the_model_to_the_host_inline_and_decoupled() {
    let mut options = PipelineOptions {
        source: SourceOptions {
            kind: SourceKind::SyntheticLocal,
            size: FrameSize::new(96, 54).unwrap(),
            ..SourceOptions::default()
        },
        ..PipelineOptions::default()
    };
    options.mask_source = MaskSourceKind::Autogaze;
    options.model.gazing_ratio = 0.05;
    options.model.backend = ModelBackend::Wgpu;
    // The model on a device of its own (the test destroys it), as an app
    // hands over its own device.
    let setup = init_setup::<AutoGraphicsApi>(&WgpuDevice::Cpu, RuntimeOptions::default());
    let inline = {
        let source = wgpu_model_source(&options.model, &WgpuDevice::Cpu, None).unwrap();
        FramePipeline::new_with_mask(&options, source).unwrap()
    };
    let decoupled = {
        let mut options = options.clone();
        options.decoupled = true;
        let source = wgpu_model_source(&options.model, &WgpuDevice::Cpu, None).unwrap();
        FramePipeline::new_with_mask(&options, source).unwrap()
    };
    let mut pipelines = [inline, decoupled];
    // The device's owner reports what it saw (wgpu's lost callback) to
    // both pipelines.
    let watches = pipelines.each_ref().map(|p| p.fault_watch().clone());
    setup
        .device
        .set_device_lost_callback(move |reason, message| {
            for watch in &watches {
                watch.report(
                    FaultKind::Lost,
                    format!("device lost ({reason:?}) {message}"),
                );
            }
        });
    for p in &mut pipelines {
        let device = p.mask_source_device().unwrap().to_string();
        assert!(
            device.contains("Existing") || device.contains("Cpu"),
            "{device}"
        );
    }
    for _ in 0..2 {
        let report = pipelines[0].step().unwrap();
        assert_eq!(report.plan.tokens, 13);
    }
    setup.device.destroy();
    for (i, p) in pipelines.iter_mut().enumerate() {
        let deadline = web_time::Instant::now() + std::time::Duration::from_secs(120);
        let mut masks = 0;
        while masks < 3 {
            assert!(
                web_time::Instant::now() < deadline,
                "pipeline {i}: no masks"
            );
            let report = p.step().expect("frames keep coming");
            if report.mask_times.is_some() || i == 0 {
                assert_eq!(report.plan.tokens, 13, "pipeline {i}");
                masks += 1;
            }
        }
        let fault = p.device_fault().expect("the fault is named").clone();
        assert_eq!(fault.kind, FaultKind::Lost, "{fault:?}");
        assert!(fault.message.contains("Destroyed"), "{fault:?}");
        assert_eq!(fault.fallback.as_deref(), Some("Cpu"), "{fault:?}");
        assert_eq!(p.mask_source_device(), Some("Cpu"));
        assert_eq!(p.worker_counters().map_or(0, |w| w.failed), 0);
    }
}
