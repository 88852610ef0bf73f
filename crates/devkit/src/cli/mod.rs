//! The developer subcommands of `dossier`, built with the `dev` feature only: each is
//! `cli::<name>::{Args, run}`, gathered in [`Command`] for the binary to flatten into
//! its own command line.

pub mod dev;
pub mod dev_token;
pub mod fleet;
pub mod policy;
pub mod seed;
pub mod simulate;

use dossier_service::telemetry::{LogTo, Logging};

// Not Debug: `dev` holds secrets (ServeArgs).
#[derive(clap::Subcommand)]
pub enum Command {
    /// Run everything locally: a private PostgreSQL (unless DATABASE_URL is set), the
    /// simulators and the server on 127.0.0.1:50051.
    Dev(Box<dev::Args>),
    /// Print an underwriter's ID token from the developer identity provider that
    /// `dossier dev` trusts (for ReviewApplication's `authorization: Bearer`).
    DevToken(dev_token::Args),
    /// Run N replicas on loopback with one PostgreSQL and the simulators (a local
    /// Kubernetes Deployment, for drills and benches).
    Fleet(fleet::Args),
    /// Fill DATABASE_URL with N simulated, underwritten applications (docs/reporting.md).
    Seed(seed::Args),
    /// Check an underwriting policy file.
    Policy(policy::Args),
    /// Serve every upstream simulator on loopback until stopped.
    Simulate(simulate::Args),
    /// Measure the upstream protections against the simulators (docs/benchmarks.md).
    Bench(crate::bench::BenchArgs),
}

impl Command {
    /// How the command logs. The servers (`dev`, `fleet`) log on stdout, where a log
    /// collector reads them; the commands that print results log on stderr, so that their
    /// stdout is the results alone: the tools only their warnings, `simulate` (whose
    /// stdout is its `name url` lines, for a script) what it does.
    pub fn logging(&self) -> Logging {
        match self {
            Command::Dev(_) | Command::Fleet(_) => Logging::SERVER,
            Command::Simulate(_) => Logging {
                to: LogTo::Stderr,
                ..Logging::SERVER
            },
            Command::Seed(_) | Command::Policy(_) | Command::Bench(_) | Command::DevToken(_) => {
                Logging::TOOL
            }
        }
    }

    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Dev(args) => dev::run(*args).await,
            Command::DevToken(args) => dev_token::run(args).await,
            Command::Fleet(args) => fleet::run(args).await,
            Command::Seed(args) => seed::run(args).await,
            Command::Policy(args) => policy::run(args).await,
            Command::Simulate(args) => simulate::run(args).await,
            Command::Bench(args) => crate::bench::run(args).await,
        }
    }
}
