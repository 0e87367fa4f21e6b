//! Compositor tests: preservation outside the plan, keyframes, dispatch.

use super::*;
use crate::crossover::CROSSOVER_SCHEMA;
use crate::mask::{MaskGeometry, MaskPlanner};
use crate::source::{FrameSource, PanSpeed, SyntheticPan};
use crate::tokens::TokenLayout;

fn table(c: CostCoefficients) -> CrossoverTable {
    CrossoverTable {
        schema: CROSSOVER_SCHEMA.into(),
        revision: "test".into(),
        date: "test".into(),
        machine: "test".into(),
        sizes: vec![c],
        points: vec![],
        upload: None,
        upload_adapter: None,
    }
}

fn coefficients(sparse_byte: f64, dense_px: f64, full_byte: f64) -> CostCoefficients {
    CostCoefficients {
        width: 64,
        height: 48,
        sparse_ns_per_row: 1.0,
        sparse_ns_per_byte: sparse_byte,
        dense_ns_per_pixel: dense_px,
        dense_ns_per_union_pixel: 0.0,
        full_ns_per_byte: full_byte,
    }
}

fn token_set(seed: u64) -> Vec<u32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let n = (s % 40) as usize;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 265) as u32
        })
        .collect()
}

fn inside(plan: &MaskPlan, x: u32, y: u32) -> bool {
    plan.spans()
        .iter()
        .any(|s| x >= s.x0 && x < s.x1 && y >= s.y0 && y < s.y1)
}

#[test]
fn pixels_outside_the_plan_are_kept_bit_exactly() {
    for (w, h) in [(64u32, 48u32), (37, 23)] {
        let size = FrameSize::new(w, h).unwrap();
        for dispatch in [Dispatch::Sparse, Dispatch::Dense, Dispatch::Adaptive] {
            let mut src = SyntheticPan::new(size, PanSpeed::default(), 30.0).unwrap();
            let options = CompositorOptions {
                dispatch,
                full_refresh: false,
                ..Default::default()
            };
            let mut comp = Compositor::new(options);
            let mut planner = MaskPlanner::new(TokenLayout::release());
            let mut plan = MaskPlan::default();
            for n in 0..30u64 {
                let frame = src.next_frame().unwrap();
                planner.plan_into(token_set(n), size, MaskGeometry::Deduplicated, &mut plan);
                let before = comp.output().to_vec();
                let report = comp.compose(&frame, &plan).unwrap();
                if n == 0 {
                    assert!(report.keyframe);
                    assert_eq!(comp.output(), frame.rgba());
                    continue;
                }
                assert_ne!(report.path, ComposePath::Full);
                for y in 0..h {
                    for x in 0..w {
                        let i = ((y * w + x) * 4) as usize;
                        let want = if inside(&plan, x, y) {
                            &frame.rgba()[i..i + 4]
                        } else {
                            &before[i..i + 4]
                        };
                        assert_eq!(
                            &comp.output()[i..i + 4],
                            want,
                            "{dispatch:?} frame {n} ({x},{y})"
                        );
                    }
                }
                assert_eq!(report.updated_pixels, plan.union_pixels());
                let dirty: u64 = comp.dirty_regions().iter().map(Rect::area).sum();
                assert_eq!(dirty, plan.union_pixels());
            }
        }
    }
}

