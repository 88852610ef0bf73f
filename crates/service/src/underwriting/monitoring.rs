//! Ongoing sanctions monitoring: a newly loaded SDN list version is screened against
//! every applicant and contractor of the approved applications not yet funded (and,
//! with `--sanctions-monitor-funded-days`, funded recently), once for the fleet: the
//! list's load queues one `monitor_sanctions` job, and the job claims the version in
//! `sanctions_monitoring_runs` before it screens. Every candidate the approval's
//! screening did not already show becomes an alert, delivered to Rails.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dossier_sanctions::Subject;
use dossier_store::monitoring::NewAlert;

use super::Underwriter;

/// What one monitoring job did.
#[derive(Debug, Clone, PartialEq)]
pub enum Monitored {
    /// A newer list was loaded since: its own job screens the applications against it.
    Superseded { list_id: i64, active: i64 },
    /// Another job screened (or is screening) this list version.
    AlreadyScreened { list_id: i64 },
    Screened {
        list_id: i64,
        applications: usize,
        names: usize,
        alerts: usize,
        took: Duration,
    },
}

impl Underwriter {
    /// The `monitor_sanctions` job `job_id`, queued with list version `list_id`.
    pub async fn monitor_sanctions(&self, list_id: i64, job_id: i64) -> Result<Monitored, String> {
        // Screen with the version that was loaded, not whatever this pod held before.
        self.sanctions
            .refresh_from(&self.store)
            .await
            .map_err(|e| format!("reading the sanctions list failed: {e}"))?;
        match self.sanctions.version() {
            Some(active) if active == list_id => {}
            Some(active) if active > list_id => {
                return Ok(Monitored::Superseded { list_id, active });
            }
            other => {
                return Err(format!(
                    "this pod screens with sanctions list {other:?}, not the loaded version {list_id}; retried once it has read the new list"
                ));
            }
        }
        let store_error = |e: dossier_store::StoreError| e.to_string();
        if !self
            .store
            .claim_monitoring_run(list_id, job_id)
            .await
            .map_err(store_error)?
        {
            return Ok(Monitored::AlreadyScreened { list_id });
        }
        let started = Instant::now();
        let names = self
            .store
            .monitored_names(self.monitor_funded_days)
            .await
            .map_err(store_error)?;
        let applications = names
            .iter()
            .map(|n| n.application_id)
            .collect::<HashSet<_>>()
            .len();
        let count = names.len();
        // Screening is CPU work (tens of thousands of names): off the async workers.
        let (sanctions, policy) = (self.sanctions.clone(), Arc::clone(&self.policy));
        let alerts = tokio::task::spawn_blocking(move || {
            let mut alerts = Vec::new();
            for n in names {
                let rules = &policy.for_state(&n.state).sanctions;
                let subject = if n.company {
                    Subject::Company
                } else {
                    Subject::Person
                };
                for hit in sanctions.screen(&n.name, subject, rules.review_threshold) {
                    if n.known_entries.contains(&hit.entry_id) {
                        continue; // the approval already showed it to an underwriter
                    }
                    alerts.push(NewAlert {
                        application_id: n.application_id,
                        subject: n.subject.clone(),
                        entry_id: hit.entry_id,
                        list_name: hit.list_name,
                        matched_name: hit.matched_name,
                        program: hit.program,
                        score: hit.score,
                        severity: if hit.score >= rules.match_threshold {
                            "match"
                        } else {
                            "near_match"
                        },
                    });
                }
            }
            alerts
        })
        .await
        .map_err(|e| format!("the screening task failed: {e}"))?;
        let raised = self
            .store
            .raise_alerts(list_id, &alerts)
            .await
            .map_err(store_error)?;
        let clamp = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        self.store
            .finish_monitoring_run(
                list_id,
                clamp(applications),
                clamp(count),
                clamp(raised.len()),
            )
            .await
            .map_err(store_error)?;
        metrics::counter!("dossier_sanctions_alerts_total").increment(raised.len() as u64);
        let took = started.elapsed();
        tracing::info!(
            list_id,
            applications,
            names = count,
            alerts = raised.len(),
            took_ms = took.as_millis() as u64,
            "sanctions monitoring screened the approved applications against the new list"
        );
        Ok(Monitored::Screened {
            list_id,
            applications,
            names: count,
            alerts: raised.len(),
            took,
        })
    }
}
