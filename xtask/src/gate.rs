//! The perf regression gate: a matrix run compared with a saved baseline,
//! each change judged against the run-to-run noise of the cases' rounds.
//!
//! The noise of one metric of one case is the spread of its rounds,
//! `(max - min) / median`. A change is judged against the wider of the
//! baseline's and the current run's spreads (never below [`MIN_BAND`]),
//! widened to the between-run scatter of all compared cases' changes
//! ([`scatter`]): a change inside that band is noise, not a regression.
//! No band is wider than [`MAX_BAND`], so a noisy baseline cannot hide every
//! regression. A baseline that compares nothing (empty, no case in common,
//! a time that is not a positive number) is an error, never a pass.

use std::collections::BTreeMap;
use std::path::Path;

use burn_autogaze::perf::PerfSummary;
use burn_autogaze::timing::Stage;
use serde::{Deserialize, Serialize};

use crate::matrix_data::interval;
use crate::stats::{median, spread};

/// Schema tag of a saved baseline.
pub const BASELINE_SCHEMA: &str = "burn_autogaze.baseline/1";

/// The narrowest band a change is judged against (3 %): two rounds that
/// happen to agree do not make a machine that quiet.
pub const MIN_BAND: f64 = 0.03;

/// The widest band a change is judged against (25 %): beyond it a noisy
/// baseline (or run) would hide any regression. A capped band is named in
/// the report ([`Change::capped`]).
pub const MAX_BAND: f64 = 0.25;

/// Every round of one case: frame-time p50 and p95, and each stage's mean
/// time a frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseRounds {
    pub case: String,
    pub p50_ms: Vec<f64>,
    pub p95_ms: Vec<f64>,
    pub stage_ms: BTreeMap<Stage, Vec<f64>>,
    /// The dominant stage of the case's median round.
    pub dominant_stage: Option<Stage>,
}

impl CaseRounds {
    /// The rounds of `case` (the successful ones, in round order);
    /// `median` names the dominant stage.
    pub fn new(case: &str, rounds: &[&PerfSummary], median: Option<&PerfSummary>) -> Self {
        let mut stage_ms: BTreeMap<Stage, Vec<f64>> = BTreeMap::new();
        for s in rounds {
            for (stage, l) in &s.stages {
                stage_ms.entry(*stage).or_default().push(l.mean_ms);
            }
        }
        Self {
            case: case.to_string(),
            p50_ms: rounds.iter().map(|s| interval(s).p50_ms).collect(),
            p95_ms: rounds.iter().map(|s| interval(s).p95_ms).collect(),
            stage_ms,
            dominant_stage: median.and_then(|s| s.dominant_stage),
        }
    }
}

/// What `--save-baseline` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub schema: String,
    pub revision: String,
    pub date: String,
    pub machine: String,
    pub adapter: String,
    pub rounds: usize,
    pub cases: Vec<CaseRounds>,
}

