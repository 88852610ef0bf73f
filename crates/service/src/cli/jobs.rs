//! `dossier jobs`: look at the work queue and re-run dead letters.

use clap::{Subcommand, ValueEnum};

use crate::config::DatabaseArgs;
use dossier_store::jobs::{JobState, Retried};
use dossier_store::{Store, Vault};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: JobsCommand,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// Which jobs `dossier jobs list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateFilter {
    Queued,
    Running,
    Done,
    Dead,
    All,
}

impl StateFilter {
    fn state(self) -> Option<JobState> {
        match self {
            StateFilter::Queued => Some(JobState::Queued),
            StateFilter::Running => Some(JobState::Running),
            StateFilter::Done => Some(JobState::Done),
            StateFilter::Dead => Some(JobState::Dead),
            StateFilter::All => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first (dead letters by default).
    List {
        #[arg(long, value_enum, default_value_t = StateFilter::Dead)]
        state: StateFilter,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Queue a dead job again with a fresh set of attempts. Safe to repeat: an
    /// evaluation decides an application once, and a delivery carries its decision's
    /// idempotency key.
    Retry {
        /// Job ids (`dossier jobs list`, or reporting.dead_letters).
        #[arg(required = true)]
        ids: Vec<i64>,
    },
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let pool = dossier_store::connect(&args.database.url("jobs")?, 2).await?;
    // Jobs hold no sealed column: no encryption key needed.
    let store = Store::new(pool, Vault::ephemeral());
    match args.command {
        JobsCommand::List { state, limit } => {
            let jobs = store.list_jobs(state.state(), limit).await?;
            if jobs.is_empty() {
                match state.state() {
                    Some(s) => println!("no {} jobs", s.as_str()),
                    None => println!("no jobs"),
                }
            }
            for j in jobs {
                println!(
                    "{:>8}  {:<8} {:<7} attempts {}/{}  application {}  created {}{}",
                    j.id,
                    j.kind,
                    j.state,
                    j.attempts,
                    j.max_attempts,
                    j.application_id
                        .map_or_else(|| "-".to_owned(), |a| a.to_string()),
                    j.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    j.last_error
                        .map(|e| format!("\n          last error: {e}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        JobsCommand::Retry { ids } => {
            let mut refused = Vec::new();
            for id in ids {
                match store.retry_job(id).await? {
                    Retried::Requeued => println!("job {id}: queued again"),
                    Retried::NotFound => refused.push(format!("job {id} does not exist")),
                    Retried::NotDead => refused.push(format!(
                        "job {id} is not dead (only dead jobs are re-run; see `dossier jobs list --state all`)"
                    )),
                }
            }
            if refused.is_empty() {
                Ok(())
            } else {
                anyhow::bail!(refused.join("; "))
            }
        }
    }
}
