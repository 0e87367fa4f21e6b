//! The regression gate's paired mode (`bevy-perf-matrix --against-bin
//! OLD_VIEWER`): each round runs every case on the old and on the new viewer
//! back to back (which goes first alternates), and a case is judged on the
//! per-round ratios new / old. A machine that drifts between runs (a busy
//! neighbour, thermal state, the 2026-11-23 false alarm) moves both runs of
//! a pair alike, so the drift cancels in the ratio; the ratios' own spread
//! is the noise band ([`gate::band`]: at least `PAIRED_MIN_BAND`, at most
//! `MAX_BAND`).

use burn_autogaze::perf::PerfSummary;
use burn_autogaze::timing::Stage;

use crate::gate::{self, CaseDelta, CaseRounds, Change};
use crate::stats::{median, spread};

/// Whether the old viewer runs first in `round` for the case at `index`
/// (alternating by round and by case, so neither side always runs on a
/// machine the other just warmed).
pub fn old_first(round: usize, index: usize) -> bool {
    (round + index).is_multiple_of(2)
}

/// The rounds of `case` in which both viewers produced a summary, as two
/// round-aligned sets (old, new); none when no round has both.
pub fn pair(
    case: &str,
    old: &[Option<PerfSummary>],
    new: &[Option<&PerfSummary>],
) -> Option<(CaseRounds, CaseRounds)> {
    let (o, n): (Vec<&PerfSummary>, Vec<&PerfSummary>) = old
        .iter()
        .zip(new)
        .filter_map(|(o, n)| Some((o.as_ref()?, (*n)?)))
        .unzip();
    if o.is_empty() {
        return None;
    }
    fn dominant<'a>(s: &[&'a PerfSummary]) -> Option<&'a PerfSummary> {
        s.get(s.len() / 2).copied()
    }
    Some((
        CaseRounds::new(case, &o, dominant(&o)),
        CaseRounds::new(case, &n, dominant(&n)),
    ))
}

/// The narrowest band a paired change is judged against (10 %): a few
/// rounds' ratios understate their own noise on a shared machine (the same
/// viewer against itself, 3 rounds on the 2-core development machine: its
/// dominant stage +6.5 % against a spread of 3 %, 2026-12-07), while the
/// regressions the gate is for (a slowed build, a lost fast path) move
/// frame times by far more.
pub const PAIRED_MIN_BAND: f64 = 0.10;

/// Judges the per-round ratios `new[i] / old[i]`: their median against
/// their spread (at least [`PAIRED_MIN_BAND`]).
pub fn judge(old: &[f64], new: &[f64]) -> Option<Change> {
    let ratios: Vec<f64> = old
        .iter()
        .zip(new)
        .filter(|(o, n)| **o > 0.0 && o.is_finite() && n.is_finite())
        .map(|(o, n)| n / o)
        .collect();
    if ratios.is_empty() {
        return None;
    }
    let delta = median(&ratios) - 1.0;
    let (band, capped) = gate::band(spread(&ratios).max(PAIRED_MIN_BAND));
    Some(Change {
        base_ms: median(old),
        now_ms: median(new),
        delta,
        band,
        verdict: gate::verdict(delta, band),
        capped,
    })
}

/// Every paired case: p50, p95 and the new side's dominant stage.
pub fn compare(pairs: &[(CaseRounds, CaseRounds)]) -> Vec<CaseDelta> {
    pairs
        .iter()
        .filter_map(|(old, new)| {
            let dominant = new.dominant_stage.and_then(|stage: Stage| {
                let change = judge(old.stage_ms.get(&stage)?, new.stage_ms.get(&stage)?)?;
                Some((stage, change))
            });
            Some(CaseDelta {
                case: new.case.clone(),
                p50: judge(&old.p50_ms, &new.p50_ms)?,
                p95: judge(&old.p95_ms, &new.p95_ms)?,
                dominant,
            })
        })
        .collect()
}

/// The report's section: one row a case.
pub fn report(old_bin: &str, deltas: &[CaseDelta], rounds: usize) -> String {
    let mut md = format!(
        "\n## Paired against {old_bin}\n\nEach of {rounds} round(s) ran both viewers back to back; a change is the median of the per-round ratios new / old, judged against their spread (at least {:.0} %, at most {:.0} %).\n\n| case | p50 | p95 | dominant stage |\n|---|---|---|---|\n",
        100.0 * PAIRED_MIN_BAND,
        100.0 * gate::MAX_BAND
    );
    for d in deltas {
        let dominant = d
            .dominant
            .map(|(s, c)| format!("{} {}", s.as_str(), gate::cell(&c)))
            .unwrap_or_else(|| "-".into());
        md += &format!(
            "| {} | {} | {} | {dominant} |\n",
            d.case,
            gate::cell(&d.p50),
            gate::cell(&d.p95)
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Verdict;

    fn rounds(p95: &[f64]) -> CaseRounds {
        CaseRounds {
            case: "a".into(),
            p50_ms: p95.iter().map(|v| v * 0.8).collect(),
            p95_ms: p95.to_vec(),
            stage_ms: [(Stage::Render, p95.iter().map(|v| v * 0.5).collect())]
                .into_iter()
                .collect(),
            dominant_stage: Some(Stage::Render),
        }
    }

    #[test]
    fn drift_between_rounds_cancels_in_the_paired_ratio() {
        // The machine slows 40 % over the rounds; both sides alike.
        let old = rounds(&[10.0, 12.0, 14.0]);
        let new = rounds(&[10.1, 12.1, 14.0]);
        let d = &compare(&[(old, new)])[0];
        assert_eq!(d.p95.verdict, Verdict::Noise, "{d:?}");
        assert!(!d.regressed());
        // Unpaired, the same spread would be 40 %: capped at 25 %.
        let unpaired = gate::judge(&[10.0, 12.0, 14.0], &[10.1, 12.1, 14.0]).unwrap();
        assert!(unpaired.capped && unpaired.band == gate::MAX_BAND);
    }

    #[test]
    fn a_slower_new_side_is_a_regression_in_every_round() {
        let old = rounds(&[10.0, 12.0, 14.0]);
        let new = rounds(&[13.0, 15.6, 18.2]);
        let d = &compare(&[(old, new)])[0];
        assert!((d.p95.delta - 0.3).abs() < 1e-9, "{d:?}");
        assert_eq!(d.p95.verdict, Verdict::Worse);
        assert_eq!(d.dominant.unwrap().1.verdict, Verdict::Worse);
        assert!(d.regressed());
        let md = report("old-viewer", std::slice::from_ref(d), 3);
        assert!(
            md.contains("old-viewer") && md.contains("🔴 +30.0%"),
            "{md}"
        );
        // The order alternates by round and by case.
        assert!(old_first(0, 0) && !old_first(1, 0) && !old_first(0, 1));
        assert!(judge(&[0.0], &[1.0]).is_none());
    }
}
