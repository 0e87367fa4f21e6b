//! `cargo xtask crossover`: measures the compositor's paths (sparse, dense,
//! full, adaptive) over coverage 0..100% at 720p and 1080p, fits the cost
//! model, and writes the table the compositor reads
//! (`burn_autogaze/data/crossover.json`) plus a markdown table.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use burn_autogaze::crossover::{
    CROSSOVER_SCHEMA, CostCoefficients, CrossoverPoint, CrossoverTable,
};
use burn_autogaze::interframe::{Compositor, CompositorOptions, Dispatch};
use burn_autogaze::mask::{MaskGeometry, MaskPlan, MaskPlanner};
use burn_autogaze::source::{FrameSource, PanSpeed, SyntheticPan};
use burn_autogaze::tokens::TokenLayout;
use burn_autogaze::{Frame, FrameSize};

use burn_autogaze::perf::{machine, revision, utc_now};

use crate::stats::median;

/// What to measure.
#[derive(Debug, Clone, clap::Args)]
pub struct CrossoverArgs {
    /// Frame sizes, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "720p,1080p")]
    pub sizes: Vec<FrameSize>,
    /// Timed repetitions per point (the median is kept; a multiple of 24
    /// cycles every order of the four modes evenly).
    #[arg(long, default_value_t = 48,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub reps: usize,
    /// Coverage step in percent.
    #[arg(long, default_value_t = 5)]
    pub step: u32,
    /// Where the table goes.
    #[arg(long, default_value = "burn_autogaze/data/crossover.json")]
    pub out: PathBuf,
    /// Where the markdown table goes (the chart goes beside it, `.svg`).
    #[arg(long, default_value = "target/autogaze-perf/crossover.md")]
    pub markdown: PathBuf,
    /// Skip the upload lane (texture writes on a wgpu device).
    #[arg(long)]
    pub no_upload: bool,
}

/// Finest-grid token ids in a fixed scattered order (a multiplicative walk).
fn scattered_fine_tokens(k: usize) -> Vec<u32> {
    let n = 196u32;
    (0..n).map(|i| 69 + (i * 73) % n).take(k).collect()
}

