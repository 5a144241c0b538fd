//! How the results' figures are put for people: rates per second, rounded values, the ratio
//! of two sides, and the median of several runs (every comparison alternates its sides and
//! reports the medians' ratio).

/// `count / secs`, rounded to 0.1; 0 over an empty window.
pub fn per_sec(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        round_to(count as f64 / secs, 1)
    } else {
        0.0
    }
}

/// `value` rounded to `decimals` places, for figures people read.
pub fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// `a / b` to three places, as every comparison reports its ratios; `None` when `b` is not
/// above 0 (a ratio over nothing).
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| round_to(a / b, 3))
}

/// The median of `values` (the mean of the middle two for an even count); 0 for none.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_figures_are_rounded_and_an_empty_window_has_no_rate() {
        assert_eq!(
            [per_sec(10, 0.0), per_sec(10, 4.0), per_sec(1, 3.0)],
            [0.0, 2.5, 0.3]
        );
        assert_eq!(
            [round_to(1234.5678, 1), round_to(10.0004, 3)],
            [1234.6, 10.0]
        );
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
