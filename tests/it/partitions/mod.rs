//! Partition tests: `dossier serve` replicas as hosts of their own, each in a Linux
//! network namespace made by the test (`dossier_devkit::netns`), cut off from
//! PostgreSQL or from one upstream while they serve, or put 200 ms away from
//! PostgreSQL.
//!
//! A replica's host (`Host`) is a namespace with two veth links to this one: `svc`,
//! over which the tests (the "load balancer") call its gRPC and admin ports, and `db`,
//! over which it reaches PostgreSQL through a forwarder on the host end of the link
//! (PostgreSQL itself listens on 127.0.0.1 only). Cutting `db` (its host end set down)
//! drops every packet to and from the database in the kernel: the replica's pooled
//! connections stall, as in a real partition, while its callers still reach it.
//!
//! Upstreams are reached on the namespace's own loopback (Dossier accepts plain HTTP
//! upstreams only there), through one forwarder per upstream that the test owns and
//! that can hold all traffic (a cut that resets nothing) or pass it on to the
//! simulators on this host's loopback.
//!
//! Latency is made by the forwarder on the `db` link, in userspace, because `tc netem`
//! is not available on the CI kernel: every byte to or from PostgreSQL is delivered
//! 200 ms after it was read, each way (so 400 ms per round trip; the TCP handshake with
//! the forwarder itself is immediate).
//!
//! What a cut-off replica shows (figures of one run are printed by each test): it turns
//! NOT_SERVING after its once-a-second database probe fails (about 1.5 s), calls that
//! need the database answer UNAVAILABLE once the pool gives up (its 5 s acquire
//! timeout), its jobs are taken over once their leases lapse and what it still holds
//! inside PostgreSQL is released (its open transactions' locks when the server ends
//! sessions idle in a transaction for 10 s, its fetch leases when they lapse), and after
//! the link is back it turns SERVING within about a second, but accepts work only when
//! its stalled pooled connections resume at their next TCP retransmission (up to tens of
//! seconds after a long cut; calls meanwhile get UNAVAILABLE).
//!
//! Everything stays on this machine: loopback and the test's own namespaces. The tests
//! need root and `ip` (iproute2); without them they are skipped with a message, except
//! under CI (`CI` set), where they fail. They take turns with the fleet tests (the same
//! `SERIAL` lock and bound), and namespaces, links and replicas are removed on drop,
//! also when a test fails.

mod db_cut;
mod db_latency;
mod upstream_cut;

use std::net::{IpAddr, SocketAddr};

use dossier_devkit::fleet::{Fleet, FleetSpec, Placement};
use dossier_devkit::netns::proxy::Proxy;
use dossier_devkit::netns::{self, Namespace};
use dossier_devkit::sim::{Simulators, Upstream};

use crate::fleet::{BINARY, Logs};

/// Whether the test can run here. Skips (false) outside CI when namespaces cannot be
/// made; under CI a partition test that cannot run is a failure, not a pass.
fn namespaces_or_skip(test: &str) -> bool {
    let Some(why) = netns::unavailable() else {
        return true;
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} needs network namespaces, which CI must provide: {why}"
    );
    eprintln!("skipping {test}: {why}");
    false
}

/// A host of its own for one replica: a namespace with a `svc` and a `db` link, a
/// forwarder to PostgreSQL on the host end of `db`, and one to each simulator on the
/// namespace's loopback.
pub(crate) struct Host {
    pub(crate) ns: Namespace,
    /// Host end of the `db` link → PostgreSQL.
    pub(crate) db: Proxy,
    upstreams: Vec<(Upstream, Proxy)>,
}

