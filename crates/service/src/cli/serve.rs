//! `dossier serve`: the production server.

use crate::config::ServeArgs;
use crate::server::{Resolved, Server, shutdown_signal};

pub type Args = ServeArgs;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let database_url = args.database_url.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "DATABASE_URL is not set; `serve` needs a PostgreSQL URL (`dossier dev` starts a private one)"
        )
    })?;
    let vault = args.vault()?;
    let upstreams = args.upstreams.settings()?;
    let server = Server::build(
        args,
        Resolved {
            database_url,
            vault,
            upstreams,
            seed_sanctions: None,
        },
    )
    .await?;
    server.run_until_stopped(shutdown_signal()).await
}