#[test]
fn keyframe_rules() {
    let size = FrameSize::new(32, 16).unwrap();
    let mut src = SyntheticPan::new(size, PanSpeed::default(), 30.0).unwrap();
    let plan = MaskPlanner::new(TokenLayout::release()).plan([], size, MaskGeometry::Deduplicated);
    let mut comp = Compositor::new(CompositorOptions {
        keyframe_period: 3,
        ..Default::default()
    });
    let paths: Vec<ComposePath> = (0..7)
        .map(|_| {
            comp.compose(&src.next_frame().unwrap(), &plan)
                .unwrap()
                .path
        })
        .collect();
    use ComposePath::{Keyframe as K, Skip as S};
    assert_eq!(paths, vec![K, S, S, K, S, S, K]);
    assert_eq!(comp.counts(), (7, 3));
    // Size change.
    let other = FrameSize::new(16, 16).unwrap();
    let mut small = SyntheticPan::new(other, PanSpeed::default(), 30.0).unwrap();
    let plan_small =
        MaskPlanner::new(TokenLayout::release()).plan([], other, MaskGeometry::Deduplicated);
    assert!(
        comp.compose(&small.next_frame().unwrap(), &plan_small)
            .unwrap()
            .keyframe
    );
    // A plan for another size is an error naming both sizes.
    let err = comp
        .compose(&src.next_frame().unwrap(), &plan_small)
        .unwrap_err()
        .to_string();
    assert!(err.contains("16x16") && err.contains("32x16"), "{err}");
    // Quality floor: with no updates the pan drifts and triggers a refresh.
    let mut comp = Compositor::new(CompositorOptions {
        psnr_floor: Some(40.0),
        ..Default::default()
    });
    let first = comp.compose(&src.next_frame().unwrap(), &plan).unwrap();
    assert_eq!(first.psnr_db, Some(f64::INFINITY));
    let second = comp.compose(&src.next_frame().unwrap(), &plan).unwrap();
    assert!(second.keyframe && second.psnr_db.unwrap() < 40.0);
    assert_eq!(comp.counts(), (2, 2));
}

#[test]
fn dispatch_follows_the_cost_model() {
    let size = FrameSize::new(64, 48).unwrap();
    let mut src = SyntheticPan::new(size, PanSpeed::default(), 30.0).unwrap();
    let mut planner = MaskPlanner::new(TokenLayout::release());
    let half = planner.plan(0..2, size, MaskGeometry::Deduplicated);
    let full = planner.plan(0..4, size, MaskGeometry::Deduplicated);
    let empty = planner.plan([], size, MaskGeometry::Deduplicated);
    let run = |c: CostCoefficients, plan: &MaskPlan, full_refresh: bool, src: &mut SyntheticPan| {
        let mut comp = Compositor::with_table(
            CompositorOptions {
                full_refresh,
                ..Default::default()
            },
            table(c),
        );
        comp.compose(&src.next_frame().unwrap(), plan).unwrap();
        let r = comp.compose(&src.next_frame().unwrap(), plan).unwrap();
        let [s, d, f] = r.predicted_ns;
        (r.path, s, d, f)
    };
    // Sparse cheapest.
    let (p, s, d, f) = run(coefficients(0.01, 10.0, 10.0), &half, true, &mut src);
    assert!(s < d && s < f);
    assert_eq!(p, ComposePath::Sparse);
    // Dense cheapest.
    assert_eq!(
        run(coefficients(10.0, 0.01, 10.0), &half, true, &mut src).0,
        ComposePath::Dense
    );
    // Full cheapest: taken when allowed, or when the plan covers the frame.
    assert_eq!(
        run(coefficients(10.0, 10.0, 0.01), &half, true, &mut src).0,
        ComposePath::Full
    );
    assert_eq!(
        run(coefficients(10.0, 10.0, 0.01), &half, false, &mut src).0,
        ComposePath::Dense
    );
    assert_eq!(
        run(coefficients(10.0, 10.0, 0.01), &full, false, &mut src).0,
        ComposePath::Full
    );
    assert_eq!(
        run(coefficients(10.0, 10.0, 0.01), &empty, true, &mut src).0,
        ComposePath::Skip
    );
    // Forced paths ignore the model.
    let mut comp = Compositor::new(CompositorOptions {
        dispatch: Dispatch::Dense,
        ..Default::default()
    });
    comp.compose(&src.next_frame().unwrap(), &half).unwrap();
    assert_eq!(
        comp.compose(&src.next_frame().unwrap(), &half)
            .unwrap()
            .path,
        ComposePath::Dense
    );
    assert_eq!("dense".parse::<Dispatch>().unwrap(), Dispatch::Dense);
    assert!("fast".parse::<Dispatch>().is_err());
}

