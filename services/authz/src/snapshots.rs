//! Principal snapshots in two levels (A8): compiled in process (moka), and encoded in the shared
//! cache (Redis) under `praxis:authz:principal:<user>:<revision>`, where an entry, being keyed by
//! the enterprise revision it was read at, is never stale, only superseded.
//!
//! Freshness: directory announces every enterprise revision on the cache's pub/sub and an
//! announcement makes older entries of that enterprise stale at once. Announcements can be lost
//! silently (a dead connection), so an entry is also trusted for at most `max_staleness` before
//! the enterprise's revision is asked again (one ask per enterprise, not per principal). If that
//! ask fails the answer is an error: never a decision from data that cannot be confirmed.

use crate::principal::CompiledPrincipal;
use crate::principals::{LookupError, PrincipalSource};
use praxis_cache::{Cache, Notice};
use praxis_proto::directory::v1 as directory;
use praxis_runtime::Caller;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Where directory announces revisions (directory's `REVISIONS_CHANNEL`).
pub const REVISIONS_CHANNEL: &str = "praxis:directory:revisions";
const SHARED_TTL: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, thiserror::Error)]
pub enum SnapshotError {
    #[error("principal not found")]
    NotFound,
    #[error("not allowed to read this principal")]
    Denied,
    #[error("data is at revision {have}, below min_revision {want}")]
    RevisionNotReached { have: i64, want: i64 },
    #[error("directory unavailable: {0}")]
    Unavailable(String),
}

impl From<LookupError> for SnapshotError {
    fn from(error: LookupError) -> Self {
        match error {
            LookupError::NotFound => SnapshotError::NotFound,
            LookupError::Denied => SnapshotError::Denied,
            LookupError::Unavailable(cause) => SnapshotError::Unavailable(cause),
        }
    }
}

/// What is known about each enterprise's revision.
#[derive(Default)]
struct Board {
    /// Highest revision announced or seen.
    known: HashMap<String, i64>,
    /// Revision confirmed by asking directory, and when.
    confirmed: HashMap<String, (i64, Instant)>,
    /// Enterprises whose revision is being confirmed in the background, or whose last
    /// confirmation in the background failed (the next one is then the calls' own, once the
    /// confirmation held has expired: no stream of background asks at a directory that is away).
    confirming: HashSet<String>,
}

impl Board {
    /// `revision` was current at `at`; a confirmation older than the one held changes nothing.
    fn confirm(&mut self, enterprise_id: &str, revision: i64, at: Instant) {
        match self.confirmed.get_mut(enterprise_id) {
            Some(held) if held.1 >= at => {}
            Some(held) => *held = (revision, at),
            None => {
                self.confirmed
                    .insert(enterprise_id.to_owned(), (revision, at));
            }
        }
        let known = self.known.entry(enterprise_id.to_owned()).or_insert(0);
        *known = (*known).max(revision);
        self.confirming.remove(enterprise_id);
    }

    /// The confirmed revision and its age, if younger than `max_staleness`, at least
    /// `min_revision` and not behind an announcement.
    fn fresh(
        &self,
        enterprise_id: &str,
        min_revision: i64,
        max_staleness: Duration,
    ) -> Option<(i64, Duration)> {
        let (revision, at) = *self.confirmed.get(enterprise_id)?;
        let known = self.known.get(enterprise_id).copied().unwrap_or(0);
        let age = at.elapsed();
        (age < max_staleness && revision >= min_revision && revision >= known)
            .then_some((revision, age))
    }
}

type Answer = Option<Result<Arc<CompiledPrincipal>, SnapshotError>>;

/// A read of one principal from directory, under way for a call that demanded a revision.
/// It holds every write committed before it began: the demanded one, and every revision
/// announced by then (`covers`, the higher of the two).
struct Flight {
    id: u64,
    covers: i64,
    answer: tokio::sync::watch::Receiver<Answer>,
}

