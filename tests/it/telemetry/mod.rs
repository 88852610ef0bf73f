//! What an operator sees of a call: its trace (spans received by a real OTLP
//! receiver, trace context received by the simulators) and its log lines (validated
//! against docs/log-schema.json). Both run the real `dossier serve` binary, as the
//! exporter and the log subscriber are process-wide.

mod log_lines;
mod traces;

use dossier_devkit::fleet::{Fleet, FleetSpec};
use dossier_devkit::harness::TestDb;
use dossier_devkit::sim::{SimConfig, Simulators};

use crate::fleet::{BINARY, Logs, load_sanctions};

/// One replica on a migrated database with the sample sanctions list, the simulators,
/// and `extra` environment.
pub(crate) struct OneReplica {
    /// Held for the test's length: dropping it drops the database.
    _db: TestDb,
    pub sims: Simulators,
    pub fleet: Fleet,
    pub logs: Logs,
}

impl OneReplica {
    pub(crate) async fn start(test: &str, extra: &[(&str, &str)]) -> OneReplica {
        let db = TestDb::migrated().await;
        load_sanctions(&db.url).await;
        let sims = Simulators::start(SimConfig::default())
            .await
            .expect("simulators start");
        let logs = Logs::new(test);
        let mut env = FleetSpec::local_env(&db.url, &sims);
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let fleet = Fleet::start(FleetSpec {
            binary: BINARY.into(),
            replicas: 1,
            base_port: 0,
            env,
            log_dir: Some(logs.path()),
        })
        .await
        .unwrap_or_else(|e| panic!("the replica did not start: {e:#}"));
        OneReplica {
            _db: db,
            sims,
            fleet,
            logs,
        }
    }

    /// The replica's log so far, one line per entry.
    pub(crate) fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.logs.path().join("dossier-0.log"))
            .expect("the replica's log")
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A random W3C trace id and parent span id, as a caller's tracer makes them.
pub(crate) fn caller_trace() -> (String, String) {
    let bytes: [u8; 24] = rand::random();
    (hex::encode(&bytes[..16]), hex::encode(&bytes[16..]))
}