/// Reads a baseline: a file written by `--save-baseline`, or a matrix's
/// `summary.json` (one round a case: its noise then comes from the current
/// run alone).
pub fn load(path: &Path) -> Result<Baseline, String> {
    let text = burn_autogaze::limits::read_text(
        path,
        burn_autogaze::limits::MAX_JSON_FILE_BYTES,
        "MAX_JSON_FILE_BYTES",
    )
    .map_err(|e| format!("baseline {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("baseline {}: {e}", path.display()))
}

/// Parses and checks baseline text (either kind of file): a baseline with
/// no case, or a time that is not a positive finite number, is an error.
pub fn parse(text: &str) -> Result<Baseline, String> {
    let baseline = parse_any(text)?;
    check(&baseline)?;
    Ok(baseline)
}

fn parse_any(text: &str) -> Result<Baseline, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if value.is_array() {
        let summaries: Vec<PerfSummary> = serde_json::from_value(value)
            .map_err(|e| format!("not a summary.json (a list of perf summaries): {e}"))?;
        let first = summaries.first();
        return Ok(Baseline {
            schema: BASELINE_SCHEMA.into(),
            revision: first.map(|s| s.revision.clone()).unwrap_or_default(),
            date: first.map(|s| s.date.clone()).unwrap_or_default(),
            machine: first.map(|s| s.machine.clone()).unwrap_or_default(),
            adapter: first.map(|s| s.adapter.clone()).unwrap_or_default(),
            rounds: 1,
            cases: summaries
                .iter()
                .map(|s| CaseRounds::new(&s.case, &[s], Some(s)))
                .collect(),
        });
    }
    let baseline: Baseline = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if baseline.schema != BASELINE_SCHEMA {
        return Err(format!(
            "schema {:?}, expected {BASELINE_SCHEMA:?}",
            baseline.schema
        ));
    }
    Ok(baseline)
}

/// A baseline that can compare something: at least one case, each with
/// rounds, every frame time a positive finite number (a stage's mean may be
/// zero: a stage that did not run).
fn check(b: &Baseline) -> Result<(), String> {
    if b.cases.is_empty() {
        return Err("holds no case: it compares nothing".into());
    }
    // A case twice would be compared with the wrong one of its entries (a
    // crash the fuzzer found: a baseline against itself "regressed").
    let mut names = std::collections::BTreeSet::new();
    if let Some(twice) = b.cases.iter().find(|c| !names.insert(c.case.as_str())) {
        return Err(format!("case {:?} appears twice", twice.case));
    }
    for c in &b.cases {
        if c.p50_ms.is_empty() || c.p95_ms.is_empty() {
            return Err(format!("case {:?} has no rounds", c.case));
        }
        let times = c.p50_ms.iter().chain(&c.p95_ms);
        if let Some(bad) = times.into_iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(format!(
                "case {:?}: frame time {bad} is not a positive number of ms",
                c.case
            ));
        }
        for (stage, values) in &c.stage_ms {
            if let Some(bad) = values.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
                return Err(format!(
                    "case {:?}: stage {} time {bad} is not a number of ms",
                    c.case,
                    stage.as_str()
                ));
            }
        }
    }
    Ok(())
}

/// The cases of a run the baseline also has; none is an error naming both
/// sides (a baseline that compares nothing must not pass `--strict`).
pub fn common_cases<'a>(b: &Baseline, names: &[&'a str]) -> Result<Vec<&'a str>, String> {
    let common: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| b.cases.iter().any(|c| c.case == *n))
        .collect();
    if common.is_empty() {
        let few = |v: Vec<&str>| {
            let more = if v.len() > 3 { ", ..." } else { "" };
            format!("{}{more}", v[..v.len().min(3)].join(", "))
        };
        return Err(format!(
            "the baseline has no case in common with this run: it compares nothing (baseline: {}; run: {})",
            few(b.cases.iter().map(|c| c.case.as_str()).collect()),
            few(names.to_vec()),
        ));
    }
    Ok(common)
}

/// A line naming a baseline measured on another machine or adapter (its
/// times are not this machine's: a difference may be the hardware).
pub fn provenance(b: &Baseline, machine: &str, adapter: &str) -> Option<String> {
    let mut other = Vec::new();
    if b.machine != machine {
        other.push(format!("machine {:?} (this run: {machine:?})", b.machine));
    }
    if b.adapter != adapter {
        other.push(format!("adapter {:?} (this run: {adapter:?})", b.adapter));
    }
    (!other.is_empty()).then(|| {
        format!(
            "⚠ The baseline comes from another {}: its times are not this machine's.",
            other.join(" and ")
        )
    })
}

/// How a metric moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Faster by more than the noise band.
    Better,
    /// Inside the noise band.
    Noise,
    /// Slower by more than the noise band: a regression.
    Worse,
}

/// One metric of one case against the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Change {
    pub base_ms: f64,
    pub now_ms: f64,
    /// `now / base - 1`.
    pub delta: f64,
    /// The noise band the delta is judged against.
    pub band: f64,
    pub verdict: Verdict,
    /// The noise was wider than [`MAX_BAND`]: the band is capped there.
    pub capped: bool,
}

