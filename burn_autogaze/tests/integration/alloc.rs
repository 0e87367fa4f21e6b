//! Steady state allocates nothing per frame.

use burn_autogaze::FrameSize;
use burn_autogaze::interframe::{CompositorOptions, Dispatch};
use burn_autogaze::mask::MaskGeometry;
use burn_autogaze::pipeline::{FramePipeline, PipelineOptions};
use burn_autogaze::source::{SourceKind, SourceOptions};

use crate::allocations;

fn steady_state_allocations(
    kind: SourceKind,
    geometry: MaskGeometry,
    dispatch: Dispatch,
    preprocess: bool,
) -> u64 {
    let options = PipelineOptions {
        source: SourceOptions {
            kind,
            size: FrameSize::new(320, 180).expect("size"),
            objects: 4,
            ..SourceOptions::default()
        },
        preprocess,
        geometry,
        compositor: CompositorOptions {
            dispatch,
            measure_psnr: true,
            ..CompositorOptions::default()
        },
        ..PipelineOptions::default()
    };
    let mut pipeline = FramePipeline::new(&options).expect("pipeline");
    for _ in 0..3 {
        pipeline.step().expect("warm-up step");
    }
    let before = allocations();
    for _ in 0..40 {
        pipeline.step().expect("step");
    }
    allocations() - before
}

#[test]
fn frame_pipeline_steady_state_allocates_nothing() {
    // The counter itself works.
    let before = allocations();
    std::hint::black_box(vec![1u8; 16]);
    assert!(allocations() > before, "counting allocator is not counting");
    for kind in [
        SourceKind::SyntheticPan,
        SourceKind::SyntheticLocal,
        SourceKind::Static,
    ] {
        for geometry in MaskGeometry::ALL {
            for dispatch in Dispatch::ALL {
                let n = steady_state_allocations(kind, geometry, dispatch, false);
                assert_eq!(
                    n, 0,
                    "{kind} {geometry} {dispatch}: {n} allocations in 40 frames"
                );
            }
        }
    }
    let n = steady_state_allocations(
        SourceKind::SyntheticPan,
        MaskGeometry::Deduplicated,
        Dispatch::Adaptive,
        true,
    );
    assert_eq!(n, 0, "with preprocessing: {n} allocations in 40 frames");
}
