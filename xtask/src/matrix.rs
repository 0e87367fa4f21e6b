//! `cargo xtask bevy-perf-matrix`: the headless Bevy viewer over the case
//! matrix (sizes x sources x mask sources x display transfers, forced
//! dispatch and geometry lanes, a real-video lane), one process per case
//! with a time limit, then one summary table, the disproportionate-drop
//! ratios and a chart.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn_autogaze::perf::{PerfSummary, machine, revision, utc_now};
use burn_autogaze::timing::Stage;
use serde::Serialize;

use crate::gate::{self, Baseline, CaseRounds};
use crate::matrix_data::{Case, CaseRun, interval};
use crate::matrix_report::{DropRatio, RatioVerdict, drop_ratios, summary_md};
use crate::matrix_run::{build_viewer, model_flags, rounds_given, run_one};
use crate::paired;

/// Most rounds of one matrix run (each round runs every case).
pub const MAX_ROUNDS: u64 = 1000;

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct MatrixArgs {
    /// Measured frames per case and round.
    #[arg(long, default_value_t = 90, value_parser = burn_autogaze::cli::frame_count(1))]
    pub frames: usize,
    /// Rounds over the whole matrix, alternating the case order; each case
    /// reports its median-p95 round (this machine's noise moves a single
    /// run's p95 by 10-20 %, more than the ratios being checked).
    #[arg(long, default_value_t = 3,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_ROUNDS))]
    pub rounds: usize,
    /// The quick lane: 720p and 1080p, static and synthetic-pan,
    /// patch-diff and the AutoGaze model, CPU transfer, one round (unless
    /// `--rounds` says otherwise), then a screenshot of the viewer
    /// (`viewer.png`: input | mask | output with the overlay, 1280x720).
    #[arg(long)]
    pub quick: bool,
    /// Warm-up frames per case.
    #[arg(long, default_value_t = 10, value_parser = burn_autogaze::cli::frame_count(0))]
    pub warmup_frames: usize,
    /// Only run cases whose name contains each of these (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub filter: Vec<String>,
    /// Output directory.
    #[arg(long, default_value = "target/autogaze-perf")]
    pub out: PathBuf,
    /// Plan every case, then run one tiny case end to end (dev build).
    #[arg(long)]
    pub dry_run: bool,
    /// Exit non-zero when a disproportionate-drop ratio is over its limit
    /// (pan/static p95 > 1.25, adaptive/best forced p95 > 1.05).
    #[arg(long)]
    pub strict: bool,
    /// Model directory for the autogaze cases (default: random weights at
    /// the released model's size).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Time limit of one case, seconds.
    #[arg(long, default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=burn_autogaze::limits::MAX_TIMEOUT_S))]
    pub case_timeout_s: u64,
    /// Use the dev build of the viewer (release otherwise; `--dry-run`
    /// always uses dev, the profile the tests build).
    #[arg(long)]
    pub dev: bool,
    /// Compare with a saved baseline (a `--save-baseline` file or a
    /// matrix's `summary.json`): per case, p50/p95 frame time and the
    /// dominant stage's time against the rounds' noise band. With
    /// `--strict`, a regression beyond the band fails the run.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Write this run's rounds as a baseline (for a later `--baseline`).
    #[arg(long)]
    pub save_baseline: Option<PathBuf>,
    /// Backend of the autogaze cases' model: ndarray (CPU, the default) or
    /// wgpu (the GPU where there is one).
    #[arg(long, default_value = "ndarray")]
    pub model_backend: burn_autogaze::mask_source::ModelBackend,
    /// Where the autogaze cases' model makes its input: host, or device
    /// (with `--model-backend wgpu`).
    #[arg(long, default_value = "host")]
    pub model_preprocess: burn_autogaze::mask_source::InputPlace,
    /// PSNR in every case (`false`: off, so that the GPU-transfer cases
    /// with the model compose on the device alone; PSNR is measured on the
    /// host output).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub psnr: bool,
    /// The quick lanes' display transfers (default cpu; comma separated).
    #[arg(long, value_delimiter = ',',
          value_parser = clap::builder::PossibleValuesParser::new(["cpu", "gpu", "auto"]))]
    pub transfers: Vec<String>,
    /// Run this viewer binary instead of building one (a machine without
    /// a Rust toolchain, such as a lent GPU machine, runs a release viewer
    /// built elsewhere).
    #[arg(long)]
    pub viewer_bin: Option<PathBuf>,
    /// Paired mode: run this (old) viewer and the new one back to back for
    /// every case in every round (which goes first alternates) and judge
    /// each case on its per-round ratios new / old, so drift between runs
    /// cancels. With `--strict`, a regression fails the run. A dry run then
    /// keeps `--rounds`.
    #[arg(long)]
    pub against_bin: Option<PathBuf>,
}