/// Median compose time (µs) of `plan` under each dispatch mode, measured
/// round-robin on one compositor, so slow drifts of the machine hit every
/// path alike and the working set is the pipeline's own: one output, two
/// alternating frames.
fn time_paths(
    frames: &[Frame; 2],
    plan: &MaskPlan,
    modes: &[Dispatch],
    table: &CrossoverTable,
    reps: usize,
) -> Result<Vec<f64>, String> {
    let mut comp = Compositor::with_table(CompositorOptions::default(), table.clone());
    comp.compose(&frames[0], plan).map_err(|e| e.to_string())?; // keyframe
    let mut samples = vec![Vec::with_capacity(reps); modes.len()];
    let orders = permutations(modes.len());
    for i in 0..reps + 2 {
        // Cycle through every order of the modes, so each mode follows each
        // other mode equally often (a heavy full copy leaves dirty cache
        // lines that the next compose pays for), and precede each timed
        // compose by an untimed one of the same mode on the other frame.
        for &m in &orders[i % orders.len()] {
            comp.options_mut().dispatch = modes[m];
            comp.compose(&frames[i % 2], plan)
                .map_err(|e| e.to_string())?;
            let t = Instant::now();
            comp.compose(&frames[(i + 1) % 2], plan)
                .map_err(|e| e.to_string())?;
            if i >= 2 {
                samples[m].push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    Ok(samples.iter().map(|s| median(s)).collect())
}

/// One point of the upload lane.
struct UploadPoint {
    regions: usize,
    region_bytes: usize,
    frame_bytes: usize,
    regions_us: f64,
    full_us: f64,
}

/// Median times of writing the dirty regions a sparse compose of `plan`
/// leaves, and of one whole-frame write, alternating the two.
fn time_uploads(
    bench: &mut crate::upload_bench::UploadBench,
    frames: &[Frame; 2],
    plan: &MaskPlan,
    reps: usize,
) -> Result<UploadPoint, String> {
    let mut comp = Compositor::new(CompositorOptions {
        dispatch: Dispatch::Sparse,
        ..CompositorOptions::default()
    });
    comp.compose(&frames[0], plan).map_err(|e| e.to_string())?;
    comp.compose(&frames[1], plan).map_err(|e| e.to_string())?;
    let size = frames[0].size();
    // Regions as they are (calls are free in this model), and the whole frame.
    let as_regions = burn_autogaze::upload::UploadCost {
        per_call_ns: 0.0,
        per_byte_ns: 1.0,
    };
    let mut regions = burn_autogaze::upload::StagedUpload::default();
    let mut whole = burn_autogaze::upload::StagedUpload::default();
    let dirty = comp.dirty_regions();
    let staged = regions.stage(comp.output(), size, dirty, &as_regions);
    whole.stage_full(comp.output(), size);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..reps.max(1) + 1 {
        let first_regions = i % 2 == 0;
        for turn in 0..2 {
            let is_regions = (turn == 0) == first_regions;
            let t = if is_regions {
                if !staged {
                    continue;
                }
                bench.time(&regions)?
            } else {
                bench.time(&whole)?
            };
            if i > 0 {
                let us = t.as_secs_f64() * 1e6;
                if is_regions { a.push(us) } else { b.push(us) }
            }
        }
    }
    Ok(UploadPoint {
        regions: if staged { regions.regions().len() } else { 0 },
        region_bytes: if staged { regions.bytes().len() } else { 0 },
        frame_bytes: size.rgba_len(),
        regions_us: median(&a),
        full_us: median(&b),
    })
}

/// Every order of `0..n` (n! of them; n is 3 or 4 here).
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n <= 1 {
        return vec![(0..n).collect()];
    }
    let mut out = Vec::new();
    for rest in permutations(n - 1) {
        for pos in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(pos, n - 1);
            out.push(p);
        }
    }
    out
}

/// Least squares for t = a*x + b*y (no intercept).
fn fit2(rows: &[(f64, f64, f64)]) -> (f64, f64) {
    let (mut sxx, mut sxy, mut syy, mut sxt, mut syt) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(x, y, t) in rows {
        sxx += x * x;
        sxy += x * y;
        syy += y * y;
        sxt += x * t;
        syt += y * t;
    }
    let det = sxx * syy - sxy * sxy;
    if det.abs() < 1e-12 {
        return (0.0, if syy > 0.0 { syt / syy } else { 0.0 });
    }
    (
        ((sxt * syy - syt * sxy) / det).max(0.0),
        ((syt * sxx - sxt * sxy) / det).max(0.0),
    )
}

/// Linear regression t = p + q*x.
fn fit_line(rows: &[(f64, f64)]) -> (f64, f64) {
    let n = rows.len() as f64;
    let mx = rows.iter().map(|r| r.0).sum::<f64>() / n;
    let mt = rows.iter().map(|r| r.1).sum::<f64>() / n;
    let cov: f64 = rows.iter().map(|r| (r.0 - mx) * (r.1 - mt)).sum();
    let var: f64 = rows.iter().map(|r| (r.0 - mx).powi(2)).sum();
    let q = if var > 0.0 { (cov / var).max(0.0) } else { 0.0 };
    ((mt - q * mx).max(0.0), q)
}

/// Measures, fits, writes. Returns the table.
pub fn run(args: &CrossoverArgs) -> Result<CrossoverTable, String> {
    if args.reps == 0 || args.step == 0 || args.step > 100 {
        return Err("--reps must be >= 1 and --step in 1..=100".into());
    }
    let start = CrossoverTable::embedded();
    let mut uploads = if args.no_upload {
        None
    } else {
        Some(crate::upload_bench::UploadBench::open()?)
    };
    let mut upload_rows = Vec::new();
    let mut planner = MaskPlanner::new(TokenLayout::release());
    let mut sizes = Vec::new();
    let mut points = Vec::new();
    let mut plans_by_size = Vec::new();
    for &size in &args.sizes {
        let mut src =
            SyntheticPan::new(size, PanSpeed::default(), 30.0).map_err(|e| e.to_string())?;
        let frames = [
            src.next_frame().map_err(|e| e.to_string())?,
            src.next_frame().map_err(|e| e.to_string())?,
        ];
        let (mut sparse_rows, mut dense_rows, mut full_rows) = (Vec::new(), Vec::new(), Vec::new());
        let mut measured = Vec::new();
        for pct in (0..=100).step_by(args.step as usize) {
            let k = ((pct as f64 / 100.0) * 196.0).round() as usize;
            let plan = planner.plan(scattered_fine_tokens(k), size, MaskGeometry::Deduplicated);
            let paths = [Dispatch::Sparse, Dispatch::Dense, Dispatch::Full];
            let t = time_paths(&frames, &plan, &paths, &start, args.reps)?;
            let (sparse, dense, full) = (t[0], t[1], t[2]);
            let st = plan.stats();
            sparse_rows.push((st.row_spans as f64, st.copied_bytes as f64, sparse * 1e3));
            dense_rows.push((st.updated_pixels as f64, dense * 1e3));
            full_rows.push(full * 1e3 / (size.pixels() * 4) as f64);
            eprintln!(
                "crossover {size} {:>5.1}%: sparse {sparse:8.1} us, dense {dense:8.1} us, full {full:8.1} us",
                plan.coverage() * 100.0
            );
            measured.push((plan, sparse, dense, full));
        }
        let (row, byte) = fit2(&sparse_rows);
        let (fixed, per_union) = fit_line(&dense_rows);
        let coefficients = CostCoefficients {
            width: size.width,
            height: size.height,
            sparse_ns_per_row: row,
            sparse_ns_per_byte: byte,
            dense_ns_per_pixel: fixed / size.pixels() as f64,
            dense_ns_per_union_pixel: per_union,
            full_ns_per_byte: median(&full_rows),
        };
        sizes.push(coefficients);
        plans_by_size.push((size, frames, measured));
    }
    let mut table = CrossoverTable {
        schema: CROSSOVER_SCHEMA.into(),
        revision: revision(),
        date: utc_now(),
        machine: machine(),
        sizes,
        points: Vec::new(),
        upload: None,
        upload_adapter: None,
    };
    // Adaptive with the fitted model, against the forced paths measured again
    // beside it, round-robin.
    for (size, frames, measured) in plans_by_size {
        for (plan, ..) in measured {
            let paths = [
                Dispatch::Sparse,
                Dispatch::Dense,
                Dispatch::Full,
                Dispatch::Adaptive,
            ];
            let t = time_paths(&frames, &plan, &paths, &table, args.reps)?;
            let (sparse, dense, full, adaptive) = (t[0], t[1], t[2], t[3]);
            let upload = match uploads.as_mut() {
                Some(bench) => Some(time_uploads(bench, &frames, &plan, args.reps)?),
                None => None,
            };
            if let Some(u) = &upload {
                upload_rows.push((u.regions as f64, u.region_bytes as f64, u.regions_us * 1e3));
                upload_rows.push((1.0, u.frame_bytes as f64, u.full_us * 1e3));
            }
            points.push(CrossoverPoint {
                width: size.width,
                height: size.height,
                coverage: plan.coverage(),
                sparse_us: sparse,
                dense_us: dense,
                full_us: full,
                adaptive_us: adaptive,
                upload_regions: upload.as_ref().map(|u| u.regions as u32),
                upload_regions_us: upload.as_ref().map(|u| u.regions_us),
                upload_full_us: upload.as_ref().map(|u| u.full_us),
            });
        }
    }
    table.points = points;
    if let Some(bench) = &uploads {
        let (per_call_ns, per_byte_ns) = fit2(&upload_rows);
        table.upload = Some(burn_autogaze::upload::UploadCost {
            per_call_ns,
            per_byte_ns,
        });
        table.upload_adapter = Some(bench.adapter.clone());
    }
    let json = serde_json::to_string_pretty(&table).map_err(|e| e.to_string())?;
    std::fs::write(&args.out, json + "\n")
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    let md = markdown(&table);
    if let Some(dir) = args.markdown.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&args.markdown, &md)
        .map_err(|e| format!("cannot write {}: {e}", args.markdown.display()))?;
    let svg = args.markdown.with_extension("svg");
    crate::chart::write_crossover_svg(&svg, &table)?;
    println!("{md}");
    println!(
        "wrote {}, {} and {}",
        args.out.display(),
        args.markdown.display(),
        svg.display()
    );
    Ok(table)
}

