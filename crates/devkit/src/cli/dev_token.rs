//! `dossier dev-token`: an underwriter's ID token from the developer tools' identity
//! provider, for ReviewApplication against `dossier dev` (`authorization: Bearer …`).

use std::path::PathBuf;
use std::time::Duration;

use crate::dev_idp::DevIdentityProvider;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The underwriter the token names (its `sub`), e.g. uw.alice@lender.example.
    #[arg(long)]
    pub subject: String,
    /// How long the token is valid.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// The developer provider's key, shared with `dossier dev` [default: the system
    /// temporary directory's dossier-dev-reviewer-key.pem].
    #[arg(long, env = "DOSSIER_DEV_REVIEWER_KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let path = args
        .key_file
        .unwrap_or_else(DevIdentityProvider::default_path);
    let provider = DevIdentityProvider::load_or_create(&path)?;
    println!("{}", provider.token(&args.subject, args.ttl));
    Ok(())
}