/// Takes a flight off the board when its read ends or its caller goes away; in the second
/// case the calls waiting for it see the channel close (after it left the board) and look
/// again.
struct Landing<'a> {
    flights: &'a Mutex<HashMap<String, Vec<Flight>>>,
    user_id: &'a str,
    id: u64,
    answer: tokio::sync::watch::Sender<Answer>,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        let mut flights = self
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(under_way) = flights.get_mut(self.user_id) {
            under_way.retain(|flight| flight.id != self.id);
            if under_way.is_empty() {
                flights.remove(self.user_id);
            }
        }
    }
}

pub struct Snapshots {
    source: Arc<dyn PrincipalSource>,
    shared: Arc<dyn Cache>,
    local: moka::sync::Cache<String, Arc<CompiledPrincipal>>,
    board: Arc<Mutex<Board>>,
    max_staleness: Duration,
    /// One question to directory at a time per enterprise revision or principal: when the
    /// confirmation expires or a revision moves, the calls in flight wait for the first one's
    /// answer instead of all asking (a burst of asks would slow directory down further).
    gates: moka::sync::Cache<String, Arc<tokio::sync::Mutex<()>>>,
    /// Reads under way for demanded revisions, by principal.
    flights: Mutex<HashMap<String, Vec<Flight>>>,
    next_flight: std::sync::atomic::AtomicU64,
}

/// Who may read whose access: a user their own, an enterprise admin anyone's in the enterprise.
pub fn may_ask(caller: &Caller, principal: &CompiledPrincipal) -> bool {
    caller.user_id == principal.user_id
        || (caller.kind == "ENTERPRISE_ADMIN" && caller.enterprise_id == principal.enterprise_id)
}

/// How long a call waits for another's question to directory before asking itself: while
/// directory does not answer, waiting in line would add one timeout per caller ahead.
const GATE_WAIT: Duration = Duration::from_secs(2);

fn shared_key(user_id: &str, revision: i64) -> String {
    format!("praxis:authz:principal:{user_id}:{revision}")
}