fn case(
    size: &str,
    source: &str,
    mask: &str,
    transfer: &str,
    geometry: &str,
    dispatch: &str,
    extra: &[String],
) -> Case {
    let mut name = format!("bevy-{size}-{source}-{mask}-{transfer}");
    if geometry != "deduplicated" {
        name += &format!("-{geometry}");
    }
    if dispatch != "adaptive" {
        name += &format!("-{dispatch}");
    }
    let dims = match size {
        "720p" => "1280x720",
        "1080p" => "1920x1080",
        other => other,
    };
    let mut args: Vec<String> = [
        "--source",
        source,
        "--size",
        dims,
        "--mask-source",
        mask,
        "--display-transfer",
        transfer,
        "--mask-geometry",
        geometry,
        "--dispatch",
        dispatch,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend_from_slice(extra);
    Case {
        name,
        size: size.into(),
        source: source.into(),
        mask_source: mask.into(),
        transfer: transfer.into(),
        geometry: geometry.into(),
        dispatch: dispatch.into(),
        args,
        group: usize::MAX,
    }
}

/// The real-video frames (`$AUTOGAZE_VIDEO_DIR` or the shared fixtures).
fn video_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("AUTOGAZE_VIDEO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/fixtures/video/example_input"));
    dir.is_dir().then_some(dir)
}

/// Every case of the matrix, in run order.
pub fn plan(args: &MatrixArgs) -> Vec<Case> {
    let model = model_flags(
        args.model_dir.as_deref(),
        args.model_backend,
        args.model_preprocess,
    );
    let extra = |mask: &str| {
        if mask == "autogaze" {
            model.clone()
        } else {
            Vec::new()
        }
    };
    // Grouped by size and mask source: each group holds everything one
    // pair of drop ratios compares (static, pan adaptive, pan forced), so
    // those cases run minutes apart at most, next to each other.
    let quick_transfers: Vec<&str> = if args.transfers.is_empty() {
        vec!["cpu"]
    } else {
        args.transfers.iter().map(String::as_str).collect()
    };
    let (sources, transfers, forced): (&[&str], &[&str], &[&str]) = if args.quick {
        (&["static", "synthetic-pan"], &quick_transfers, &[])
    } else {
        (
            &["static", "synthetic-pan", "synthetic-local"],
            &["cpu", "gpu"],
            &["sparse", "dense", "full"],
        )
    };
    let mut cases = Vec::new();
    for size in ["720p", "1080p"] {
        for mask in ["patch-diff", "autogaze"] {
            let group = cases.len();
            for &source in sources {
                for &transfer in transfers {
                    cases.push(case(
                        size,
                        source,
                        mask,
                        transfer,
                        "deduplicated",
                        "adaptive",
                        &extra(mask),
                    ));
                }
            }
            // Full-frame motion with every dispatch path forced: the
            // adaptive case above must be within 5 % of the best of these.
            for &dispatch in forced {
                cases.push(case(
                    size,
                    "synthetic-pan",
                    mask,
                    "cpu",
                    "deduplicated",
                    dispatch,
                    &extra(mask),
                ));
            }
            for c in &mut cases[group..] {
                c.group = group;
            }
        }
    }
    if !args.psnr {
        for c in &mut cases {
            c.args.extend(["--psnr".into(), "false".into()]);
        }
    }
    if args.quick {
        cases.retain(|c| args.filter.iter().all(|f| c.name.contains(f.as_str())));
        return cases;
    }
    for geometry in ["native", "effective"] {
        cases.push(case(
            "1080p",
            "synthetic-pan",
            "patch-diff",
            "cpu",
            geometry,
            "adaptive",
            &[],
        ));
    }
    if let Some(dir) = video_dir() {
        // With the model on the device, the real video also runs on the
        // GPU transfer (the device composing, the frame lent to the model).
        let on_device = args.model_backend == burn_autogaze::mask_source::ModelBackend::Wgpu;
        for (mask, transfer) in [
            ("patch-diff", "cpu"),
            ("autogaze", "cpu"),
            ("autogaze", "gpu"),
        ] {
            if transfer == "gpu" && !on_device {
                continue;
            }
            let mut extra = extra(mask);
            extra.extend(["--images-dir".into(), dir.display().to_string()]);
            let mut c = case(
                "video",
                "images",
                mask,
                transfer,
                "deduplicated",
                "adaptive",
                &extra,
            );
            // The frames decide the size.
            if let Some(i) = c.args.iter().position(|a| a == "--size") {
                c.args.drain(i..i + 2);
            }
            cases.push(c);
        }
    }
    cases.retain(|c| args.filter.iter().all(|f| c.name.contains(f.as_str())));
    cases
}

