//! A local fleet: N `dossier serve` processes on loopback sharing one PostgreSQL and one
//! set of simulators, which is what a Kubernetes Deployment of N pods behind a Service
//! is, on one machine. `dossier fleet`, the fault tests and the fleet bench use it.
//!
//! Replicas are real processes of the same binary: SIGKILL on one is what a spot
//! reclaim does to a pod, SIGTERM is what a rolling deploy does.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};

use crate::sim::{Simulators, Upstream};

/// How long a replica may take to report SERVING after it is started.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// After SIGTERM, how long to wait for a replica before killing it.
const EXIT_WITHIN: Duration = Duration::from_secs(60);

/// What every replica runs with.
#[derive(Clone)]
pub struct FleetSpec {
    /// The `dossier` binary the replicas run.
    pub binary: PathBuf,
    pub replicas: usize,
    /// The gRPC port of replica `i` is `base_port + i`; 0 picks free ports.
    pub base_port: u16,
    /// Environment every replica gets (upstream URLs, keys, tuning), beside
    /// DOSSIER_GRPC_ADDR and DOSSIER_ADMIN_ADDR, which are per replica.
    pub env: Vec<(String, String)>,
    /// A log file per replica in this directory; None: this process's stdout/stderr.
    pub log_dir: Option<PathBuf>,
}

impl FleetSpec {
    /// Environment pointing replicas at `database_url` and the simulators, with a vault
    /// they share (fresh throw-away keys: what one replica seals, all can read).
    pub fn local_env(database_url: &str, sims: &Simulators) -> Vec<(String, String)> {
        let (keys, lookup) = dossier_store::Vault::throwaway_config();
        let mut env = vec![
            ("DATABASE_URL".to_owned(), database_url.to_owned()),
            ("DOSSIER_ENCRYPTION_KEYS".to_owned(), keys),
            ("DOSSIER_LOOKUP_KEY".to_owned(), lookup),
            (
                "DOSSIER_RAILS_TOKEN".to_owned(),
                sims.rails_token().to_owned(),
            ),
        ];
        for upstream in Upstream::HTTP {
            env.push((
                format!("DOSSIER_{}_URL", upstream.as_str().to_uppercase()),
                sims.base_url(upstream),
            ));
        }
        env
    }
}

/// Makes a database ready for replicas, as a deploy's migration job would: migrates it
/// and loads the built-in sample sanctions list if none is loaded (replicas start
/// without --migrate, as in production).
pub async fn prepare_database(database_url: &str) -> anyhow::Result<()> {
    dossier_store::migrate(database_url).await?;
    let pool = dossier_store::connect(database_url, 2).await?;
    // Loading the list needs no encryption key: it holds no applicant data.
    let store = dossier_store::Store::new(pool, dossier_store::Vault::ephemeral());
    let loaded = crate::sample_sanctions::load_if_none(&store).await;
    store.pool.close().await;
    loaded?;
    Ok(())
}

/// [`prepare_database`] for replicas of another release (an upgrade rehearsal): its
/// own `dossier migrate` gives the schema it expects. The sample sanctions list is
/// loaded by this release's code, which may not know an older schema's tables: if that
/// fails the replicas start without a list (sanctions checks REFER), as a warning says.
pub async fn prepare_database_with(binary: &Path, database_url: &str) -> anyhow::Result<()> {
    let status = Command::new(binary)
        .arg("migrate")
        .env("DATABASE_URL", database_url)
        .status()
        .await
        .with_context(|| format!("cannot run {} migrate", binary.display()))?;
    anyhow::ensure!(
        status.success(),
        "{} migrate failed ({status})",
        binary.display()
    );
    let pool = dossier_store::connect(database_url, 2).await?;
    let store = dossier_store::Store::new(pool, dossier_store::Vault::ephemeral());
    if let Err(e) = crate::sample_sanctions::load_if_none(&store).await {
        tracing::warn!(
            error = format!("{e:#}"),
            "could not load the sample sanctions list on this schema; sanctions checks will REFER"
        );
    }
    store.pool.close().await;
    Ok(())
}

