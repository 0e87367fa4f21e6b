//! `cargo xtask soak [--frames N]`: the headless viewer (release) for N
//! measured frames at 1280x720 on synthetic-pan, paced at a video rate, once
//! with patch-diff and once with the model (decoupled, seeded random
//! weights, a bounded horizon), with the process's RSS sampled from
//! `/proc/PID/status` over the run and a mask-inference failure injected
//! mid-run (`AUTOGAZE_TEST_FAIL_MASK_AT`). Each run is judged from its RSS
//! samples and its summary: RSS growth after warm-up at most 1 %, no
//! allocation on the per-frame composition and upload path (the viewer's
//! counting allocator), the pacing and worker counters consistent, the
//! injected failure counted while every frame was still shown. Prints a
//! table; fails when a criterion is missed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn_autogaze::pacing::PaceStats;
use burn_autogaze::perf::{AllocationCounts, PerfSummary};
use burn_autogaze::worker::WorkerCounters;

/// Most RSS growth after warm-up, as a fraction.
pub const MAX_RSS_GROWTH: f64 = 0.01;

/// What to soak.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// Measured frames of each run.
    #[arg(long, default_value_t = 10_000, value_parser = burn_autogaze::cli::frame_count(1))]
    pub frames: usize,
    /// Warm-up frames before measuring (default: a tenth of --frames, at
    /// least 30).
    #[arg(long, value_parser = burn_autogaze::cli::frame_count(0))]
    pub warmup_frames: Option<usize>,
    /// The source's pace, frames a second.
    #[arg(long, default_value_t = 30.0)]
    pub source_fps: f64,
    /// Only these modes (comma separated: patch-diff, model; default both).
    #[arg(long, value_delimiter = ',')]
    pub modes: Vec<String>,
    /// Frames of KV cache the model keeps.
    #[arg(long, default_value_t = 8,
          value_parser = burn_autogaze::cli::ranged(burn_autogaze::limits::MAX_HORIZON))]
    pub horizon: usize,
    /// Run this viewer binary instead of building one in release.
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Where the summaries, RSS samples, logs and the table go.
    #[arg(long, default_value = "target/autogaze-soak")]
    pub out: PathBuf,
}

/// One mode: its name and the viewer's flags for it.
pub const MODES: &[(&str, &[&str])] = &[
    ("patch-diff", &["--mask-source", "patch-diff"]),
    (
        "model",
        &[
            "--mask-source",
            "autogaze",
            "--random-weights",
            "--model-backend",
            "ndarray",
        ],
    ),
];

/// RSS over a run: the level after warm-up and at the end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RssGrowth {
    /// Median RSS over 20-25 % of the run (warm-up done), bytes.
    pub baseline: u64,
    /// Median RSS over the last 5 % of the run, bytes.
    pub end: u64,
    /// Highest RSS after warm-up, bytes.
    pub peak: u64,
    /// Samples taken.
    pub samples: usize,
}

impl RssGrowth {
    /// `end / baseline - 1`.
    pub fn growth(&self) -> f64 {
        self.end as f64 / self.baseline.max(1) as f64 - 1.0
    }
}

/// The median of byte counts (the harness's one median).
fn median(values: &[u64]) -> u64 {
    let v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
    crate::stats::median(&v).round() as u64
}

/// The growth of RSS `samples` (taken at a steady interval) after warm-up
/// (the first 20 % of the run); none with fewer than 20 samples.
pub fn rss_growth(samples: &[u64]) -> Option<RssGrowth> {
    let n = samples.len();
    if n < 20 {
        return None;
    }
    let (a, b) = (n / 5, n / 4);
    Some(RssGrowth {
        baseline: median(&samples[a..b.max(a + 1)]),
        end: median(&samples[n - (n / 20).max(1)..]),
        peak: samples[a..].iter().copied().max().unwrap_or(0),
        samples: n,
    })
}

/// What one run is judged on.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// The mode's name.
    pub mode: String,
    /// Frames asked for (measured) and warm-up frames.
    pub frames_asked: usize,
    pub warmup: usize,
    /// Frames the summary measured, and its rate.
    pub frames: usize,
    pub fps: f64,
    pub source_fps: f64,
    pub rss: Option<RssGrowth>,
    pub allocations: Option<AllocationCounts>,
    pub pace: Option<PaceStats>,
    pub worker: Option<WorkerCounters>,
    /// Failures the viewer counted.
    pub errors: u64,
}

