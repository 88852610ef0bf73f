//! How long the tables that grow with every request keep their rows: the flags'
//! values, and the checks `ServeArgs::into_config` makes of them.

use std::time::Duration;

use dossier_store::retention::MIN_UPSTREAM_CALLS_DAYS;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The shortest retention of finished jobs: operators read the last hours of the queue
/// (pickup latency, deliveries; docs/operations.md) from them.
const MIN_FINISHED_JOBS: Duration = Duration::from_secs(60 * 60);

/// A retention flag's value: `forever`, or how long rows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Never purged.
    Forever,
    /// Purged once older than this.
    For(Duration),
}

/// `forever`, or a positive duration (`400d`, `36h`). Zero is refused rather than read
/// as "keep nothing" or "keep everything": either reading would surprise someone.
pub(super) fn parse(s: &str) -> Result<Retention, String> {
    if s.trim().eq_ignore_ascii_case("forever") {
        return Ok(Retention::Forever);
    }
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err(
            "a retention of 0 is refused; write `forever` to keep the rows, or a period like 7d"
                .into(),
        ),
        Ok(d) => Ok(Retention::For(d)),
        Err(e) => Err(format!(
            "{e}; write `forever` or a period like 400d, 7d or 36h"
        )),
    }
}

/// What the periodic purge deletes, and how often it runs (`crate::retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Whole UTC days of `upstream_calls` kept before today; `None`: kept for ever.
    pub upstream_calls_days: Option<u32>,
    /// How long `done` jobs are kept after they finished; `None`: for ever.
    pub finished_jobs: Option<Duration>,
    /// Time between two purges of this pod.
    pub interval: Duration,
}

impl RetentionSettings {
    /// The settings, or every problem with them.
    pub(super) fn resolve(
        upstream_calls: Retention,
        finished_jobs: Retention,
        interval: Duration,
    ) -> Result<RetentionSettings, Vec<String>> {
        let mut problems = Vec::new();
        let upstream_calls_days = match upstream_calls {
            Retention::Forever => None,
            Retention::For(d) => {
                let days = d.as_secs() / DAY.as_secs();
                if d.subsec_nanos() != 0 || d.as_secs() % DAY.as_secs() != 0 {
                    problems.push(format!(
                        "--retain-upstream-calls / DOSSIER_RETAIN_UPSTREAM_CALLS is {}; the audit is purged in whole UTC days, write a number of days like 400d",
                        humantime::format_duration(d)
                    ));
                } else if days < u64::from(MIN_UPSTREAM_CALLS_DAYS) {
                    problems.push(format!(
                        "--retain-upstream-calls / DOSSIER_RETAIN_UPSTREAM_CALLS is {days}d; the audit is kept at least {MIN_UPSTREAM_CALLS_DAYS}d (the database refuses to purge more recent rows)"
                    ));
                }
                Some(u32::try_from(days).unwrap_or(u32::MAX))
            }
        };
        let finished_jobs = match finished_jobs {
            Retention::Forever => None,
            Retention::For(d) => {
                if d < MIN_FINISHED_JOBS {
                    problems.push(format!(
                        "--retain-finished-jobs / DOSSIER_RETAIN_FINISHED_JOBS is {}; it must be at least 1h",
                        humantime::format_duration(d)
                    ));
                }
                Some(d)
            }
        };
        if interval < Duration::from_secs(1) {
            problems.push(format!(
                "--retention-interval / DOSSIER_RETENTION_INTERVAL is {interval:?}; it must be at least 1s"
            ));
        }
        if problems.is_empty() {
            Ok(RetentionSettings {
                upstream_calls_days,
                finished_jobs,
                interval,
            })
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: u64) -> Retention {
        Retention::For(DAY * u32::try_from(n).unwrap())
    }

    #[test]
    fn values_are_forever_or_a_positive_period() {
        assert_eq!(parse("forever"), Ok(Retention::Forever));
        assert_eq!(parse("Forever"), Ok(Retention::Forever));
        assert_eq!(parse("400d"), Ok(days(400)));
        assert_eq!(
            parse("36h"),
            Ok(Retention::For(Duration::from_secs(36 * 3600)))
        );
        assert!(parse("0").unwrap_err().contains("forever"));
        assert!(parse("0d").unwrap_err().contains("forever"));
        assert!(parse("a year").is_err());
    }

    #[test]
    fn the_defaults_pass_and_each_bound_is_named() {
        let ten_minutes = Duration::from_secs(600);
        assert_eq!(
            RetentionSettings::resolve(days(400), days(7), ten_minutes),
            Ok(RetentionSettings {
                upstream_calls_days: Some(400),
                finished_jobs: Some(DAY * 7),
                interval: ten_minutes,
            })
        );
        assert_eq!(
            RetentionSettings::resolve(Retention::Forever, Retention::Forever, ten_minutes)
                .map(|s| (s.upstream_calls_days, s.finished_jobs)),
            Ok((None, None))
        );
        assert!(RetentionSettings::resolve(days(90), days(1), Duration::from_secs(1)).is_ok());
        let problems = RetentionSettings::resolve(
            days(89),
            Retention::For(Duration::from_secs(59 * 60)),
            Duration::from_millis(500),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("at least 90d"), "{problems:?}");
        assert!(problems[1].contains("at least 1h"), "{problems:?}");
        assert!(problems[2].contains("--retention-interval"), "{problems:?}");
        let problems = RetentionSettings::resolve(
            Retention::For(Duration::from_secs(400 * 86400 + 3600)),
            days(7),
            ten_minutes,
        )
        .unwrap_err();
        assert!(problems[0].contains("whole UTC days"), "{problems:?}");
    }
}