impl Host {
    pub(crate) async fn new(database_url: &str, sims: &Simulators) -> Host {
        let ns = tokio::task::spawn_blocking(|| Namespace::create(&["svc", "db"]))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("cannot make a namespace: {e:#}"));
        let db_link = ns.link("db").host_ip;
        let db = Proxy::bind(
            SocketAddr::new(db_link.into(), 0),
            postgres_addr(database_url),
        )
        .await
        .expect("a forwarder to PostgreSQL on the db link");
        let upstreams = Upstream::HTTP
            .into_iter()
            .map(|u| {
                let listener = ns
                    .listen_inside(0)
                    .unwrap_or_else(|e| panic!("a listener inside {}: {e:#}", ns.name()));
                let proxy = Proxy::on(listener, sims.addr(u)).expect("a forwarder to a simulator");
                (u, proxy)
            })
            .collect();
        Host { ns, db, upstreams }
    }

    /// Where the replica's ports listen: its end of the `svc` link.
    pub(crate) fn ip(&self) -> IpAddr {
        self.ns.link("svc").ns_ip.into()
    }

    /// The forwarder the replica reaches `upstream` through.
    pub(crate) fn upstream(&self, upstream: Upstream) -> &Proxy {
        &self
            .upstreams
            .iter()
            .find(|(u, _)| *u == upstream)
            .expect("every HTTP upstream has a forwarder")
            .1
    }

    /// A replica in this host: its database through the `db` link (plaintext, which
    /// `serve` allows off loopback only when told), its upstreams on its loopback.
    pub(crate) fn placement(&self, database_url: &str) -> Placement {
        let mut url = url::Url::parse(database_url).expect("DATABASE_URL is a URL");
        url.set_ip_host(self.db.addr().ip()).unwrap();
        url.set_port(Some(self.db.addr().port())).unwrap();
        url.query_pairs_mut().append_pair("sslmode", "disable");
        let mut env = vec![
            ("DATABASE_URL".to_owned(), url.to_string()),
            (
                "DOSSIER_DATABASE_ALLOW_PLAINTEXT".to_owned(),
                "true".to_owned(),
            ),
        ];
        for (u, proxy) in &self.upstreams {
            env.push((
                format!("DOSSIER_{}_URL", u.as_str().to_uppercase()),
                format!("http://{}", proxy.addr()),
            ));
        }
        Placement {
            netns: Some(self.ns.name().to_owned()),
            ip: Some(self.ip()),
            env,
        }
    }
}

/// PostgreSQL's address in a URL of the tests' (an IP or `localhost` and a port).
fn postgres_addr(database_url: &str) -> SocketAddr {
    let url = url::Url::parse(database_url).expect("DATABASE_URL is a URL");
    let port = url.port().unwrap_or(5432);
    let ip: IpAddr = match url.host_str() {
        Some("localhost") | None => [127, 0, 0, 1].into(),
        Some(host) => host.trim_matches(['[', ']']).parse().unwrap_or_else(|_| {
            panic!("the partition tests need PostgreSQL at an IP address, not {host}")
        }),
    };
    SocketAddr::new(ip, port)
}

/// Starts replicas placed by `placements` on a migrated database, tuned as the fleet
/// tests tune theirs (a short job lease, so that a partitioned replica's jobs are taken
/// over quickly), plus `extra` for every replica.
pub(crate) async fn start_placed(
    database_url: &str,
    sims: &Simulators,
    logs: &Logs,
    placements: Vec<Placement>,
    extra: &[(&str, &str)],
) -> Fleet {
    let mut env = FleetSpec::local_env(database_url, sims);
    env.extend(
        [
            ("DOSSIER_JOB_LEASE", "2s"),
            ("DOSSIER_SHUTDOWN_GRACE", "10s"),
            ("DOSSIER_WORKERS", "4"),
            ("DOSSIER_DB_MAX_CONNECTIONS", "10"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Fleet::start_placed(
        FleetSpec {
            binary: BINARY.into(),
            replicas: placements.len(),
            base_port: 0,
            env,
            log_dir: Some(logs.path()),
        },
        placements,
    )
    .await
    .unwrap_or_else(|e| panic!("the fleet did not start: {e:#}"))
}

/// The replica's log so far (for what it said about a partition).
pub(crate) fn replica_log(logs: &Logs, name: &str) -> String {
    std::fs::read_to_string(logs.path().join(format!("{name}.log"))).unwrap_or_default()
}

/// The test database's sessions (who, state, what they wait on, the last statement)
/// and which ones block which, for failure messages.
pub(crate) async fn sessions(pool: &sqlx::PgPool) -> String {
    let rows: Vec<(i32, String, String, String, Vec<i32>, String)> = sqlx::query_as(
        "SELECT pid, coalesce(client_addr::text, 'local'), coalesce(state, ''),
                coalesce(wait_event_type || ':' || wait_event, ''), pg_blocking_pids(pid),
                left(regexp_replace(query, '\\s+', ' ', 'g'), 100)
         FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
         ORDER BY pid",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    rows.iter()
        .map(|(pid, client, state, wait, blocked_by, query)| {
            format!("  {pid} {client} {state} {wait} blocked by {blocked_by:?}: {query}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
