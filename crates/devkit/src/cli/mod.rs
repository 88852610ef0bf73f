//! The developer subcommands of `dossier`, built with the `dev` feature only: each is
//! `cli::<name>::{Args, run}`, gathered in [`Command`] for the binary to flatten into
//! its own command line.

pub mod dev;
pub mod dev_token;
pub mod fleet;
pub mod policy;
pub mod seed;
pub mod simulate;

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
    /// Whether the command prints results for a person (no JSON log lines then, only
    /// warnings), as opposed to running a server that logs.
    pub fn is_tool(&self) -> bool {
        matches!(
            self,
            Command::Seed(_) | Command::Policy(_) | Command::Bench(_) | Command::DevToken(_)
        )
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
