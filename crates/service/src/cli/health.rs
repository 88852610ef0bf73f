//! `dossier health`: ask a running Dossier's grpc.health.v1 whether it serves.
//!
//! For `helm test`, container health checks and operators: the production image has no
//! shell and no grpcurl, so the binary itself is the probe. Exit status 0 when the
//! service answers SERVING, 1 for anything else (NOT_SERVING, unknown service, no
//! answer within the timeout), with the reason on stderr.

use std::time::Duration;

use anyhow::Context as _;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Dossier's gRPC address (or its plaintext health address).
    #[arg(long, env = "DOSSIER_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// The health service to ask: "" (the whole server), dossier.v1.UnderwritingService
    /// or dossier.v1.DataService.
    #[arg(long, default_value = "")]
    pub service: String,
    /// Longest the connection and the answer may take together.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let status = tokio::time::timeout(args.timeout, check(&args.addr, &args.service))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "Dossier at {} did not answer its health check within {:?}",
                args.addr,
                args.timeout
            )
        })??;
    let shown = if args.service.is_empty() {
        "the server".to_owned()
    } else {
        args.service.clone()
    };
    match status {
        ServingStatus::Serving => {
            println!("{shown} at {} is SERVING", args.addr);
            Ok(())
        }
        other => anyhow::bail!(
            "{shown} at {} is {}: it is starting, stopping, or cannot reach its database (see its logs)",
            args.addr,
            other.as_str_name()
        ),
    }
}

async fn check(addr: &str, service: &str) -> anyhow::Result<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(addr.to_owned())
        .with_context(|| format!("{addr:?} is not a URL like http://127.0.0.1:50051"))?
        .connect()
        .await
        .with_context(|| format!("cannot connect to Dossier at {addr}; is it running?"))?;
    let mut client = HealthClient::new(channel);
    let answer = client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await;
    match answer {
        Ok(r) => Ok(ServingStatus::try_from(r.into_inner().status).unwrap_or_default()),
        Err(s) if s.code() == tonic::Code::NotFound => {
            anyhow::bail!("Dossier at {addr} serves no health service named {service:?}")
        }
        Err(s) => Err(anyhow::anyhow!(
            "health check of Dossier at {addr} failed: {} ({})",
            s.message(),
            s.code()
        )),
    }
}