/// Where one replica runs, for [`Fleet::start_placed`]. `Placement::default()` is what
/// [`Fleet::start`] gives every replica: this host's loopback and the spec's environment.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    /// Run inside this network namespace (`ip netns exec`; see [`crate::netns`]): a host
    /// of its own, reached over its links.
    pub netns: Option<String>,
    /// The address its gRPC and admin ports listen on (and clients use); loopback when
    /// None.
    pub ip: Option<IpAddr>,
    /// Variables for this replica only, replacing the spec's of the same name (e.g. a
    /// DATABASE_URL through the namespace's link).
    pub env: Vec<(String, String)>,
}

/// One replica: its addresses and, while it runs, its process.
pub struct Replica {
    pub name: String,
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    placement: Placement,
    child: Option<Child>,
}

impl Replica {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }
}

pub struct Fleet {
    spec: FleetSpec,
    replicas: Vec<Replica>,
}

impl Fleet {
    /// Starts every replica and waits until each reports SERVING. The database must be
    /// migrated already (replicas start without --migrate, as in production).
    pub async fn start(spec: FleetSpec) -> anyhow::Result<Fleet> {
        Fleet::start_placed(spec, Vec::new()).await
    }

    /// [`Fleet::start`], with replica `i` placed by `placements[i]` (replicas beyond the
    /// list get the default placement).
    pub async fn start_placed(
        spec: FleetSpec,
        mut placements: Vec<Placement>,
    ) -> anyhow::Result<Fleet> {
        placements.resize_with(spec.replicas.max(placements.len()), Placement::default);
        if let Some(dir) = &spec.log_dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create log directory {}", dir.display()))?;
        }
        let mut replicas = Vec::new();
        for (i, placement) in placements.into_iter().enumerate().take(spec.replicas) {
            let grpc_port = if spec.base_port == 0 {
                free_port()?
            } else {
                spec.base_port
                    .checked_add(u16::try_from(i)?)
                    .context("--base-port + replicas exceeds 65535")?
            };
            // A port free here is free in a new namespace too, which has nothing bound.
            let ip = placement.ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
            replicas.push(Replica {
                name: format!("dossier-{i}"),
                grpc: SocketAddr::new(ip, grpc_port),
                admin: SocketAddr::new(ip, free_port()?),
                placement,
                child: None,
            });
        }
        let mut fleet = Fleet { spec, replicas };
        for i in 0..fleet.replicas.len() {
            fleet.start_replica(i).await?;
        }
        Ok(fleet)
    }

    pub fn replicas(&self) -> &[Replica] {
        &self.replicas
    }

    /// gRPC endpoints of every replica, running or not (clients keep them all, as they
    /// would a Service's endpoints).
    pub fn endpoints(&self) -> Vec<String> {
        self.replicas.iter().map(Replica::endpoint).collect()
    }

    /// Starts replica `i` (again) on its addresses and waits until it is SERVING.
    pub async fn start_replica(&mut self, i: usize) -> anyhow::Result<()> {
        let spec = &self.spec;
        let r = &mut self.replicas[i];
        anyhow::ensure!(r.child.is_none(), "{} is already running", r.name);
        let mut cmd = match &r.placement.netns {
            // `ip netns exec` execs the binary: the child's pid is the replica's.
            Some(netns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", netns]).arg(&spec.binary);
                cmd
            }
            None => Command::new(&spec.binary),
        };
        cmd.arg("serve")
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .envs(r.placement.env.iter().map(|(k, v)| (k, v)))
            .env("DOSSIER_GRPC_ADDR", r.grpc.to_string())
            .env("DOSSIER_ADMIN_ADDR", r.admin.to_string())
            // Worker names (jobs.locked_by) start with it, as with a pod's HOSTNAME.
            .env("HOSTNAME", &r.name)
            // A loopback fleet of the developer tools: plaintext, like `dossier dev`.
            .env("DOSSIER_ALLOW_UNAUTHENTICATED", "true")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(dir) = &spec.log_dir {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{}.log", r.name)))?;
            cmd.stdout(log.try_clone()?).stderr(log);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", spec.binary.display()))?;
        r.child = Some(child);
        let (name, endpoint) = (r.name.clone(), r.endpoint());
        let give_up = tokio::time::Instant::now() + READY_WITHIN;
        loop {
            if serving(&endpoint).await {
                return Ok(());
            }
            let r = &mut self.replicas[i];
            if let Some(status) = r.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                r.child = None;
                anyhow::bail!(
                    "{name} exited with {status} before serving{}",
                    self.log_hint(i)
                );
            }
            if tokio::time::Instant::now() > give_up {
                anyhow::bail!(
                    "{name} did not report SERVING within {READY_WITHIN:?}{}",
                    self.log_hint(i)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_hint(&self, i: usize) -> String {
        match &self.spec.log_dir {
            Some(dir) => format!(
                "; see {}",
                dir.join(format!("{}.log", self.replicas[i].name)).display()
            ),
            None => String::new(),
        }
    }

    /// SIGKILL: the replica vanishes mid-work, as on a spot reclaim.
    pub async fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.replicas[i].child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// SIGTERM and wait: the replica drains (NOT_SERVING, GOAWAY, in-flight calls
    /// finish, jobs handed back) and exits, as in a rolling deploy.
    pub async fn terminate(&mut self, i: usize) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.replicas[i].child.take() else {
            anyhow::bail!("{} is not running", self.replicas[i].name);
        };
        sigterm(&child)?;
        match tokio::time::timeout(EXIT_WITHIN, child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                child.kill().await?;
                anyhow::bail!(
                    "{} did not exit within {EXIT_WITHIN:?} of SIGTERM; killed",
                    self.replicas[i].name
                )
            }
        }
    }

    /// Waits until some running replica exits by itself; returns its index and status.
    pub async fn next_exit(&mut self) -> (usize, std::io::Result<ExitStatus>) {
        let waits: Vec<_> = self
            .replicas
            .iter_mut()
            .enumerate()
            .filter_map(|(i, r)| {
                r.child
                    .as_mut()
                    .map(|c| Box::pin(async move { (i, c.wait().await) }))
            })
            .collect();
        if waits.is_empty() {
            return std::future::pending().await;
        }
        let ((i, status), _, _) = futures::future::select_all(waits).await;
        self.replicas[i].child = None;
        (i, status)
    }

    /// SIGTERM to every replica at once, then wait for all.
    pub async fn shutdown(mut self) {
        let n = self.replicas.len();
        let mut stops = Vec::new();
        for i in 0..n {
            if let Some(mut child) = self.replicas[i].child.take() {
                let _ = sigterm(&child);
                stops.push(async move {
                    if tokio::time::timeout(EXIT_WITHIN, child.wait())
                        .await
                        .is_err()
                    {
                        let _ = child.kill().await;
                    }
                });
            }
        }
        futures::future::join_all(stops).await;
    }
}

/// Sends SIGTERM to a child that has not been reaped yet.
fn sigterm(child: &Child) -> anyhow::Result<()> {
    if let Some(pid) = child.id() {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid)?),
            nix::sys::signal::Signal::SIGTERM,
        )?;
    }
    Ok(())
}

/// Whether a gRPC health Check at `endpoint` answers SERVING.
pub async fn serving(endpoint: &str) -> bool {
    let Ok(channel) = tonic::transport::Endpoint::from_shared(endpoint.to_owned()) else {
        return false;
    };
    let Ok(channel) = channel
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
    else {
        return false;
    };
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    });
    request.set_timeout(Duration::from_secs(2));
    matches!(
        health.check(request).await.map(|r| r.into_inner().status()),
        Ok(tonic_health::pb::health_check_response::ServingStatus::Serving)
    )
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
