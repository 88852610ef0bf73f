//! Concurrent requests for the same key share one in-flight fetch.
//!
//! The fetch runs in its own task, so it finishes (and fills the caches) even if the
//! caller that started it gives up at its deadline; every caller awaits the shared
//! result with its own deadline. (moka's `get_with` would tie the waiters to the first
//! caller's future.)

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

type Flight<V> = Shared<BoxFuture<'static, V>>;

#[derive(Debug)]
pub struct Coalescer<V: Clone> {
    inflight: Arc<Mutex<HashMap<String, Flight<V>>>>,
}

impl<V: Clone> Default for Coalescer<V> {
    fn default() -> Self {
        Coalescer {
            inflight: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<V: Clone + Send + Sync + 'static> Coalescer<V> {
    /// Joins the fetch in flight for `key`, or starts `fetch` as a new task. Returns
    /// the shared result and whether an existing fetch was joined. `on_panic` turns a
    /// panicked fetch task into a value, so a bug never poisons the waiters.
    pub fn join_or_start<F>(
        &self,
        key: &str,
        fetch: impl FnOnce() -> F,
        on_panic: impl FnOnce() -> V + Send + 'static,
    ) -> (Flight<V>, bool)
    where
        F: Future<Output = V> + Send + 'static,
    {
        let mut map = self.inflight.lock().expect("coalescer lock");
        if let Some(flight) = map.get(key) {
            return (flight.clone(), true);
        }
        let leave = Leave {
            inflight: self.inflight.clone(),
            key: key.to_owned(),
        };
        let fut = fetch();
        let task = tokio::spawn(async move {
            // Leaves the table when done, panicked or not.
            let _leave = leave;
            fut.await
        });
        let flight = async move { task.await.unwrap_or_else(|_| on_panic()) }
            .boxed()
            .shared();
        map.insert(key.to_owned(), flight.clone());
        (flight, false)
    }

    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.inflight.lock().expect("coalescer lock").len()
    }
}

struct Leave<V> {
    inflight: Arc<Mutex<HashMap<String, Flight<V>>>>,
    key: String,
}

impl<V> Drop for Leave<V> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.inflight.lock() {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let c: Coalescer<u32> = Coalescer::default();
        let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = calls.clone();
        let (first, joined_first) = c.join_or_start(
            "k",
            move || async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = gate_rx.await;
                7
            },
            || 0,
        );
        let (second, joined_second) = c.join_or_start("k", || async { 99 }, || 0);
        assert!(!joined_first && joined_second);
        gate_tx.send(()).unwrap();
        assert_eq!((first.await, second.await), (7, 7));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_caller_giving_up_does_not_cancel_the_fetch() {
        let c: Coalescer<u32> = Coalescer::default();
        let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
        let (first, _) = c.join_or_start(
            "k",
            || async move { gate_rx.await.map(|_| 1).unwrap_or(2) },
            || 0,
        );
        drop(first); // the first caller's deadline fired
        let (second, joined) = c.join_or_start("k", || async { 99 }, || 0);
        assert!(joined);
        gate_tx.send(()).unwrap();
        assert_eq!(second.await, 1);
    }

    #[tokio::test]
    async fn a_panicking_fetch_becomes_a_value() {
        let c: Coalescer<u32> = Coalescer::default();
        let (flight, _) = c.join_or_start("k", || async { panic!("bug") }, || 42);
        assert_eq!(flight.await, 42);
        assert_eq!(c.in_flight(), 0);
    }
}