/// The order of round `round`: groups forward on even rounds and backward on
/// odd ones (drift over the run hits every group alike), and inside each
/// group the cases rotated by the round, so no case always follows the same
/// neighbour.
fn round_order(cases: &[Case], round: usize) -> Vec<usize> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        match groups.last_mut() {
            Some(g) if c.group != usize::MAX && cases[g[0]].group == c.group => g.push(i),
            _ => groups.push(vec![i]),
        }
    }
    if round % 2 == 1 {
        groups.reverse();
    }
    groups
        .into_iter()
        .flat_map(|mut g| {
            let len = g.len();
            g.rotate_left(round * 3 % len);
            g
        })
        .collect()
}

/// One case's rounds folded into one: the round with the median p95 (the
/// lower middle for an even count), every round's p95, and every failure.
fn pick_median(
    case: &Case,
    rounds: Vec<(CaseRun, Option<PerfSummary>)>,
) -> (CaseRun, Option<PerfSummary>) {
    let errors: Vec<String> = rounds
        .iter()
        .enumerate()
        .filter_map(|(r, (run, _))| run.error.as_ref().map(|e| format!("round {}: {e}", r + 1)))
        .collect();
    let wall_s = rounds.iter().map(|(run, _)| run.wall_s).sum();
    let log = rounds
        .iter()
        .find(|(run, _)| run.error.is_some())
        .or(rounds.first())
        .map(|(run, _)| run.log.clone())
        .unwrap_or_default();
    let mut ok: Vec<(CaseRun, PerfSummary)> = rounds
        .into_iter()
        .filter_map(|(run, s)| s.map(|s| (run, s)))
        .collect();
    let p95_rounds: Vec<f64> = ok.iter().map(|(_, s)| interval(s).p95_ms).collect();
    ok.sort_by(|a, b| interval(&a.1).p95_ms.total_cmp(&interval(&b.1).p95_ms));
    let mid = ok.len().saturating_sub(1) / 2;
    let picked = (!ok.is_empty()).then(|| ok.swap_remove(mid));
    let (mut run, summary) = match picked {
        Some((run, s)) => (run, Some(s)),
        None => {
            let run = CaseRun {
                case: case.clone(),
                ok: false,
                error: Some(errors.join("; ")),
                wall_s,
                log,
                p95_rounds,
            };
            return (run, None);
        }
    };
    run.ok = errors.is_empty();
    run.error = (!errors.is_empty()).then(|| errors.join("; "));
    run.wall_s = wall_s;
    run.p95_rounds = p95_rounds;
    (run, summary)
}

