//! `dossier dev`: everything on one machine in one command — a private PostgreSQL
//! (unless DATABASE_URL is set), the simulators, and the server.

use std::net::SocketAddr;

use crate::devdb::PrivatePostgres;
use crate::sim::{SimConfig, Simulators, Upstream};
use dossier_service::config::{Secret, ServeArgs};
use dossier_service::server::{Server, shutdown_signal};
use dossier_store::Vault;

use crate::dev_idp::DevIdentityProvider;

pub type Args = ServeArgs;

pub async fn run(mut args: Args) -> anyhow::Result<()> {
    let mut private_pg = None;
    let database_url = match args.database.database_url.clone() {
        Some(url) => url,
        None => {
            let pg = tokio::task::spawn_blocking(PrivatePostgres::start).await??;
            tracing::info!(
                port = pg.port(),
                "started a private PostgreSQL (deleted on exit)"
            );
            let url = pg.url();
            private_pg = Some(pg);
            url
        }
    };
    args.database.database_url = Some(database_url.clone());
    args.migrate = true;
    // Plaintext on loopback unless certificates are given: the developer's machine.
    let s = &mut args.security;
    if s.tls_cert_file.is_none() && s.tls_key_file.is_none() && s.tls_client_ca_file.is_none() {
        s.allow_unauthenticated = true;
    }
    args.grpc_addr
        .get_or_insert(SocketAddr::from(([127, 0, 0, 1], 50051)));
    // A free loopback port: two dev runs never collide, and metrics stay local.
    args.admin_addr
        .get_or_insert(SocketAddr::from(([127, 0, 0, 1], 0)));
    let sims = Simulators::start(SimConfig::default()).await?;
    let u = &mut args.upstreams;
    u.rails_url
        .get_or_insert_with(|| sims.base_url(Upstream::Rails));
    if !u.rails_token.is_set() {
        u.rails_token = Secret::value("DOSSIER_RAILS_TOKEN", sims.rails_token());
    }
    u.property_records_url
        .get_or_insert_with(|| sims.base_url(Upstream::PropertyRecords));
    u.valuation_url
        .get_or_insert_with(|| sims.base_url(Upstream::Valuation));
    u.identity_url
        .get_or_insert_with(|| sims.base_url(Upstream::Identity));
    u.licensing_url
        .get_or_insert_with(|| sims.base_url(Upstream::Licensing));
    u.registry_url
        .get_or_insert_with(|| sims.base_url(Upstream::Registry));
    u.alt_valuation_url
        .get_or_insert_with(|| sims.base_url(Upstream::AltValuation));
    u.alt_identity_url
        .get_or_insert_with(|| sims.base_url(Upstream::AltIdentity));
    let mut config = match args.keys.encryption_keys.is_set() {
        true => args.into_config()?,
        false => {
            tracing::warn!(
                "no DOSSIER_ENCRYPTION_KEYS: using throw-away keys, so SSNs stored by this run cannot be read by another"
            );
            args.into_config_with(Vault::ephemeral(), None)?
        }
    };
    config.seed_sanctions = Some(crate::sample_sanctions::seed());
    let key_file = std::env::var_os("DOSSIER_DEV_REVIEWER_KEY_FILE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(DevIdentityProvider::default_path);
    if config.security.reviewers.is_none() {
        let provider = DevIdentityProvider::load_or_create(&key_file)?;
        config.security.reviewers = Some(std::sync::Arc::new(provider.verifier()));
    }
    let server = Server::build(config).await?;
    let addr = server.local_addr();
    let admin = server.admin_addr();
    eprintln!(
        "\nDossier dev is up on {addr}.\n\
         \n  Database:   {}\
         \n  Try:        cargo run --release -- evaluate --file examples/approve.json --addr http://{addr}\
         \n  grpcurl:    grpcurl -plaintext {addr} list\
         \n  Review as:  cargo run --release -- dev-token --subject uw.alice@lender.example  (authorization: Bearer <token>)\
         \n  Metrics:    curl http://{admin}/metrics\
         \n  Stop:       Ctrl-C (stops the simulators{} too)\n",
        dossier_store::redact_url(&database_url),
        if private_pg.is_some() {
            " and the private PostgreSQL"
        } else {
            ""
        },
    );
    let result = server.run_until_stopped(shutdown_signal()).await;
    sims.shutdown().await;
    if let Some(mut pg) = private_pg {
        tokio::task::spawn_blocking(move || pg.stop()).await?;
    }
    result
}