impl Figures {
    /// The figures of a run's summary and RSS samples.
    pub fn of(mode: &str, asked: usize, summary: &PerfSummary, rss: &[u64]) -> Self {
        let display = summary.display.as_ref();
        Self {
            mode: mode.into(),
            frames_asked: asked,
            warmup: summary.warmup_frames,
            frames: summary.frames,
            fps: summary.fps,
            source_fps: match summary.source_fps {
                Some(burn_autogaze::pacing::SourceRate::Fps(f)) => f,
                _ => 0.0,
            },
            rss: rss_growth(rss),
            allocations: display.and_then(|d| d.allocations),
            pace: summary.pace,
            worker: summary.worker,
            errors: display.map_or(0, |d| d.errors),
        }
    }
}

/// One criterion of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub mode: String,
    pub name: &'static str,
    pub value: String,
    pub limit: String,
    pub ok: bool,
}

/// Every criterion of one run.
pub fn judge(f: &Figures) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut check = |name, value: String, limit: &str, ok| {
        checks.push(Check {
            mode: f.mode.clone(),
            name,
            value,
            limit: limit.into(),
            ok,
        })
    };
    check(
        "frames shown",
        f.frames.to_string(),
        &format!("{} (the display never stopped)", f.frames_asked),
        f.frames == f.frames_asked,
    );
    match f.rss {
        Some(r) => check(
            "RSS growth after warm-up",
            format!(
                "{:+.2} % ({:.1} -> {:.1} MiB, peak {:.1} MiB, {} samples)",
                100.0 * r.growth(),
                r.baseline as f64 / 1048576.0,
                r.end as f64 / 1048576.0,
                r.peak as f64 / 1048576.0,
                r.samples
            ),
            "<= +1 %",
            r.growth() <= MAX_RSS_GROWTH,
        ),
        None => check(
            "RSS growth after warm-up",
            "too few samples".into(),
            ">= 20 samples",
            false,
        ),
    }
    let per_frame = |n: u64| n as f64 / f.frames.max(1) as f64;
    match f.allocations {
        Some(a) => {
            check(
                "allocations/frame, frame step + composition",
                format!("{} ({} in all)", per_frame(a.frame_step), a.frame_step),
                "0",
                a.frame_step == 0,
            );
            check(
                "allocations/frame, upload",
                format!(
                    "{} ({} in all; {:.1}/frame inside wgpu, not judged)",
                    per_frame(a.upload),
                    a.upload,
                    per_frame(a.wgpu)
                ),
                "0",
                a.upload == 0,
            );
        }
        None => check(
            "allocations/frame",
            "not counted".into(),
            "counted (the viewer binary's allocator)",
            false,
        ),
    }
    match f.pace {
        Some(p) => {
            let run = (f.frames + f.warmup) as u64;
            let passed = p.shown + p.dropped;
            let share = p.shown as f64 / passed.max(1) as f64;
            // Shown / (source frames passed), up to the interval and the
            // lateness of the last frame.
            let ok = p.shown == run
                && p.late <= p.shown
                && p.realtime_factor <= 1.0 + 1e-9
                && (p.realtime_factor - share).abs() <= 0.02;
            check(
                "pacing counters",
                format!(
                    "shown {} of {run}, dropped {}, late {}, realtime {:.3} (shown/passed {share:.3}); measured {:.1} fps of {}",
                    p.shown, p.dropped, p.late, p.realtime_factor, f.fps, f.source_fps
                ),
                "shown = frames run; realtime = shown/(shown+dropped) within 0.02, <= 1",
                ok,
            );
        }
        None => check("pacing counters", "none".into(), "paced run", false),
    }
    match f.worker {
        Some(w) => {
            let accounted = w.dropped + w.failed + w.completed + w.stale;
            let open = w.admitted as i128 - accounted as i128;
            check(
                "worker counters",
                format!(
                    "admitted {}, dropped {}, completed {}, stale {}, failed {}, in flight {}",
                    w.admitted, w.dropped, w.completed, w.stale, w.failed, w.in_flight
                ),
                "admitted = dropped + completed + stale + failed + at most 2 open",
                (0..=2).contains(&open),
            );
            check(
                "injected inference failure",
                format!("worker failed {}, viewer counted {}", w.failed, f.errors),
                "1 and 1, every frame still shown",
                w.failed == 1 && f.errors == 1 && f.frames == f.frames_asked,
            );
        }
        None => check("worker counters", "none".into(), "decoupled run", false),
    }
    checks
}