fn progress(done: usize, total: usize, name: &str, started: Instant) {
    let width = 24;
    let filled = width * done / total.max(1);
    let eta = if done > 0 {
        let per = started.elapsed().as_secs_f64() / done as f64;
        let left = per * (total - done) as f64;
        format!("ETA {:.0}:{:02.0}", (left / 60.0).floor(), left % 60.0)
    } else {
        "ETA --:--".into()
    };
    eprintln!(
        "[{}{}] {done}/{total} {eta}  {name}",
        "#".repeat(filled),
        ".".repeat(width - filled)
    );
}

#[derive(Serialize)]
struct MatrixRecord<'a> {
    revision: String,
    date: String,
    machine: String,
    adapter: &'a str,
    frames: usize,
    warmup_frames: usize,
    rounds: usize,
    profile: &'a str,
    /// Backend of the autogaze cases' model.
    model_backend: &'a str,
    cases: &'a [CaseRun],
    drop_ratios: &'a [DropRatio],
    /// Median over cases of the p95 spread of their rounds.
    noise_band: f64,
    baseline_deltas: &'a [gate::CaseDelta],
    /// Paired mode (`--against-bin`): each case against the old viewer.
    paired_deltas: &'a [gate::CaseDelta],
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Runs the matrix (or the dry run). Returns an error when a case failed or
/// (with `--strict`) a ratio is over its limit.
pub fn run(args: &MatrixArgs, adapter: &str) -> Result<(), String> {
    let cases = plan(args);
    let model = model_flags(
        args.model_dir.as_deref(),
        args.model_backend,
        args.model_preprocess,
    );
    if args.model_preprocess == burn_autogaze::mask_source::InputPlace::Device
        && args.model_backend != burn_autogaze::mask_source::ModelBackend::Wgpu
    {
        return Err("--model-preprocess device needs --model-backend wgpu".into());
    }
    if cases.is_empty() {
        return Err("no case matches the filter".into());
    }
    if args.frames == 0 {
        return Err("--frames must be at least 1".into());
    }
    // A bad baseline stops the run before any case, not after all of them.
    let baseline = args.baseline.as_deref().map(gate::load).transpose()?;
    let dir = args.out.join("cases");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let release = !(args.dry_run || args.dev);
    let bin = match &args.viewer_bin {
        Some(bin) if bin.is_file() => bin.clone(),
        Some(bin) => return Err(format!("--viewer-bin {}: no such file", bin.display())),
        None => build_viewer(release)?,
    };
    let against = args.against_bin.as_deref();
    if let Some(old) = against.filter(|b| !b.is_file()) {
        return Err(format!("--against-bin {}: no such file", old.display()));
    }
    let old_dir = dir.join("against");
    if against.is_some() {
        std::fs::create_dir_all(&old_dir)
            .map_err(|e| format!("cannot create {}: {e}", old_dir.display()))?;
    }
    let limit = Duration::from_secs(args.case_timeout_s);
    let common = vec![
        "--frames".to_string(),
        args.frames.to_string(),
        "--warmup-frames".into(),
        args.warmup_frames.to_string(),
    ];
    let to_run: Vec<Case> = if args.dry_run {
        for c in &cases {
            println!("plan: {} {}", c.name, c.args.join(" "));
        }
        println!(
            "dry run: {} cases planned; running one tiny case",
            cases.len()
        );
        let mut tiny = case(
            "160x96",
            "synthetic-pan",
            "patch-diff",
            "auto",
            "deduplicated",
            "adaptive",
            &["--target-size".into(), "320x180".into()],
        );
        tiny.name = "bevy-dry-run-tiny".into();
        vec![tiny]
    } else {
        cases
    };
    if let Some(b) = &baseline {
        let names: Vec<&str> = to_run.iter().map(|c| c.name.as_str()).collect();
        gate::common_cases(b, &names)?;
    }
    let paired_dry_run = args.dry_run && against.is_some();
    let one_round = (args.dry_run && !paired_dry_run) || (args.quick && !rounds_given());
    let rounds = if one_round { 1 } else { args.rounds.max(1) };
    let n = to_run.len();
    let mut results: Vec<Vec<(CaseRun, Option<PerfSummary>)>> =
        (0..n).map(|_| Vec::new()).collect();
    let mut old_results: Vec<Vec<Option<PerfSummary>>> = (0..n).map(|_| Vec::new()).collect();
    let started = Instant::now();
    let mut done = 0;
    for round in 0..rounds {
        let order = round_order(&to_run, round);
        for i in order {
            let c = &to_run[i];
            progress(
                done,
                n * rounds,
                &format!("{} (round {}/{rounds})", c.name, round + 1),
                started,
            );
            let old_first = paired::old_first(round, i);
            let old_run = || against.map(|old| run_one(old, c, &common, &old_dir, round, limit).1);
            if old_first && let Some(s) = old_run() {
                old_results[i].push(s);
            }
            let (run, summary) = run_one(&bin, c, &common, &dir, round, limit);
            if !old_first && let Some(s) = old_run() {
                old_results[i].push(s);
            }
            match (&summary, &run.error) {
                (Some(s), _) => println!(
                    "{}: {:.1} fps, p95 {:.1} ms, dominant {} ({:.0}%)",
                    c.name,
                    s.fps,
                    interval(s).p95_ms,
                    s.dominant_stage.map(Stage::as_str).unwrap_or("-"),
                    100.0 * s.dominant_share
                ),
                (None, Some(e)) => println!("{}: FAILED: {e}", c.name),
                (None, None) => {}
            }
            results[i].push((run, summary));
            done += 1;
        }
    }
    let pairs: Vec<(CaseRounds, CaseRounds)> = to_run
        .iter()
        .zip(&results)
        .zip(&old_results)
        .filter_map(|((c, new), old)| {
            let new: Vec<Option<&PerfSummary>> = new.iter().map(|(_, s)| s.as_ref()).collect();
            paired::pair(&c.name, old, &new)
        })
        .collect();
    let paired_deltas = paired::compare(&pairs);
    if against.is_some() && paired_deltas.is_empty() {
        return Err(
            "--against-bin: no case has a round where both viewers ran: it compares nothing".into(),
        );
    }
    let mut runs = Vec::new();
    let mut summaries = Vec::new();
    let mut round_p95 = Vec::new();
    let mut case_rounds = Vec::new();
    for (c, rounds) in to_run.iter().zip(results) {
        round_p95.push((
            c.clone(),
            rounds
                .iter()
                .map(|(_, s)| s.as_ref().map(|s| interval(s).p95_ms))
                .collect::<Vec<_>>(),
        ));
        let ok: Vec<&PerfSummary> = rounds.iter().filter_map(|(_, s)| s.as_ref()).collect();
        let mut each = (!ok.is_empty()).then(|| CaseRounds::new(&c.name, &ok, None));
        let (run, summary) = pick_median(c, rounds);
        if let Some(mut each) = each.take() {
            each.dominant_stage = summary.as_ref().and_then(|s| s.dominant_stage);
            case_rounds.push(each);
        }
        if let Some(s) = summary {
            write(&dir.join(format!("{}.json", c.name)), &pretty(&s))?;
            summaries.push((c.clone(), s));
        }
        runs.push(run);
    }
    progress(n * rounds, n * rounds, "done", started);
    let ratios = drop_ratios(&round_p95);
    let deltas = baseline
        .as_ref()
        .map(|b| gate::compare(b, &case_rounds))
        .unwrap_or_default();
    if baseline.is_some() && deltas.is_empty() {
        return Err("--baseline: no case in common ran: it compares nothing".into());
    }
    let noise = gate::noise_band(&case_rounds);
    let mut md = summary_md(&runs, &summaries, &ratios, &deltas);
    if rounds > 1 {
        md += &format!(
            "\nRun-to-run noise: the median case's p95 spread over its {rounds} rounds is {:.1} %.\n",
            100.0 * noise
        );
    }
    if let Some(b) = &baseline {
        md += &format!(
            "Baseline: {} ({}, {}, {} round(s) a case); a change is judged against the wider of the two runs' spreads, at least {:.0} %.\n",
            b.revision,
            b.date,
            b.adapter,
            b.rounds,
            100.0 * gate::MIN_BAND
        );
        if let Some(line) = gate::provenance(b, &machine(), adapter) {
            md += &format!("{line}\n");
        }
        md += &gate::capped_note(
            &deltas,
            "compare with --against-bin (paired rounds cancel drift)",
        );
    }
    if let Some(old) = against {
        md += &paired::report(&old.display().to_string(), &paired_deltas, rounds);
        md += &gate::capped_note(&paired_deltas, "more rounds or a quieter machine narrow it");
    }
    let record = MatrixRecord {
        revision: revision(),
        date: utc_now(),
        machine: machine(),
        adapter,
        frames: args.frames,
        warmup_frames: args.warmup_frames,
        rounds,
        profile: if release { "release" } else { "dev" },
        model_backend: args.model_backend.as_str(),
        cases: &runs,
        drop_ratios: &ratios,
        noise_band: noise,
        baseline_deltas: &deltas,
        paired_deltas: &paired_deltas,
    };
    write(&args.out.join("matrix.json"), &pretty(&record))?;
    let all: Vec<&PerfSummary> = summaries.iter().map(|(_, s)| s).collect();
    write(&args.out.join("summary.json"), &pretty(&all))?;
    write(&args.out.join("summary.md"), &md)?;
    if let Some(path) = &args.save_baseline {
        let saved = Baseline {
            schema: gate::BASELINE_SCHEMA.into(),
            revision: record.revision.clone(),
            date: record.date.clone(),
            machine: record.machine.clone(),
            adapter: adapter.to_string(),
            rounds,
            cases: case_rounds.clone(),
        };
        write(path, &pretty(&saved))?;
        println!("bevy-perf-matrix: baseline saved to {}", path.display());
    }
    crate::chart::write_svg(&args.out.join("summary.svg"), &summaries)?;
    if args.quick && !args.dry_run {
        let png = args.out.join("viewer.png");
        crate::matrix_run::screenshot(&bin, &dir, &png, &model, limit)?;
        md += &format!(
            "\nThe viewer: `{}` (1280x720, synthetic-pan, AutoGaze).\n",
            png.display()
        );
        write(&args.out.join("summary.md"), &md)?;
    }
    println!("\n{md}");
    println!("bevy-perf-matrix: wrote {}", args.out.display());
    let failed: Vec<&str> = runs
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.case.name.as_str())
        .collect();
    if !failed.is_empty() {
        return Err(format!(
            "{} case(s) failed: {}",
            failed.len(),
            failed.join(", ")
        ));
    }
    let mut over: Vec<String> = ratios
        .iter()
        .filter(|r| r.verdict() == RatioVerdict::Over)
        .map(|r| format!("{} {} {} = {:.3}", r.check, r.size, r.mask_source, r.ratio))
        .collect();
    for (what, list) in [("the baseline", &deltas), ("--against-bin", &paired_deltas)] {
        over.extend(list.iter().filter(|d| d.regressed()).map(|d| {
            format!(
                "{} regressed against {what} (p95 {:+.1} %, band {:.1} %)",
                d.case,
                100.0 * d.p95.delta,
                100.0 * d.p95.band
            )
        }));
    }
    if args.strict && !over.is_empty() {
        return Err(format!("--strict: {}", over.join("; ")));
    }
    Ok(())
}

fn pretty<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

#[cfg(test)]
#[path = "matrix_tests.rs"]
mod tests;
