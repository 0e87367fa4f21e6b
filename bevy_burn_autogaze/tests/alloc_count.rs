//! The per-frame allocation count: the counting allocator counts what a
//! region allocates (wgpu's calls apart), and the viewer binary reports an
//! allocation on its upload path (the test-only switch adds one a frame), so
//! the soak's "0 allocations" can fail.

use std::process::Command;
use std::time::{Duration, Instant};

use bevy_burn_autogaze::alloc_count::{
    AllocPath, CountingAlloc, Region, TEST_ALLOCATE_ENV, installed, since, totals,
};
use burn_autogaze::perf::PerfSummary;

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

#[test]
fn regions_count_their_thread_s_allocations_and_leave_wgpu_s_out() {
    assert!(installed());
    let before = totals();
    {
        let _upload = Region::new(AllocPath::Upload);
        std::hint::black_box(vec![1u8; 32]);
        std::hint::black_box(vec![2u8; 32]);
        {
            let _wgpu = Region::new(AllocPath::Wgpu);
            std::hint::black_box(vec![3u8; 32]);
        }
    }
    // Other tests of this binary run on other threads and count nothing:
    // only this thread opened regions.
    let counted = since(before, totals());
    assert_eq!((counted.upload, counted.wgpu), (2, 1), "{counted:?}");
    assert_eq!(counted.frame_step, 0);
}

/// A headless run's summary; `allocate` turns the test-only allocation on.
fn headless(allocate: bool, name: &str) -> PerfSummary {
    let dir = std::env::temp_dir().join(format!("autogaze_alloc_{name}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let json = dir.join("summary.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bevy_burn_autogaze"));
    cmd.args([
        "--headless",
        "--size",
        "320x180",
        "--target-size",
        "320x180",
        "--frames",
        "20",
        "--warmup-frames",
        "10",
        "--timeout-s",
        "120",
        "--summary",
    ])
    .arg(&json)
    .env_remove(TEST_ALLOCATE_ENV);
    if allocate {
        cmd.env(TEST_ALLOCATE_ENV, "1");
    }
    let started = Instant::now();
    let out = cmd.output().expect("run the viewer");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(180));
    let text = std::fs::read_to_string(&json).expect("summary");
    let _ = std::fs::remove_dir_all(&dir);
    serde_json::from_str(&text).expect("summary json")
}

#[test]
fn the_viewer_reports_an_allocation_on_its_upload_path() {
    let counts = |s: &PerfSummary| {
        s.display
            .as_ref()
            .and_then(|d| d.allocations)
            .expect("the viewer binary counts allocations")
    };
    let spoiled = counts(&headless(true, "on"));
    // One a measured frame at least (a frame's staging runs once).
    assert!(spoiled.upload >= 20, "{spoiled:?}");
    let plain = counts(&headless(false, "off"));
    assert!(plain.upload < spoiled.upload, "{plain:?} vs {spoiled:?}");
}
