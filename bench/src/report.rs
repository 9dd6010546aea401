//! The table every benchmark prints: our figure, the comparison measured in
//! the same run, and the ratio, with a unit and whether more is better.

use std::time::{Duration, Instant};

/// One line of a report.
pub struct Row {
    /// What was measured (`proto.request.encode`).
    pub name: String,
    /// Our figure.
    pub ours: f64,
    /// What it is compared against, and its figure.
    pub against: Option<(String, f64)>,
    /// The unit of both figures (`ns`, `ops/s`, `MB/s`).
    pub unit: &'static str,
    /// Whether a larger figure is better (rates) or worse (times).
    pub higher_is_better: bool,
}

impl Row {
    /// How many times better ours is than the comparison (>1 is better).
    pub fn ratio(&self) -> Option<f64> {
        let (_, theirs) = self.against.as_ref()?;
        if *theirs == 0.0 || self.ours == 0.0 {
            return None;
        }
        Some(if self.higher_is_better {
            self.ours / theirs
        } else {
            theirs / self.ours
        })
    }
}

/// Prints rows as an aligned table.
pub fn print(title: &str, rows: &[Row]) {
    println!("\n## {title}\n");
    println!(
        "| {:<40} | {:>14} | {:<28} | {:>14} | {:>8} |",
        "bench", "ours", "against", "their figure", "ratio"
    );
    println!(
        "|{:-<42}|{:->16}|{:-<30}|{:->16}|{:->10}|",
        "", "", "", "", ""
    );
    for row in rows {
        let (against, theirs) = match &row.against {
            Some((name, figure)) => (name.as_str(), format!("{} {}", human(*figure), row.unit)),
            None => ("-", "-".to_string()),
        };
        let ratio = row
            .ratio()
            .map(|r| format!("{r:.2}x"))
            .unwrap_or_else(|| "-".into());
        println!(
            "| {:<40} | {:>14} | {:<28} | {:>14} | {:>8} |",
            row.name,
            format!("{} {}", human(row.ours), row.unit),
            against,
            theirs,
            ratio
        );
    }
    println!("\n(ratio > 1 means ours is better)");
}

/// A figure with a k/M/G suffix and three significant digits.
pub fn human(x: f64) -> String {
    let (v, suffix) = if x >= 1e9 {
        (x / 1e9, "G")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e4 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    if v >= 100.0 {
        format!("{v:.0}{suffix}")
    } else if v >= 10.0 {
        format!("{v:.1}{suffix}")
    } else {
        format!("{v:.2}{suffix}")
    }
}

/// Runs `f` `iterations` times and returns the mean time per call in ns.
pub fn ns_per_iter(iterations: u64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    elapsed_ns(start.elapsed()) / iterations as f64
}

/// The median of `repeats` measurements.
pub fn median(repeats: usize, mut measure: impl FnMut() -> f64) -> f64 {
    let mut samples: Vec<f64> = (0..repeats).map(|_| measure()).collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn elapsed_ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// Runs a Python snippet that prints one number, and returns it.
pub fn python_figure(script: &str) -> Option<f64> {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "python3 failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}