/// With the host output off the compositor decides what a device composes:
/// the same paths, keyframes and dirty regions as with it on, frame after
/// frame; the host copies nothing and measures no PSNR; turned back on, the
/// next frame is a keyframe (the host output missed frames).
#[test]
fn without_the_host_output_the_regions_and_keyframes_are_the_same() {
    let size = FrameSize::new(64, 48).unwrap();
    for dispatch in [
        Dispatch::Adaptive,
        Dispatch::Sparse,
        Dispatch::Dense,
        Dispatch::Full,
    ] {
        let options = CompositorOptions {
            dispatch,
            keyframe_period: 7,
            measure_psnr: true,
            ..Default::default()
        };
        let mut host = Compositor::new(options);
        let mut device = Compositor::new(CompositorOptions {
            host_output: false,
            ..options
        });
        let mut src = SyntheticPan::new(size, PanSpeed::default(), 30.0).unwrap();
        let mut planner = MaskPlanner::new(TokenLayout::release());
        let mut plan = MaskPlan::default();
        for n in 0..20u64 {
            let frame = src.next_frame().unwrap();
            planner.plan_into(token_set(n), size, MaskGeometry::Deduplicated, &mut plan);
            let a = host.compose(&frame, &plan).unwrap();
            let b = device.compose(&frame, &plan).unwrap();
            assert_eq!(
                (a.path, a.keyframe),
                (b.path, b.keyframe),
                "{dispatch:?} {n}"
            );
            assert_eq!(
                host.dirty_regions(),
                device.dirty_regions(),
                "{dispatch:?} {n}"
            );
            assert_eq!(b.updated_pixels, a.updated_pixels);
            assert_eq!((b.copied_bytes, b.psnr_db), (0, None));
            assert!(a.psnr_db.is_some());
            if a.path.copies_the_frame() {
                assert_eq!(a.psnr_db, Some(f64::INFINITY), "the output is the frame");
            }
        }
        assert!(device.output().iter().all(|&v| v == 0), "never written");
        device.options_mut().host_output = true;
        let frame = src.next_frame().unwrap();
        let r = device.compose(&frame, &MaskPlan::default()).unwrap();
        assert!(r.keyframe, "{dispatch:?}: the host output is refreshed");
        assert_eq!(device.output(), frame.rgba());
    }
}

mod fixation_sets {
    use super::*;
    use crate::mask::{MaskGeometry, MaskPlanner};
    use crate::source::{FrameSource, PanSpeed, SyntheticPan};
    use crate::tokens::TokenLayout;

    /// The benchmark's fixation sets at the benchmark's sizes plus square and
    /// odd ones: the union is what the plan says, the output is the frame
    /// inside it and history outside, on every forced path.
    #[test]
    fn fixation_sets_compose_exactly_at_every_size() {
        let sets = crate::mask::fixation_sets();
        let mut planner = MaskPlanner::new(TokenLayout::release());
        for (w, h) in [(1280, 720), (1920, 1080), (448, 448), (641, 359)] {
            let size = FrameSize::new(w, h).unwrap();
            let mut src = SyntheticPan::new(size, PanSpeed::default(), 30.0).unwrap();
            let first = src.next_frame().unwrap();
            let next = src.next_frame().unwrap();
            for (name, tokens) in &sets {
                let plan = planner.plan(tokens.iter().copied(), size, MaskGeometry::Deduplicated);
                // Row-wise inside test from the spans.
                let mut inside = vec![false; size.pixels()];
                for s in plan.spans() {
                    for y in s.y0..s.y1 {
                        inside[(y * w + s.x0) as usize..(y * w + s.x1) as usize].fill(true);
                    }
                }
                assert_eq!(
                    inside.iter().filter(|v| **v).count() as u64,
                    plan.union_pixels(),
                    "{name} {size}"
                );
                for dispatch in [Dispatch::Sparse, Dispatch::Dense] {
                    let mut comp = Compositor::new(CompositorOptions {
                        dispatch,
                        ..Default::default()
                    });
                    comp.compose(&first, &plan).unwrap();
                    comp.compose(&next, &plan).unwrap();
                    let ok = comp
                        .output()
                        .chunks_exact(4)
                        .zip(
                            first
                                .rgba()
                                .chunks_exact(4)
                                .zip(next.rgba().chunks_exact(4)),
                        )
                        .zip(&inside)
                        .all(|((o, (a, b)), &i)| o == if i { b } else { a });
                    assert!(ok, "{name} {size} {dispatch}");
                }
            }
            let full = planner.plan(0..265, size, MaskGeometry::Deduplicated);
            assert_eq!(full.coverage(), 1.0);
        }
    }
}
