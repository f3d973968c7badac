//! The probe's arguments: `--name value` pairs, each with a default small enough for TCG.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Args {
    /// Containers that stay the whole run.
    pub stable: usize,
    /// Containers made (and later destroyed) a minute while the churn lasts.
    pub rate_per_min: f64,
    /// How long containers are made, in seconds.
    pub duration_s: f64,
    /// When into the churn RSS is taken as the warmed-up baseline.
    pub warmup_s: f64,
    /// How long after the last churned container went the final figures are taken.
    pub settle_s: f64,
    /// A churned container lives between these (uniformly), several sweeps.
    pub min_life_s: f64,
    pub max_life_s: f64,
    /// The exporter's `--housekeeping.interval`.
    pub interval: String,
    pub exporter: PathBuf,
    /// More flags for the exporter (`--exporter-flag --web.ui-history=0`, repeatable).
    pub exporter_flags: Vec<String>,
    pub seed: u64,
}

pub const USAGE: &str = "usage: vm_churn [--stable N] [--rate PER_MIN] [--duration S] \
[--warmup S] [--settle S] [--min-life S] [--max-life S] [--interval 1s] [--exporter PATH] \
[--exporter-flag FLAG]... [--seed N]";

impl Args {
    pub fn parse(args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut a = Args {
            stable: 50,
            rate_per_min: 300.0,
            duration_s: 60.0,
            warmup_s: 20.0,
            settle_s: 10.0,
            min_life_s: 4.0,
            max_life_s: 20.0,
            interval: "1s".into(),
            exporter: default_exporter(),
            exporter_flags: Vec::new(),
            seed: 0,
        };
        let mut args = args;
        while let Some(flag) = args.next() {
            let v = args
                .next()
                .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))?;
            let bad = |e: &dyn std::fmt::Display| format!("{flag} {v}: {e}");
            match flag.as_str() {
                "--stable" => a.stable = v.parse().map_err(|e| bad(&e))?,
                "--rate" => a.rate_per_min = v.parse().map_err(|e| bad(&e))?,
                "--duration" => a.duration_s = v.parse().map_err(|e| bad(&e))?,
                "--warmup" => a.warmup_s = v.parse().map_err(|e| bad(&e))?,
                "--settle" => a.settle_s = v.parse().map_err(|e| bad(&e))?,
                "--min-life" => a.min_life_s = v.parse().map_err(|e| bad(&e))?,
                "--max-life" => a.max_life_s = v.parse().map_err(|e| bad(&e))?,
                "--interval" => a.interval = v,
                "--exporter" => a.exporter = PathBuf::from(v),
                "--exporter-flag" => a.exporter_flags.push(v),
                "--seed" => a.seed = v.parse().map_err(|e| bad(&e))?,
                _ => return Err(format!("unknown argument {flag:?}; {USAGE}")),
            }
        }
        let figures = [
            a.rate_per_min,
            a.duration_s,
            a.warmup_s,
            a.settle_s,
            a.min_life_s,
            a.max_life_s,
        ];
        if figures.iter().any(|f| !f.is_finite() || *f < 0.0) || a.min_life_s > a.max_life_s {
            return Err(format!(
                "figures must be finite, not negative, min-life <= max-life; {USAGE}"
            ));
        }
        Ok(a)
    }
}

/// The release build's name (`benches/soak/churn-v2.sh`), else the test suite's build.
fn default_exporter() -> PathBuf {
    ["/extra/collector-exporter", "/extra/exporter"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("/extra/collector-exporter"))
}
