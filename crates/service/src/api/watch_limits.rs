//! Caps on open WatchReport streams, per caller and in all. Each open stream holds a
//! task and re-reads its report on every change, so thousands of them multiply the
//! database's reads; past a cap a new one is refused with RESOURCE_EXHAUSTED and a
//! RetryInfo, and the caller can poll GetReport or try again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::identity::Caller;

/// How long a refused caller is asked to wait.
const RETRY_AFTER: Duration = Duration::from_secs(5);

pub struct WatchLimits {
    total: Arc<Semaphore>,
    per_caller_max: usize,
    per_caller: Mutex<HashMap<String, usize>>,
}

/// An open stream's place; dropping it (the stream's task ends) frees it.
pub struct WatchPermit {
    _total: OwnedSemaphorePermit,
    caller: String,
    limits: Arc<WatchLimits>,
}

impl WatchLimits {
    pub fn new(total: usize, per_caller: usize) -> Arc<WatchLimits> {
        Arc::new(WatchLimits {
            total: Arc::new(Semaphore::new(total)),
            per_caller_max: per_caller,
            per_caller: Mutex::new(HashMap::new()),
        })
    }

    pub fn try_open(self: &Arc<Self>, caller: &Caller) -> Result<WatchPermit, Status> {
        let key = caller.to_string();
        {
            let mut counts = self.per_caller.lock().expect("watch limits lock poisoned");
            let open = counts.entry(key.clone()).or_insert(0);
            if *open >= self.per_caller_max {
                return Err(refused(format!(
                    "this caller has {open} WatchReport streams open, the most one caller may; close one, or poll GetReport"
                )));
            }
            *open += 1;
        }
        match self.total.clone().try_acquire_owned() {
            Ok(permit) => Ok(WatchPermit {
                _total: permit,
                caller: key,
                limits: self.clone(),
            }),
            Err(_) => {
                self.release(&key);
                Err(refused(
                    "this server has as many WatchReport streams open as it serves; try again, or poll GetReport".into(),
                ))
            }
        }
    }

    fn release(&self, caller: &str) {
        let mut counts = self.per_caller.lock().expect("watch limits lock poisoned");
        if let Some(open) = counts.get_mut(caller) {
            *open -= 1;
            if *open == 0 {
                counts.remove(caller);
            }
        }
    }
}

impl Drop for WatchPermit {
    fn drop(&mut self) {
        self.limits.release(&self.caller);
    }
}

fn refused(message: String) -> Status {
    metrics::counter!("dossier_watch_streams_refused_total").increment(1);
    Status::with_error_details(
        tonic::Code::ResourceExhausted,
        message,
        ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::SpiffeId;

    #[test]
    fn streams_are_capped_per_caller_and_in_all() {
        let limits = WatchLimits::new(3, 2);
        let a = Caller::Workload(SpiffeId::parse("spiffe://td/a").unwrap());
        let b = Caller::Workload(SpiffeId::parse("spiffe://td/b").unwrap());
        let a1 = limits.try_open(&a).unwrap();
        let _a2 = limits.try_open(&a).unwrap();
        let err = limits.try_open(&a).err().unwrap();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.get_details_retry_info().is_some());
        let _b1 = limits.try_open(&b).unwrap();
        let err = limits.try_open(&b).err().unwrap();
        assert!(err.message().contains("this server"), "{err:?}");
        drop(a1);
        let _b2 = limits
            .try_open(&b)
            .expect("a closed stream frees its place");
        assert!(limits.try_open(&a).is_err(), "the total is reached again");
    }
}
