//! `dossier serve`: the production server.

use crate::config::ServeArgs;
use crate::server::{Server, shutdown_signal};

pub type Args = ServeArgs;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let server = Server::build(args.into_config()?).await?;
    server.run_until_stopped(shutdown_signal()).await
}
