//! Percentiles and the printed tables.

/// The `p`-th percentile (0–100) by the nearest-rank method: the smallest
/// value with at least `p`% of the samples at or below it. `None` when empty.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50 and p99 of `samples`, 0 when there are none.
pub fn p50_p99(samples: &[f64]) -> (f64, f64) {
    (
        percentile(samples, 50.0).unwrap_or(0.0),
        percentile(samples, 99.0).unwrap_or(0.0),
    )
}

/// One row of the comparison: Sockhop's figure, the floor's, and how many
/// times the floor Sockhop's cost is.
pub struct Row {
    pub metric: String,
    pub sockhop: f64,
    pub floor: f64,
    pub unit: &'static str,
    /// Throughputs: higher is better, so the ratio is floor / Sockhop.
    pub higher_is_better: bool,
    pub floor_name: &'static str,
}

impl Row {
    /// Sockhop's cost as a multiple of the floor's (1.0 = at the floor).
    pub fn ratio(&self) -> f64 {
        let (worse, better) = if self.higher_is_better {
            (self.floor, self.sockhop)
        } else {
            (self.sockhop, self.floor)
        };
        if better <= 0.0 {
            f64::INFINITY
        } else {
            worse / better
        }
    }
}

pub fn number(value: f64, unit: &str) -> String {
    let digits = if value.abs() >= 100.0 {
        0
    } else if value.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.digits$}{unit}")
}

pub fn print_rows(rows: &[Row]) {
    let width = rows
        .iter()
        .map(|r| r.metric.len())
        .max()
        .unwrap_or(10)
        .max(6);
    println!(
        "  {:width$}  {:>12}  {:>12}  {:>8}  floor",
        "metric", "sockhop", "floor", "x floor"
    );
    for row in rows {
        println!(
            "  {:width$}  {:>12}  {:>12}  {:>8}  {}",
            row.metric,
            number(row.sockhop, row.unit),
            number(row.floor, row.unit),
            format!("{:.2}", row.ratio()),
            row.floor_name
        );
    }
}

/// A plain table: a header and rows of cells, columns padded.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::from(" ");
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i == 0 {
                out.push_str(&format!(" {cell}{}", " ".repeat(pad)));
            } else {
                out.push_str(&format!("  {}{cell}", " ".repeat(pad)));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50.0));
        assert_eq!(percentile(&samples, 99.0), Some(99.0));
        assert_eq!(percentile(&samples, 100.0), Some(100.0));
        assert_eq!(percentile(&samples, 0.0), Some(1.0));
        // Order does not matter; a small sample's p99 is its maximum.
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(p50_p99(&[]), (0.0, 0.0));
    }

    #[test]
    fn ratios_say_how_many_times_the_floor() {
        let rate = Row {
            metric: "connects/s".into(),
            sockhop: 500.0,
            floor: 2000.0,
            unit: "/s",
            higher_is_better: true,
            floor_name: "bare",
        };
        assert_eq!(rate.ratio(), 4.0);
        let latency = Row {
            sockhop: 30.0,
            floor: 10.0,
            higher_is_better: false,
            ..rate
        };
        assert_eq!(latency.ratio(), 3.0);
    }
}
