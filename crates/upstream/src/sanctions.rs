//! The sanctions list of this process: the fleet's active SDN list (PostgreSQL), held in
//! memory and prepared for screening, so each underwriting call screens names in well
//! under a millisecond without a network call. Not an HTTP upstream, but answered like
//! one (a [`Fetched`] with its [`DataSource`]) so checks and replay treat it alike.

use std::fmt;
use std::sync::{Arc, RwLock};

use chrono::DateTime;
use dossier_core::domain::{CacheOutcome, DataSource, Upstream};
use dossier_sanctions::{SanctionsHit, SanctionsScreen, SdnList, Subject};
use futures::future::BoxFuture;

use crate::http::Fetched;
use crate::shared::SharedError;

/// Where the fleet's active list is stored (`dossier-store` implements it).
pub trait StoredSanctions: Send + Sync {
    /// The active list's version; None before any list was loaded.
    fn active_version(&self) -> BoxFuture<'_, Result<Option<i64>, SharedError>>;
    /// The active list, whole.
    fn load_active(&self) -> BoxFuture<'_, Result<Option<SdnList>, SharedError>>;
}

/// The sanctions list of this process: the active stored list, prepared for screening.
/// Cheap to read from any task; [`SanctionsList::refresh_from`] swaps in a new list
/// whole, so a screen never sees half of one.
pub struct SanctionsList {
    current: RwLock<Arc<SanctionsScreen>>,
    /// Serialises refreshes, so concurrent callers do not load the same list twice.
    refreshing: tokio::sync::Mutex<()>,
}

impl fmt::Debug for SanctionsList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SanctionsList")
            .field(&self.current())
            .finish()
    }
}

impl Default for SanctionsList {
    fn default() -> Self {
        SanctionsList::empty()
    }
}

impl SanctionsList {
    /// No list yet: every screen is clear and [`SanctionsList::version`] is None.
    pub fn empty() -> Self {
        SanctionsList::from_screen(SanctionsScreen::empty())
    }

    /// Holds a prepared screen (tests, tools).
    pub fn from_screen(screen: SanctionsScreen) -> Self {
        SanctionsList {
            current: RwLock::new(Arc::new(screen)),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The screen in use now.
    pub fn current(&self) -> Arc<SanctionsScreen> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn swap(&self, screen: SanctionsScreen) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(screen);
    }

    /// Loads the active stored list when its version differs from the one held.
    /// Returns whether the list changed. With no active stored list the held list is
    /// kept (the fleet never loses a list it had).
    pub async fn refresh_from(&self, store: &dyn StoredSanctions) -> Result<bool, SharedError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let active = store.active_version().await?;
        if active.is_none() || active == self.version() {
            return Ok(false);
        }
        let Some(list) = store.load_active().await? else {
            return Ok(false);
        };
        if list.stored.as_ref().map(|s| s.id) == self.version() {
            return Ok(false);
        }
        // Preparing ~30,000 names takes tens of milliseconds: off the async workers.
        let screen = match tokio::task::spawn_blocking(move || SanctionsScreen::new(&list)).await {
            Ok(screen) => screen,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        tracing::info!(
            version = screen.version(),
            entries = screen.len(),
            "sanctions list loaded"
        );
        self.swap(screen);
        Ok(true)
    }

    /// See [`SanctionsScreen::screen`].
    pub fn screen(&self, name: &str, subject: Subject, threshold: f64) -> Vec<SanctionsHit> {
        self.current().screen(name, subject, threshold)
    }

    /// The id of the stored list in use; None before the first list is loaded.
    pub fn version(&self) -> Option<i64> {
        self.current().version()
    }

    /// Screens `name` and says where the answer came from: upstream "sanctions",
    /// fetched when the list was loaded, never cached. With no list loaded the answer
    /// has no hits and is marked stale (fetched at the epoch): a check must treat it as
    /// unavailable, never as clear.
    pub fn answer(
        &self,
        name: &str,
        subject: Subject,
        threshold: f64,
    ) -> Fetched<Vec<SanctionsHit>> {
        let screen = self.current();
        Fetched {
            value: screen.screen(name, subject, threshold),
            source: DataSource {
                upstream: Upstream::Sanctions,
                fetched_at: screen.loaded_at().unwrap_or(DateTime::UNIX_EPOCH),
                cached: false,
                stale: screen.version().is_none(),
                cache: CacheOutcome::Local,
                passed_over: Vec::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_list_answers_stale_and_clear() {
        let list = SanctionsList::empty();
        assert_eq!(list.version(), None);
        let answer = list.answer("Ernesto Morales", Subject::Person, 0.8);
        assert!(answer.value.is_empty());
        assert_eq!(answer.source.upstream, Upstream::Sanctions);
        assert!(answer.source.stale);
        assert!(!answer.source.cached);
    }
}
