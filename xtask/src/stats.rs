//! The statistics the harness's tasks share: the median and the run-to-run
//! spread of a set of measurements.

/// The median (mean of the middle two for an even count; 0 when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Run-to-run spread of `values`: `(max - min) / median` (0 for fewer than
/// two values).
pub fn spread(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min);
    let m = median(values);
    if m > 0.0 { (max - min) / m } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_takes_the_middle_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[3.0, 1.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 1.0, 2.0]), 2.0, "NaN sorts last");
    }

    #[test]
    fn the_spread_is_the_range_over_the_median() {
        assert_eq!(spread(&[5.0]), 0.0);
        assert_eq!(spread(&[50.0, 55.0, 60.0]), 10.0 / 55.0);
        assert_eq!(spread(&[0.0, 0.0, 0.0]), 0.0);
    }
}