/// The crossover table as markdown.
pub fn markdown(table: &CrossoverTable) -> String {
    let mut md = format!(
        "# Compositor crossover\n\nrevision {}, {}, {}\n\n| size | coverage % | sparse us | dense us | full us | adaptive us | adaptive / best forced | upload regions (us, writes) | upload whole frame us |\n|---|---|---|---|---|---|---|---|---|\n",
        table.revision, table.date, table.machine
    );
    let mut worst = 0.0f64;
    for p in &table.points {
        // A 1 us floor on both sides: below it the timer, not the path, speaks.
        let best = p.sparse_us.min(p.dense_us).min(p.full_us);
        let ratio = (p.adaptive_us + 1.0) / (best + 1.0);
        worst = worst.max(ratio);
        let _ = writeln!(
            md,
            "| {}x{} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {} | {} |",
            p.width,
            p.height,
            p.coverage * 100.0,
            p.sparse_us,
            p.dense_us,
            p.full_us,
            p.adaptive_us,
            ratio,
            match (p.upload_regions_us, p.upload_regions) {
                (Some(us), Some(n)) => format!("{us:.1} ({n})"),
                _ => "-".into(),
            },
            p.upload_full_us
                .map(|us| format!("{us:.1}"))
                .unwrap_or_else(|| "-".into()),
        );
    }
    let _ = writeln!(
        md,
        "\nworst adaptive / best forced (1 us floor): {worst:.2}\n\n| size | sparse ns/row | sparse ns/byte | dense ns/px | dense ns/union px | full ns/byte |\n|---|---|---|---|---|---|"
    );
    for c in &table.sizes {
        let _ = writeln!(
            md,
            "| {}x{} | {:.2} | {:.4} | {:.4} | {:.4} | {:.4} |",
            c.width,
            c.height,
            c.sparse_ns_per_row,
            c.sparse_ns_per_byte,
            c.dense_ns_per_pixel,
            c.dense_ns_per_union_pixel,
            c.full_ns_per_byte
        );
    }
    if let Some(u) = table.upload {
        let _ = writeln!(
            md,
            "\nupload on {}: {:.1} us per write + {:.3} ns per byte",
            table.upload_adapter.as_deref().unwrap_or("?"),
            u.per_call_ns / 1e3,
            u.per_byte_ns
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_recover_known_coefficients() {
        let rows: Vec<(f64, f64, f64)> = (1..20)
            .map(|i| {
                (
                    i as f64 * 10.0,
                    (i * i) as f64,
                    3.0 * i as f64 * 10.0 + 0.5 * (i * i) as f64,
                )
            })
            .collect();
        let (a, b) = fit2(&rows);
        assert!((a - 3.0).abs() < 1e-9 && (b - 0.5).abs() < 1e-9);
        let (p, q) = fit_line(&[(0.0, 5.0), (10.0, 25.0), (20.0, 45.0)]);
        assert!((p - 5.0).abs() < 1e-9 && (q - 2.0).abs() < 1e-9);
        assert_eq!(permutations(4).len(), 24);
        assert_eq!(permutations(3).len(), 6);
        assert_eq!(
            scattered_fine_tokens(196)
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            196
        );
    }

    #[test]
    fn tiny_sweep_writes_a_table_the_compositor_accepts() {
        let dir = std::env::temp_dir().join(format!("autogaze_xover_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let args = CrossoverArgs {
            sizes: vec![FrameSize::new(64, 36).unwrap()],
            reps: 1,
            step: 50,
            out: dir.join("crossover.json"),
            markdown: dir.join("crossover.md"),
            no_upload: true,
        };
        let table = run(&args).unwrap();
        assert_eq!(table.points.len(), 3);
        let back = CrossoverTable::from_file(&args.out).unwrap();
        assert_eq!(back.sizes.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