/// A band from a noise estimate: at least [`MIN_BAND`], at most
/// [`MAX_BAND`] (and whether the cap applied).
pub fn band(noise: f64) -> (f64, bool) {
    let band = noise.max(MIN_BAND);
    if band > MAX_BAND {
        (MAX_BAND, true)
    } else {
        (band, false)
    }
}

/// Judges the medians of `now` against those of `base`.
pub fn judge(base: &[f64], now: &[f64]) -> Option<Change> {
    if base.is_empty() || now.is_empty() {
        return None;
    }
    let (b, n) = (median(base), median(now));
    if b <= 0.0 {
        return None;
    }
    let (band, capped) = band(spread(base).max(spread(now)));
    let delta = n / b - 1.0;
    Some(Change {
        base_ms: b,
        now_ms: n,
        delta,
        band,
        verdict: verdict(delta, band),
        capped,
    })
}

pub fn verdict(delta: f64, band: f64) -> Verdict {
    if delta > band {
        Verdict::Worse
    } else if delta < -band {
        Verdict::Better
    } else {
        Verdict::Noise
    }
}

/// Cases needed before their changes' scatter counts as a noise estimate.
pub const SCATTER_CASES: usize = 8;

/// Between-run noise of one metric: twice the robust standard deviation
/// (1.4826 x the median absolute deviation) of the changes of all compared
/// cases, 0 with fewer than [`SCATTER_CASES`]. Rounds minutes apart miss the
/// drift between two runs half an hour apart; the scatter of the changes
/// of cases that did not change measures it. It is a spread, not a shift:
/// a change that slows every case alike still shows.
pub fn scatter(deltas: &[f64]) -> f64 {
    if deltas.len() < SCATTER_CASES {
        return 0.0;
    }
    let m = median(deltas);
    let dev: Vec<f64> = deltas.iter().map(|d| (d - m).abs()).collect();
    2.0 * 1.4826 * median(&dev)
}

/// Widens `changes`' bands to at least their metric's scatter.
fn widen(mut changes: Vec<&mut Change>) {
    let deltas: Vec<f64> = changes.iter().map(|c| c.delta).collect();
    let floor = scatter(&deltas);
    for c in &mut changes {
        let (widened, capped) = band(c.band.max(floor));
        c.band = widened;
        c.capped |= capped;
        c.verdict = verdict(c.delta, c.band);
    }
}

/// One case against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseDelta {
    pub case: String,
    pub p50: Change,
    pub p95: Change,
    /// The current dominant stage's mean time a frame.
    pub dominant: Option<(Stage, Change)>,
}

impl CaseDelta {
    /// Slower than the noise allows in any judged metric.
    pub fn regressed(&self) -> bool {
        self.p50.verdict == Verdict::Worse
            || self.p95.verdict == Verdict::Worse
            || self
                .dominant
                .is_some_and(|(_, c)| c.verdict == Verdict::Worse)
    }
}

/// Compares every current case that the baseline also has.
pub fn compare(baseline: &Baseline, current: &[CaseRounds]) -> Vec<CaseDelta> {
    let mut deltas: Vec<CaseDelta> = current
        .iter()
        .filter_map(|now| {
            let base = baseline.cases.iter().find(|b| b.case == now.case)?;
            let dominant = now.dominant_stage.and_then(|stage| {
                let change = judge(base.stage_ms.get(&stage)?, now.stage_ms.get(&stage)?)?;
                Some((stage, change))
            });
            Some(CaseDelta {
                case: now.case.clone(),
                p50: judge(&base.p50_ms, &now.p50_ms)?,
                p95: judge(&base.p95_ms, &now.p95_ms)?,
                dominant,
            })
        })
        .collect();
    widen(deltas.iter_mut().map(|d| &mut d.p50).collect());
    widen(deltas.iter_mut().map(|d| &mut d.p95).collect());
    widen(
        deltas
            .iter_mut()
            .filter_map(|d| d.dominant.as_mut().map(|(_, c)| c))
            .collect(),
    );
    deltas
}