impl Snapshots {
    pub fn new(
        source: Arc<dyn PrincipalSource>,
        shared: Arc<dyn Cache>,
        max_staleness: Duration,
    ) -> Self {
        Self {
            source,
            shared,
            local: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            board: Arc::new(Mutex::new(Board::default())),
            max_staleness,
            gates: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(60))
                .build(),
            flights: Mutex::new(HashMap::new()),
            next_flight: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn gate(&self, key: String) -> Arc<tokio::sync::Mutex<()>> {
        self.gates
            .get_with(key, || Arc::new(tokio::sync::Mutex::new(())))
    }

    /// The confirmed revision, if it is recent, at least `min_revision` and not behind an
    /// announcement. Every check asks, so it takes the board's lock once.
    fn fresh(&self, enterprise_id: &str, min_revision: i64) -> Option<i64> {
        self.board()
            .fresh(enterprise_id, min_revision, self.max_staleness)
            .map(|(revision, _)| revision)
    }

    fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The highest revision of the enterprise announced or seen.
    fn known(&self, enterprise_id: &str) -> i64 {
        self.board().known.get(enterprise_id).copied().unwrap_or(0)
    }

    /// Records a revision announced or seen.
    pub fn announce(&self, enterprise_id: &str, revision: i64) {
        let mut board = self.board();
        let known = board.known.entry(enterprise_id.to_owned()).or_insert(0);
        *known = (*known).max(revision);
    }

    /// Announcements may have been lost: confirm everything with directory again.
    pub fn forget_confirmations(&self) {
        self.board().confirmed.clear();
    }

    fn confirm(&self, enterprise_id: &str, revision: i64) {
        self.board()
            .confirm(enterprise_id, revision, Instant::now());
    }

    /// Keeps `principal` in process unless a newer one is held: reads may end out of order.
    fn keep(&self, user_id: &str, principal: &Arc<CompiledPrincipal>) {
        use moka::ops::compute::Op;
        self.local
            .entry(user_id.to_owned())
            .and_compute_with(|held| match held {
                Some(held) if held.value().revision > principal.revision => Op::Nop,
                _ => Op::Put(principal.clone()),
            });
    }

    /// `fresh`, and past half of `max_staleness` the first call to notice starts confirming the
    /// revision in the background, so that calls do not wait for directory while it answers.
    /// If it does not answer, the confirmation expires and the next call asks (and fails).
    fn fresh_ahead(
        &self,
        caller: &Caller,
        authorization: Option<&str>,
        enterprise_id: &str,
        min_revision: i64,
    ) -> Option<i64> {
        let revision = {
            let mut board = self.board();
            let (revision, age) = board.fresh(enterprise_id, min_revision, self.max_staleness)?;
            if age < self.max_staleness / 2 || !board.confirming.insert(enterprise_id.to_owned()) {
                return Some(revision);
            }
            revision
        };
        let (source, board) = (self.source.clone(), self.board.clone());
        let (caller, authorization) = (caller.clone(), authorization.map(str::to_owned));
        let enterprise_id = enterprise_id.to_owned();
        tokio::spawn(async move {
            let asked_at = Instant::now();
            let answer = source
                .revision(&caller, authorization.as_deref(), &enterprise_id)
                .await;
            match answer {
                // Current when asked: the bound counts from the question, not the answer.
                Ok(revision) => board
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .confirm(&enterprise_id, revision, asked_at),
                Err(error) => tracing::warn!(%error, "revision not confirmed ahead of time"),
            }
        });
        Some(revision)
    }

    /// The enterprise's current revision: confirmed recently, or asked now.
    async fn current(
        &self,
        caller: &Caller,
        authorization: Option<&str>,
        enterprise_id: &str,
        min_revision: i64,
    ) -> Result<i64, SnapshotError> {
        if let Some(revision) = self.fresh_ahead(caller, authorization, enterprise_id, min_revision)
        {
            return Ok(revision);
        }
        let gate = self.gate(format!("enterprise:{enterprise_id}"));
        let _turn = tokio::time::timeout(GATE_WAIT, gate.lock()).await.ok();
        // Whoever went first may have confirmed it meanwhile.
        if let Some(revision) = self.fresh(enterprise_id, min_revision) {
            return Ok(revision);
        }
        let revision = self
            .source
            .revision(caller, authorization, enterprise_id)
            .await?;
        self.confirm(enterprise_id, revision);
        Ok(revision)
    }

    /// The enterprise's active users, as the caller may list them (A6).
    pub async fn users(
        &self,
        caller: &Caller,
        authorization: Option<&str>,
        enterprise_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, SnapshotError> {
        Ok(self
            .source
            .users(caller, authorization, enterprise_id, limit)
            .await?)
    }

    /// The principal at its enterprise's current revision (and at least `min_revision`).
    pub async fn principal(
        &self,
        caller: &Caller,
        authorization: Option<&str>,
        user_id: &str,
        min_revision: i64,
    ) -> Result<Arc<CompiledPrincipal>, SnapshotError> {
        // A user belongs to one enterprise for life, so a cached entry names the enterprise
        // whose revision decides whether the entry is current.
        let held = self.local.get(user_id);
        let enterprise = held
            .as_ref()
            .map(|principal| principal.enterprise_id.clone())
            .or_else(|| (caller.user_id == user_id).then(|| caller.enterprise_id.clone()));

        if let Some(enterprise) = &enterprise {
            let cached = held.as_ref().map(|principal| principal.revision);
            if min_revision > 0
                && cached.is_none_or(|revision| revision < min_revision)
                && self.fresh(enterprise, min_revision).is_none()
            {
                // The caller demands a revision (one it just wrote) this process has not
                // confirmed, and holds no snapshot that new: the snapshot from directory carries
                // its own revision, so asking for the revision first would only add a trip to
                // directory before the one that is needed. (Without a demand, the revision is
                // asked first so that the shared cache can answer at it.)
                return self
                    .fetch_demanded(caller, authorization, enterprise, user_id, min_revision)
                    .await;
            }
            let current = self
                .current(caller, authorization, enterprise, min_revision)
                .await?;
            if current < min_revision {
                return Err(SnapshotError::RevisionNotReached {
                    have: current,
                    want: min_revision,
                });
            }
            if let Some(principal) = held
                && principal.revision >= current
            {
                return Ok(principal);
            }
            let gate = self.gate(format!("principal:{user_id}"));
            let _turn = tokio::time::timeout(GATE_WAIT, gate.lock()).await.ok();
            // Whoever went first may have loaded it meanwhile.
            if let Some(principal) = self.local.get(user_id)
                && principal.revision >= current
            {
                return Ok(principal);
            }
            if let Some(principal) = self.read_shared(user_id, current).await {
                let principal = Arc::new(principal);
                self.keep(user_id, &principal);
                return Ok(principal);
            }
            return self
                .fetch(caller, authorization, user_id, min_revision)
                .await;
        }
        self.fetch(caller, authorization, user_id, min_revision)
            .await
    }

    /// `fetch` for a call demanding `min_revision`. A read already under way is taken when it
    /// is sure to hold all this call must see: the demanded write, and every revision announced
    /// before the call came. Otherwise the call reads at once rather than wait for a read that
    /// may not do (waiting, then reading, would cost it two reads' time).
    async fn fetch_demanded(
        &self,
        caller: &Caller,
        authorization: Option<&str>,
        enterprise_id: &str,
        user_id: &str,
        min_revision: i64,
    ) -> Result<Arc<CompiledPrincipal>, SnapshotError> {
        let needs = min_revision.max(self.known(enterprise_id));
        while let Some(mut under_way) = self.flight_covering(user_id, needs) {
            let answer = under_way
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|answer| answer.clone());
            // No answer: its caller went away before it ended; look again.
            if let Some(answer) = answer {
                return answer.and_then(|principal| {
                    if principal.revision >= min_revision {
                        Ok(principal)
                    } else {
                        Err(SnapshotError::RevisionNotReached {
                            have: principal.revision,
                            want: min_revision,
                        })
                    }
                });
            }
        }
        let landing = self.take_off(user_id, needs);
        let outcome = self
            .fetch(caller, authorization, user_id, min_revision)
            .await;
        let _ = landing.answer.send(Some(outcome.clone()));
        outcome
    }

    /// A read of `user_id` under way that holds revision `needs`.
    fn flight_covering(
        &self,
        user_id: &str,
        needs: i64,
    ) -> Option<tokio::sync::watch::Receiver<Answer>> {
        let flights = self
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        flights
            .get(user_id)?
            .iter()
            .find(|flight| flight.covers >= needs)
            .map(|flight| flight.answer.clone())
    }

    /// Puts a read of `user_id` covering `covers` on the board, for others to wait for.
    fn take_off<'a>(&'a self, user_id: &'a str, covers: i64) -> Landing<'a> {
        let (sender, answer) = tokio::sync::watch::channel(None);
        let id = self
            .next_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(user_id.to_owned())
            .or_default()
            .push(Flight { id, covers, answer });
        Landing {
            flights: &self.flights,
            user_id,
            id,
            answer: sender,
        }
    }

    async fn read_shared(&self, user_id: &str, revision: i64) -> Option<CompiledPrincipal> {
        let key = shared_key(user_id, revision);
        let bytes = match self.shared.get(&key).await {
            Ok(found) => found?,
            Err(error) => {
                tracing::debug!(%error, "shared cache unavailable; reading directory");
                return None;
            }
        };
        let decoded = directory::PrincipalSnapshot::decode(bytes.as_slice())
            .ok()
            .filter(|snapshot| snapshot.user_id == user_id && snapshot.revision == revision)
            .and_then(|snapshot| CompiledPrincipal::compile(snapshot).ok());
        if decoded.is_none() {
            tracing::warn!(%key, "unreadable principal snapshot in the shared cache; dropped");
            let _ = self.shared.delete(&key).await;
        }
        decoded
    }

    async fn fetch(
        &self,
        caller: &Caller,
        authorization: Option<&str>,
        user_id: &str,
        min_revision: i64,
    ) -> Result<Arc<CompiledPrincipal>, SnapshotError> {
        let asked_at = Instant::now();
        let snapshot = self
            .source
            .principal(caller, authorization, user_id)
            .await?;
        if snapshot.revision < min_revision {
            return Err(SnapshotError::RevisionNotReached {
                have: snapshot.revision,
                want: min_revision,
            });
        }
        // The shared level is filled in the background: the call waiting for this snapshot
        // need not wait for Redis as well (a trip of ~0.3 ms on a cold Check). Until the entry
        // lands, other processes read directory, as they would with no shared level at all.
        let key = shared_key(user_id, snapshot.revision);
        let shared = self.shared.clone();
        let bytes = snapshot.encode_to_vec();
        tokio::spawn(async move {
            if let Err(error) = shared.set(&key, &bytes, SHARED_TTL).await {
                tracing::debug!(%error, "shared cache unavailable; snapshot kept in process only");
            }
        });
        let principal = Arc::new(
            CompiledPrincipal::compile(snapshot)
                .map_err(|e| SnapshotError::Unavailable(e.to_string()))?,
        );
        // Current when the read began: a read that began earlier and ends later confirms nothing
        // over it.
        self.board()
            .confirm(&principal.enterprise_id, principal.revision, asked_at);
        self.keep(user_id, &principal);
        Ok(principal)
    }

    /// Follows directory's announcements until `shutdown`; resubscribes when the cache drops.
    pub async fn follow(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let mut subscription = match self.shared.subscribe(REVISIONS_CHANNEL).await {
                Ok(subscription) => subscription,
                Err(error) => {
                    tracing::warn!(%error, "cannot follow directory revisions; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            loop {
                let notice = tokio::select! {
                    () = shutdown.cancelled() => return,
                    notice = subscription.next() => notice,
                };
                match notice {
                    Some(Notice::Message(bytes)) => self.on_announcement(&bytes),
                    Some(Notice::Gap) => self.forget_confirmations(),
                    None => break,
                }
            }
            self.forget_confirmations();
        }
    }

    fn on_announcement(&self, bytes: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Announcement {
            enterprise_id: String,
            revision: i64,
        }
        match serde_json::from_slice::<Announcement>(bytes) {
            Ok(a) if a.enterprise_id == "*" => self.forget_confirmations(),
            Ok(a) => self.announce(&a.enterprise_id, a.revision),
            Err(_) => self.forget_confirmations(),
        }
    }

    /// Drops every in-process entry (tests and fault drills).
    pub fn clear_local(&self) {
        self.local.invalidate_all();
        self.forget_confirmations();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

    /// A directory that takes `delay` to answer (or, when down, to say it is unavailable) and
    /// counts what it is asked.
    struct Fake {
        delay: Duration,
        down: AtomicBool,
        revisions: AtomicUsize,
        principals: AtomicUsize,
        /// The enterprise's revision (7 unless a test writes).
        current: AtomicI64,
        /// When set, each revision answer waits for a permit the test hands out.
        revision_permits: Option<tokio::sync::Semaphore>,
        /// Snapshots at these revisions are not answered until the test lets them go.
        held: std::sync::Mutex<HashSet<i64>>,
    }

    impl Fake {
        fn new(delay: Duration, down: bool) -> Self {
            Self {
                delay,
                down: AtomicBool::new(down),
                revisions: AtomicUsize::new(0),
                principals: AtomicUsize::new(0),
                current: AtomicI64::new(7),
                revision_permits: None,
                held: std::sync::Mutex::new(HashSet::new()),
            }
        }

        fn is_held(&self, revision: i64) -> bool {
            self.held.lock().expect("held").contains(&revision)
        }

        fn hold(&self, revision: i64, held: bool) {
            let mut revisions = self.held.lock().expect("held");
            if held {
                revisions.insert(revision);
            } else {
                revisions.remove(&revision);
            }
        }

        /// Waits (at most 5 s) until directory has been asked for `count` snapshots.
        async fn asked_for(&self, count: usize) -> usize {
            for _ in 0..500 {
                if self.principals.load(Ordering::SeqCst) >= count {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            self.principals.load(Ordering::SeqCst)
        }

        async fn answer<T>(&self, value: T) -> Result<T, LookupError> {
            tokio::time::sleep(self.delay).await;
            if self.down.load(Ordering::SeqCst) {
                Err(LookupError::Unavailable("stalled".into()))
            } else {
                Ok(value)
            }
        }
    }

    #[async_trait::async_trait]
    impl PrincipalSource for Fake {
        async fn principal(
            &self,
            _caller: &Caller,
            _authorization: Option<&str>,
            user_id: &str,
        ) -> Result<directory::PrincipalSnapshot, LookupError> {
            let snapshot = directory::PrincipalSnapshot {
                user_id: user_id.to_owned(),
                enterprise_id: "e-1".into(),
                kind: directory::UserKind::Staff.into(),
                status: directory::UserStatus::Active.into(),
                revision: self.current.load(Ordering::SeqCst),
                ..Default::default()
            };
            self.principals.fetch_add(1, Ordering::SeqCst);
            while self.is_held(snapshot.revision) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            self.answer(snapshot).await
        }

        async fn revision(
            &self,
            _caller: &Caller,
            _authorization: Option<&str>,
            _enterprise_id: &str,
        ) -> Result<i64, LookupError> {
            self.revisions.fetch_add(1, Ordering::SeqCst);
            if let Some(permits) = &self.revision_permits {
                permits.acquire().await.expect("permits").forget();
            }
            self.answer(self.current.load(Ordering::SeqCst)).await
        }

        async fn users(
            &self,
            _caller: &Caller,
            _authorization: Option<&str>,
            _enterprise_id: &str,
            _limit: usize,
        ) -> Result<Vec<String>, LookupError> {
            Ok(Vec::new())
        }
    }

    /// Snapshots over `source` (in-memory shared cache, 1 s staleness) and a staff caller
    /// asking about themselves.
    fn over(source: Arc<Fake>) -> (Arc<Snapshots>, Caller) {
        let cache = praxis_cache::open("memory").expect("memory cache");
        let snapshots = Arc::new(Snapshots::new(source, cache, Duration::from_secs(1)));
        let caller = Caller {
            user_id: "u-1".into(),
            enterprise_id: "e-1".into(),
            kind: "STAFF".into(),
            ..Default::default()
        };
        (snapshots, caller)
    }

    /// `calls` concurrent asks for u-1 demanding `min_revision`.
    fn burst(
        snapshots: &Arc<Snapshots>,
        caller: &Caller,
        calls: usize,
        min_revision: i64,
    ) -> Vec<tokio::task::JoinHandle<Result<Arc<CompiledPrincipal>, SnapshotError>>> {
        (0..calls)
            .map(|_| {
                let (snapshots, caller) = (snapshots.clone(), caller.clone());
                tokio::spawn(async move {
                    snapshots
                        .principal(&caller, None, "u-1", min_revision)
                        .await
                })
            })
            .collect()
    }

    /// A8: while directory does not answer, calls do not queue behind each other's timeouts
    /// (eight in line would take 24 s); each fails, none is allowed anything.
    #[tokio::test]
    async fn a8_callers_do_not_wait_in_line_behind_a_stalled_directory() {
        let (snapshots, caller) = over(Arc::new(Fake::new(Duration::from_secs(3), true)));
        let started = std::time::Instant::now();
        let burst = burst(&snapshots, &caller, 8, 0);
        for call in burst {
            assert!(call.await.expect("joined").is_err());
        }
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "callers queued: {:?}",
            started.elapsed()
        );
    }

    /// A8: a burst of checks for one principal, arriving when nothing is confirmed or cached,
    /// asks directory once for the revision and once for the snapshot.
    #[tokio::test]
    async fn a8_a_burst_asks_directory_once() {
        let source = Arc::new(Fake::new(Duration::from_millis(20), false));
        let (snapshots, caller) = over(source.clone());
        let burst = burst(&snapshots, &caller, 64, 0);
        for call in burst {
            let principal = call.await.expect("joined").expect("principal");
            assert_eq!(principal.revision, 7);
        }
        assert_eq!(source.revisions.load(Ordering::SeqCst), 1);
        assert_eq!(source.principals.load(Ordering::SeqCst), 1);
    }

    /// A8: checks demanding a revision this process has not seen (the caller's own write) read
    /// the snapshot once, without asking for the revision first; what it carries confirms it.
    #[tokio::test]
    async fn a8_a_demanded_revision_costs_one_trip() {
        let source = Arc::new(Fake::new(Duration::from_millis(20), false));
        let (snapshots, caller) = over(source.clone());
        let burst = burst(&snapshots, &caller, 16, 7);
        for call in burst {
            assert_eq!(call.await.expect("joined").expect("principal").revision, 7);
        }
        assert_eq!(source.revisions.load(Ordering::SeqCst), 0);
        assert_eq!(source.principals.load(Ordering::SeqCst), 1);
        // Demanding more than directory has is refused, never answered from older data.
        let ahead = snapshots.principal(&caller, None, "u-1", 8).await;
        assert!(
            matches!(
                ahead,
                Err(SnapshotError::RevisionNotReached { have: 7, want: 8 })
            ),
            "{:?}",
            ahead.map(|p| p.revision)
        );
        // Within the confirmation, the same demand is answered from memory.
        snapshots
            .principal(&caller, None, "u-1", 7)
            .await
            .expect("principal");
        assert_eq!(source.principals.load(Ordering::SeqCst), 2);
    }

    /// A8: calls demanding a revision take a read under way when it holds what they must see
    /// (the demanded write and every revision announced before they came); a call that must
    /// see more reads at once instead of waiting for it, and a read that ends late never
    /// replaces a newer one.
    #[tokio::test]
    async fn a8_a_read_under_way_serves_the_calls_it_covers_and_no_others() {
        let source = Arc::new(Fake::new(Duration::ZERO, false));
        let (snapshots, caller) = over(source.clone());
        source.hold(7, true);
        source.hold(8, true);
        let first = burst(&snapshots, &caller, 8, 7);
        assert_eq!(source.asked_for(1).await, 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            source.principals.load(Ordering::SeqCst),
            1,
            "one read for 8"
        );

        // A writer commits revision 8 and announces it: a call arriving now must see it, which
        // the read under way (begun before) may not; it reads without waiting for that one.
        source.current.store(8, Ordering::SeqCst);
        snapshots.announce("e-1", 8);
        let mut later = burst(&snapshots, &caller, 1, 7);
        assert_eq!(source.asked_for(2).await, 2, "read while the first is held");
        later.extend(burst(&snapshots, &caller, 4, 8));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            source.principals.load(Ordering::SeqCst),
            2,
            "they take the second"
        );

        source.hold(8, false);
        for call in later {
            assert_eq!(call.await.expect("joined").expect("principal").revision, 8);
        }
        assert!(first.iter().all(|call| !call.is_finished()));
        source.hold(7, false);
        for call in first {
            assert_eq!(call.await.expect("joined").expect("principal").revision, 7);
        }
        assert_eq!(
            snapshots
                .local
                .get("u-1")
                .map(|principal| principal.revision),
            Some(8),
            "the read that ended last was the older"
        );
        assert_eq!(source.principals.load(Ordering::SeqCst), 2);
    }

    /// A8: when the call that began a read goes away, the calls waiting for that read do not
    /// wait forever: they read for themselves.
    #[tokio::test]
    async fn a8_calls_waiting_for_an_abandoned_read_read_themselves() {
        let source = Arc::new(Fake::new(Duration::ZERO, false));
        let (snapshots, caller) = over(source.clone());
        source.hold(7, true);
        let starter = burst(&snapshots, &caller, 1, 7);
        assert_eq!(source.asked_for(1).await, 1);
        let waiting = burst(&snapshots, &caller, 3, 7);
        tokio::time::sleep(Duration::from_millis(20)).await;
        for call in &starter {
            call.abort();
        }
        assert_eq!(source.asked_for(2).await, 2);
        source.hold(7, false);
        for call in waiting {
            let principal = tokio::time::timeout(Duration::from_secs(5), call)
                .await
                .expect("answered")
                .expect("joined")
                .expect("principal");
            assert_eq!(principal.revision, 7);
        }
        assert_eq!(
            source.principals.load(Ordering::SeqCst),
            2,
            "one read for the three left waiting"
        );
    }

    /// A8: past half of the staleness bound the revision is confirmed in the background, so no
    /// call waits for directory while it answers; when directory stops answering, decisions
    /// still end once the bound has passed since the last confirmation.
    #[tokio::test]
    async fn a8_the_revision_is_confirmed_ahead_of_its_expiry() {
        let source = Arc::new(Fake {
            revision_permits: Some(tokio::sync::Semaphore::new(1)),
            ..Fake::new(Duration::ZERO, false)
        });
        let (snapshots, caller) = over(source.clone());
        let principal = |snapshots: Arc<Snapshots>, caller: Caller| async move {
            tokio::time::timeout(
                Duration::from_secs(5),
                snapshots.principal(&caller, None, "u-1", 0),
            )
            .await
        };
        principal(snapshots.clone(), caller.clone())
            .await
            .expect("answered")
            .expect("principal");
        assert_eq!(source.revisions.load(Ordering::SeqCst), 1);

        // Past half the bound: answered from memory while directory is being asked (its answer
        // is held back here, so a call that waited for it would time out).
        tokio::time::sleep(Duration::from_millis(600)).await;
        principal(snapshots.clone(), caller.clone())
            .await
            .expect("answered without waiting for directory")
            .expect("principal");
        for _ in 0..100 {
            if source.revisions.load(Ordering::SeqCst) == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(source.revisions.load(Ordering::SeqCst), 2, "one ask ahead");
        // Only one ask ahead at a time.
        principal(snapshots.clone(), caller.clone())
            .await
            .expect("answered")
            .expect("principal");
        assert_eq!(source.revisions.load(Ordering::SeqCst), 2);

        // The background answer renews the confirmation: past the first one's expiry, still
        // answered from memory without a question on the call's path.
        source
            .revision_permits
            .as_ref()
            .expect("permits")
            .add_permits(1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        principal(snapshots.clone(), caller.clone())
            .await
            .expect("answered from the renewed confirmation")
            .expect("principal");

        // Directory stops answering: an ask ahead fails and is not followed by more while the
        // confirmation held lasts; once the bound has passed since it, the call asks itself and
        // gets no decision.
        source.down.store(true, Ordering::SeqCst);
        let before = source.revisions.load(Ordering::SeqCst);
        source
            .revision_permits
            .as_ref()
            .expect("permits")
            .add_permits(100);
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            principal(snapshots.clone(), caller.clone())
                .await
                .expect("answered")
                .expect("still confirmed");
        }
        let asked = source.revisions.load(Ordering::SeqCst) - before;
        assert!(asked <= 1, "{asked} asks ahead at a directory that is away");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let after = principal(snapshots.clone(), caller.clone())
            .await
            .expect("answered");
        assert!(
            matches!(after, Err(SnapshotError::Unavailable(_))),
            "{:?}",
            after.map(|p| p.revision)
        );
    }
}