/// The table of every check.
pub fn table(checks: &[Check]) -> String {
    let mut md = String::from("| mode | criterion | value | limit | |\n|---|---|---|---|---|\n");
    for c in checks {
        let verdict = if c.ok { "ok" } else { "MISSED" };
        md += &format!(
            "| {} | {} | {} | {} | {verdict} |\n",
            c.mode, c.name, c.value, c.limit
        );
    }
    md
}

/// Resident set size of process `pid` (`VmRSS`), bytes.
fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The viewer's command line for one mode.
pub fn viewer_args(args: &SoakArgs, mode: &[&str], summary: &Path, warmup: usize) -> Vec<String> {
    let frames = (args.frames + warmup) as f64;
    // Three times the paced duration, plus start-up.
    let timeout = (3.0 * frames / args.source_fps) as u64 + 300;
    let mut v: Vec<String> = [
        "--headless",
        "--source",
        "synthetic-pan",
        "--size",
        "1280x720",
        "--target-size",
        "1280x720",
    ]
    .iter()
    .chain(mode)
    .map(|s| s.to_string())
    .collect();
    v.extend([
        "--horizon".into(),
        args.horizon.to_string(),
        "--source-fps".into(),
        args.source_fps.to_string(),
        "--frames".into(),
        args.frames.to_string(),
        "--warmup-frames".into(),
        warmup.to_string(),
        "--timeout-s".into(),
        timeout
            .min(burn_autogaze::limits::MAX_TIMEOUT_S)
            .to_string(),
        "--summary".into(),
        summary.display().to_string(),
    ]);
    v
}

/// Runs one mode, sampling its RSS every 250 ms: the summary and samples.
fn run_mode(
    bin: &Path,
    args: &SoakArgs,
    (name, flags): (&str, &[&str]),
    warmup: usize,
) -> Result<(PerfSummary, Vec<u64>), String> {
    let json = args.out.join(format!("soak-{name}.json"));
    let log = args.out.join(format!("soak-{name}.log"));
    let _ = std::fs::remove_file(&json);
    // The failure goes in at the middle of the measured frames (a source
    // sequence number: paced, dropped frames count too).
    let fail_at = warmup + args.frames / 2;
    let mut cmd = Command::new(bin);
    cmd.args(viewer_args(args, flags, &json, warmup))
        .args(["--case", &format!("soak-{name}")])
        .env(
            burn_autogaze::fail_once::TEST_FAIL_MASK_ENV,
            fail_at.to_string(),
        )
        .stdout(Stdio::null());
    if std::env::var_os("WGPU_BACKEND").is_none() {
        cmd.env("WGPU_BACKEND", "vulkan");
    }
    let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    cmd.stderr(log_file);
    eprintln!(
        "soak: {name}: {} + {warmup} frames at {} fps (failure injected at frame {fail_at})",
        args.frames, args.source_fps
    );
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the viewer: {e}"))?;
    let limit =
        Duration::from_secs((3.0 * (args.frames + warmup) as f64 / args.source_fps) as u64 + 400);
    let started = Instant::now();
    let mut samples = Vec::new();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{name}: still running after {limit:?}: stopped"));
        }
        if let Some(rss) = rss_of(child.id()) {
            samples.push(rss);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let csv: String = samples
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{:.2},{r}\n", i as f64 * 0.25))
        .collect();
    let _ = std::fs::write(args.out.join(format!("soak-{name}-rss.csv")), csv);
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        return Err(format!("{name}: the viewer exited with {status}: {tail:?}"));
    }
    let summary = std::fs::read_to_string(&json)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<PerfSummary>(&t).map_err(|e| e.to_string()))
        .map_err(|e| format!("{name}: no summary at {}: {e}", json.display()))?;
    Ok((summary, samples))
}