/// The run's noise band: the median over cases of the p95 spread.
pub fn noise_band(cases: &[CaseRounds]) -> f64 {
    let spreads: Vec<f64> = cases
        .iter()
        .filter(|c| c.p95_ms.len() > 1)
        .map(|c| spread(&c.p95_ms))
        .collect();
    median(&spreads)
}

/// A line naming the metrics whose band was capped at [`MAX_BAND`] (empty
/// when none was): their noise was wider than the gate trusts.
/// `hint` says what to do about it.
pub fn capped_note(deltas: &[CaseDelta], hint: &str) -> String {
    let capped: Vec<&str> = deltas
        .iter()
        .filter(|d| d.p50.capped || d.p95.capped || d.dominant.is_some_and(|(_, c)| c.capped))
        .map(|d| d.case.as_str())
        .collect();
    if capped.is_empty() {
        return String::new();
    }
    format!(
        "⚠ Noise beyond the {:.0} % cap in {} case(s) ({}): their bands are capped at it; {hint}.\n",
        100.0 * MAX_BAND,
        capped.len(),
        capped.join(", ")
    )
}

/// A change as a table cell: a colour mark, the delta and its band.
pub fn cell(c: &Change) -> String {
    let mark = match c.verdict {
        Verdict::Better => "🟢",
        Verdict::Noise => "⚪",
        Verdict::Worse => "🔴",
    };
    let cap = if c.capped { ", capped" } else { "" };
    format!(
        "{mark} {:+.1}% (±{:.0}%{cap})",
        100.0 * c.delta,
        100.0 * c.band
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rounds(case: &str, p95: &[f64], render: &[f64]) -> CaseRounds {
        CaseRounds {
            case: case.into(),
            p50_ms: p95.iter().map(|v| v - 10.0).collect(),
            p95_ms: p95.to_vec(),
            stage_ms: [(Stage::Render, render.to_vec())].into_iter().collect(),
            dominant_stage: Some(Stage::Render),
        }
    }

    fn baseline(cases: Vec<CaseRounds>) -> Baseline {
        Baseline {
            schema: BASELINE_SCHEMA.into(),
            revision: "r".into(),
            date: "d".into(),
            machine: "m".into(),
            adapter: "a".into(),
            rounds: 3,
            cases,
        }
    }

    #[test]
    fn a_change_inside_the_noise_band_is_not_a_regression() {
        // Baseline rounds spread 20 % (50..60 around 55): +10 % is noise.
        let base = baseline(vec![rounds("a", &[50.0, 55.0, 60.0], &[40.0, 41.0, 42.0])]);
        let now = [rounds("a", &[58.0, 60.5, 62.0], &[41.5, 42.0, 42.5])];
        let d = &compare(&base, &now)[0];
        assert_eq!(d.p95.verdict, Verdict::Noise, "{d:?}");
        assert!((d.p95.delta - 0.1).abs() < 1e-9 && (d.p95.band - 10.0 / 55.0).abs() < 1e-9);
        assert!(!d.regressed());
    }

    #[test]
    fn a_change_beyond_the_band_is_judged_both_ways() {
        // Quiet rounds (2 % spread: the 3 % floor applies); +20 % is worse.
        let base = baseline(vec![
            rounds("slow", &[50.0, 50.5, 51.0], &[40.0, 40.2, 40.4]),
            rounds("fast", &[50.0, 50.5, 51.0], &[40.0, 40.2, 40.4]),
            rounds("gone", &[1.0], &[1.0]),
        ]);
        let now = [
            rounds("slow", &[60.0, 60.5, 61.0], &[48.0, 48.5, 49.0]),
            rounds("fast", &[40.0, 40.5, 41.0], &[30.0, 30.2, 30.4]),
            rounds("new", &[1.0], &[1.0]),
        ];
        let d = compare(&base, &now);
        assert_eq!(d.len(), 2, "only cases present in both are compared");
        assert_eq!(d[0].p95.band, MIN_BAND);
        assert_eq!(
            (d[0].p50.verdict, d[0].p95.verdict),
            (Verdict::Worse, Verdict::Worse)
        );
        assert_eq!(d[0].dominant.unwrap().1.verdict, Verdict::Worse);
        assert!(d[0].regressed());
        assert_eq!(d[1].p95.verdict, Verdict::Better);
        assert!(!d[1].regressed());
        assert!(
            cell(&d[0].p95).starts_with("🔴 +19.8%"),
            "{}",
            cell(&d[0].p95)
        );
    }

    #[test]
    fn the_dominant_stage_alone_can_regress_and_noise_is_summarised() {
        let base = baseline(vec![rounds("a", &[50.0, 51.0, 52.0], &[10.0, 10.1, 10.2])]);
        let now = [rounds("a", &[50.0, 51.0, 52.0], &[14.0, 14.1, 14.2])];
        let d = &compare(&base, &now)[0];
        assert_eq!(d.p95.verdict, Verdict::Noise);
        assert!(d.regressed(), "the stage went up 39 %");
        assert!((noise_band(&now) - 2.0 / 51.0).abs() < 1e-9);
        assert_eq!((median(&[3.0, 1.0]), spread(&[5.0])), (2.0, 0.0));
    }

    #[test]
    fn the_scatter_of_unchanged_cases_widens_the_band_but_a_global_shift_shows() {
        // Ten cases with quiet rounds whose medians moved -10..+10 % between
        // the runs (drift), and one +12 %: within the drift, not a regression.
        let names: Vec<String> = (0..11).map(|i| format!("c{i}")).collect();
        let base = baseline(
            names
                .iter()
                .map(|n| rounds(n, &[100.0, 100.5, 101.0], &[50.0, 50.2, 50.4]))
                .collect(),
        );
        let moved = |f: f64| [100.5 * f - 0.5, 100.5 * f, 100.5 * f + 0.5];
        let factors = [0.9, 0.92, 0.95, 0.97, 1.0, 1.0, 1.03, 1.05, 1.08, 1.1, 1.12];
        let now: Vec<CaseRounds> = names
            .iter()
            .zip(factors)
            .map(|(n, f)| rounds(n, &moved(f), &[50.0, 50.2, 50.4]))
            .collect();
        let d = compare(&base, &now);
        let last = &d[10].p95;
        // Scatter: 2 x 1.4826 x 0.05 (the median absolute change) = 14.8 %.
        assert!((last.delta - 0.12).abs() < 1e-9);
        assert!((last.band - 0.148_26).abs() < 1e-9, "{last:?}");
        assert_eq!(last.verdict, Verdict::Noise);
        // Everything 30 % slower alike: no scatter, every case is worse.
        let slow: Vec<CaseRounds> = names
            .iter()
            .map(|n| rounds(n, &moved(1.3), &[65.0, 65.2, 65.4]))
            .collect();
        let d = compare(&base, &slow);
        assert!(
            d.iter()
                .all(|c| c.p95.verdict == Verdict::Worse && c.regressed())
        );
        assert_eq!(scatter(&[0.5; 7]), 0.0, "too few cases to say");
    }

    #[test]
    fn baselines_load_from_either_file_and_bad_files_are_named() {
        let dir = std::env::temp_dir().join(format!("autogaze-gate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let saved = dir.join("baseline.json");
        let base = baseline(vec![rounds("a", &[50.0, 51.0], &[1.0, 1.0])]);
        std::fs::write(&saved, serde_json::to_string(&base).unwrap()).unwrap();
        assert_eq!(load(&saved).unwrap(), base);
        // A baseline that compares nothing is refused, never a pass.
        let empty = dir.join("summary.json");
        std::fs::write(&empty, "[]").unwrap();
        let err = load(&empty).unwrap_err();
        assert!(
            err.contains("summary.json") && err.contains("compares nothing"),
            "{err}"
        );
        let bad = dir.join("bad.json");
        std::fs::write(&bad, "{\"schema\": \"other\"}").unwrap();
        let err = load(&bad).unwrap_err();
        assert!(err.contains("bad.json"), "{err}");
        let err = load(&dir.join("missing.json")).unwrap_err();
        assert!(err.contains("missing.json"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn baselines_that_compare_nothing_or_hold_bad_numbers_are_refused() {
        let good = baseline(vec![rounds("a", &[50.0, 51.0], &[1.0, 1.0])]);
        let text = |b: &Baseline| serde_json::to_string(b).unwrap();
        assert_eq!(parse(&text(&good)).unwrap(), good);
        for (bad, needle) in [
            (baseline(vec![]), "compares nothing"),
            (baseline(vec![rounds("a", &[], &[])]), "no rounds"),
            (baseline(vec![rounds("a", &[50.0, -1.0], &[1.0])]), "-1"),
            (baseline(vec![rounds("a", &[0.0], &[1.0])]), "positive"),
            (
                baseline(vec![rounds("a", &[50.0], &[-3.0])]),
                "stage render",
            ),
            (
                baseline(vec![
                    rounds("a", &[50.0], &[1.0]),
                    rounds("a", &[9.0], &[1.0]),
                ]),
                "appears twice",
            ),
        ] {
            let err = parse(&text(&bad)).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        for (json, needle) in [
            (r#"{"schema": "burn_autogaze.baseline/1"}"#, "missing field"),
            (r#"[{"case": 3}]"#, "summary.json"),
            ("1e999", "JSON"),
            ("", "JSON"),
        ] {
            let err = parse(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
        // No case in common with the run: an error naming both sides.
        let err = common_cases(&good, &["b", "c"]).unwrap_err();
        assert!(
            err.contains("compares nothing") && err.contains("baseline: a"),
            "{err}"
        );
        assert_eq!(common_cases(&good, &["b", "a"]).unwrap(), vec!["a"]);
    }

    #[test]
    fn a_noisy_baseline_cannot_hide_a_regression_and_other_machines_are_named() {
        // Rounds spread 80 %: the band is capped at 25 %, so +40 % shows.
        let base = baseline(vec![rounds("a", &[30.0, 50.0, 70.0], &[10.0, 10.0, 10.0])]);
        let now = [rounds("a", &[68.0, 70.0, 72.0], &[10.0, 10.0, 10.0])];
        let d = &compare(&base, &now)[0];
        assert_eq!((d.p95.band, d.p95.capped), (MAX_BAND, true));
        assert_eq!(d.p95.verdict, Verdict::Worse);
        assert!(cell(&d.p95).contains("capped"), "{}", cell(&d.p95));
        assert!(capped_note(std::slice::from_ref(d), "h").contains("1 case(s) (a)"));
        assert!(capped_note(&[], "h").is_empty());
        assert_eq!(provenance(&base, "m", "a"), None);
        let line = provenance(&base, "other box", "llvmpipe").unwrap();
        assert!(
            line.contains("\"m\"") && line.contains("other box") && line.contains("llvmpipe"),
            "{line}"
        );
    }

    #[test]
    fn a_baseline_saved_before_the_mask_source_rename_still_compares() {
        // The stage that runs the mask source was called `model`.
        let dir = std::env::temp_dir().join(format!("autogaze-gate-old-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = dir.join("old-baseline.json");
        std::fs::write(
            &old,
            r#"{"schema": "burn_autogaze.baseline/1", "revision": "r", "date": "d",
                "machine": "m", "adapter": "a", "rounds": 2,
                "cases": [{"case": "a", "p50_ms": [40.0, 41.0], "p95_ms": [50.0, 51.0],
                           "stage_ms": {"model": [10.0, 10.1]}, "dominant_stage": "model"}]}"#,
        )
        .unwrap();
        let base = load(&old).unwrap();
        assert_eq!(base.cases[0].dominant_stage, Some(Stage::MaskSource));
        let now = [CaseRounds {
            case: "a".into(),
            p50_ms: vec![40.0, 41.0],
            p95_ms: vec![50.0, 51.0],
            stage_ms: [(Stage::MaskSource, vec![14.0, 14.1])]
                .into_iter()
                .collect(),
            dominant_stage: Some(Stage::MaskSource),
        }];
        let d = &compare(&base, &now)[0];
        let (stage, change) = d.dominant.unwrap();
        assert_eq!((stage, change.verdict), (Stage::MaskSource, Verdict::Worse));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
