//! Request counting: every request that reaches a simulator (the `/_sim/*` control routes
//! excepted) is counted under `"<METHOD> <route pattern>"`, before any quota or fault
//! decides its fate; the ones the quota then refuses (429) are counted apart as well.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::SimState;

/// Requests counted by one simulator, keyed by `"<METHOD> <route>"`, e.g.
/// `"GET /v1/licenses/{state}/{number}"`. Requests that matched no route are counted as
/// `"<METHOD> (unmatched)"`.
///
/// Serialises as `{"requests": {...}, "total": n, "refused": n}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: BTreeMap<String, u64>,
    /// Requests answered 429 because they were over the quota. They are also in
    /// `requests`, which counts every request whatever its fate.
    pub refused: u64,
}

impl Stats {
    /// All requests counted, over every route.
    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Requests counted for one key, e.g. `stats.count("GET /v1/avm")`; 0 if none.
    pub fn count(&self, key: &str) -> u64 {
        self.requests.get(key).copied().unwrap_or(0)
    }
}

#[derive(Serialize, Deserialize)]
struct StatsJson {
    requests: BTreeMap<String, u64>,
    #[serde(default)]
    total: u64,
    #[serde(default)]
    refused: u64,
}

impl Serialize for Stats {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StatsJson {
            requests: self.requests.clone(),
            total: self.total(),
            refused: self.refused,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Stats {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = StatsJson::deserialize(deserializer)?;
        Ok(Stats {
            requests: json.requests,
            refused: json.refused,
        })
    }
}

/// How many `traceparent` trace ids a simulator remembers (the oldest go first).
const TRACE_IDS_KEPT: usize = 10_000;

/// The live counters of one simulator.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    /// One lock for the request counts and the refusals, so a snapshot never shows a
    /// refusal without its request.
    counts: Mutex<Stats>,
    /// Trace ids of the `traceparent` headers received, oldest first: tests check that
    /// Dossier passes its callers' traces on.
    trace_ids: Mutex<std::collections::VecDeque<String>>,
}

impl Recorder {
    pub(crate) fn record_trace(&self, traceparent: &str) {
        // 00-<trace id>-<parent id>-<flags>; anything else is recorded as it came.
        let trace_id = traceparent.split('-').nth(1).unwrap_or(traceparent);
        let mut ids = self.trace_ids.lock().expect("stats lock");
        if ids.len() == TRACE_IDS_KEPT {
            ids.pop_front();
        }
        ids.push_back(trace_id.to_owned());
    }

    pub(crate) fn trace_ids(&self) -> Vec<String> {
        self.trace_ids
            .lock()
            .expect("stats lock")
            .iter()
            .cloned()
            .collect()
    }

    pub(crate) fn record(&self, key: String) {
        *self
            .counts
            .lock()
            .expect("stats lock")
            .requests
            .entry(key)
            .or_insert(0) += 1;
    }

    /// A request (already recorded) was refused with 429, over the quota.
    pub(crate) fn record_refused(&self) {
        self.counts.lock().expect("stats lock").refused += 1;
    }

    pub(crate) fn snapshot(&self) -> Stats {
        self.counts.lock().expect("stats lock").clone()
    }

    /// Zero the request counts and the refusals (the trace ids are kept: they are a
    /// bounded log, not counts).
    pub(crate) fn reset(&self) {
        *self.counts.lock().expect("stats lock") = Stats::default();
    }
}

/// Middleware: count the request, then pass it on.
pub(crate) async fn middleware(
    State(state): State<Arc<SimState>>,
    request: Request,
    next: Next,
) -> Response {
    if !super::is_control_path(request.uri().path()) {
        let key = match request.extensions().get::<MatchedPath>() {
            Some(path) => format!("{} {}", request.method(), path.as_str()),
            None => format!("{} (unmatched)", request.method()),
        };
        state.stats.record(key);
        if let Some(traceparent) = request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
        {
            state.stats.record_trace(traceparent);
        }
    }
    next.run(request).await
}