/// Runs the soak; an error names every missed criterion.
pub fn run(args: &SoakArgs) -> Result<(), String> {
    let modes: Vec<(&str, &[&str])> = MODES
        .iter()
        .copied()
        .filter(|(m, _)| args.modes.is_empty() || args.modes.iter().any(|a| a == m))
        .collect();
    if modes.is_empty() {
        return Err(format!(
            "no such mode in {:?} (patch-diff, model)",
            args.modes
        ));
    }
    burn_autogaze::limits::fps("--source-fps", args.source_fps).map_err(|e| e.to_string())?;
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => crate::matrix_run::build_viewer(true)?,
    };
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let warmup = args.warmup_frames.unwrap_or((args.frames / 10).max(30));
    let mut checks = Vec::new();
    for mode in modes {
        match run_mode(&bin, args, mode, warmup) {
            Ok((summary, rss)) => {
                checks.extend(judge(&Figures::of(mode.0, args.frames, &summary, &rss)))
            }
            Err(e) => checks.push(Check {
                mode: mode.0.into(),
                name: "run",
                value: e,
                limit: "a summary".into(),
                ok: false,
            }),
        }
    }
    let md = table(&checks);
    let path = args.out.join("soak.md");
    std::fs::write(&path, &md).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("{md}\nsoak: wrote {}", path.display());
    let missed: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{} {}: {}", c.mode, c.name, c.value))
        .collect();
    if missed.is_empty() {
        Ok(())
    } else {
        Err(format!("soak: missed: {}", missed.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Figures {
        Figures {
            mode: "patch-diff".into(),
            frames_asked: 1000,
            warmup: 100,
            frames: 1000,
            fps: 29.9,
            source_fps: 30.0,
            rss: rss_growth(&[100 << 20; 40]),
            allocations: Some(AllocationCounts {
                frame_step: 0,
                upload: 0,
                wgpu: 5000,
            }),
            pace: Some(PaceStats {
                shown: 1100,
                dropped: 0,
                late: 3,
                realtime_factor: 0.999,
            }),
            worker: Some(WorkerCounters {
                admitted: 1100,
                dropped: 10,
                stale: 0,
                failed: 1,
                completed: 1088,
                in_flight: 1,
            }),
            errors: 1,
        }
    }

    fn missed(f: &Figures) -> Vec<&'static str> {
        judge(f)
            .into_iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect()
    }

    /// A good run passes; each kind of bad figure fails its criterion.
    #[test]
    fn each_criterion_can_fail() {
        assert!(missed(&good()).is_empty(), "{:?}", judge(&good()));
        type Spoil = (fn(&mut Figures), &'static str);
        let cases: Vec<Spoil> = vec![
            (|f| f.frames = 999, "frames shown"),
            (
                |f| {
                    let mut s = vec![100u64 << 20; 40];
                    for x in &mut s[36..] {
                        *x = 102 << 20;
                    }
                    f.rss = rss_growth(&s);
                },
                "RSS growth after warm-up",
            ),
            (|f| f.rss = rss_growth(&[1; 5]), "RSS growth after warm-up"),
            (
                |f| f.allocations.as_mut().unwrap().frame_step = 1,
                "allocations/frame, frame step + composition",
            ),
            (
                |f| f.allocations.as_mut().unwrap().upload = 1,
                "allocations/frame, upload",
            ),
            (|f| f.allocations = None, "allocations/frame"),
            (|f| f.pace.as_mut().unwrap().shown = 1099, "pacing counters"),
            (
                |f| f.pace.as_mut().unwrap().realtime_factor = 0.9,
                "pacing counters",
            ),
            (|f| f.pace = None, "pacing counters"),
            (
                |f| f.worker.as_mut().unwrap().admitted = 1200,
                "worker counters",
            ),
            (
                |f| f.worker.as_mut().unwrap().failed = 0,
                "injected inference failure",
            ),
            (|f| f.errors = 0, "injected inference failure"),
        ];
        for (spoil, name) in cases {
            let mut f = good();
            spoil(&mut f);
            assert!(missed(&f).contains(&name), "{name}: {:?}", judge(&f));
        }
        let md = table(&judge(&good()));
        assert!(
            md.contains("| patch-diff | allocations/frame, upload | 0 "),
            "{md}"
        );
    }

    #[test]
    fn rss_growth_compares_after_warm_up_with_the_end() {
        // A ramp during warm-up does not count; growth after it does.
        let mut s: Vec<u64> = (0..100)
            .map(|i| if i < 15 { i * 10 } else { 1000 })
            .collect();
        assert_eq!(rss_growth(&s).unwrap().growth(), 0.0);
        for x in &mut s[96..] {
            *x = 1020;
        }
        let g = rss_growth(&s).unwrap();
        assert!((g.growth() - 0.02).abs() < 1e-9, "{g:?}");
        assert_eq!(g.peak, 1020);
    }
}
