//! The queries a node is running and has lately run, as its console shows them.
//!
//! ```text
//!  planned (GetFlightInfo) ──DoGet──▶ running ──stream ends──▶ ok / error / timeout / cancelled
//!        │                                                      │
//!        └── never fetched: expired                             └──▶ the last RECENT ones kept
//! ```
//!
//! A protocol front end [`Activity::begin`]s a [`Query`] once it has its physical plan and
//! keeps the returned `Arc` with the query's execution; when the last holder drops it, the
//! query moves to the recent list with how it ended — and without its plan, which may hold
//! what the query built (a hash join keeps its build side): the plan is described by the
//! function given to [`describe_ended_with`] and let go. [`Activity::cancel`] calls what the
//! front end registered to stop it (the same path as a client's own cancel).
//!
//! One per process, like the metrics ([`activity`]).

use datafusion::physical_plan::ExecutionPlan;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Instant, SystemTime};

/// Ended queries kept for the console.
pub const RECENT: usize = 100;

/// What stops a query: the front end's own cancel path.
pub type Cancel = Box<dyn Fn() + Send + Sync>;

/// What an ended query's plan is remembered as (the console's description of it).
pub type Describe = fn(&Arc<dyn ExecutionPlan>) -> String;

static DESCRIBE: OnceLock<Describe> = OnceLock::new();

/// Describes the plans of queries as they end (the first call counts).
pub fn describe_ended_with(describe: Describe) {
    let _ = DESCRIBE.set(describe);
}

/// The node's queries.
#[derive(Default)]
pub struct Activity {
    next_id: AtomicU64,
    live: Mutex<BTreeMap<u64, Weak<Query>>>,
    recent: Mutex<VecDeque<QueryView>>,
}

impl std::fmt::Debug for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activity")
            .field("live", &lock(&self.live).len())
            .field("recent", &lock(&self.recent).len())
            .finish()
    }
}

/// The node's [`Activity`].
pub fn activity() -> &'static Activity {
    static ACTIVITY: OnceLock<Activity> = OnceLock::new();
    ACTIVITY.get_or_init(Activity::default)
}

/// Who asked, and what.
#[derive(Debug, Clone)]
pub struct Asked {
    /// `flightsql` or `postgres`.
    pub protocol: &'static str,
    /// The session's user (`None` on an open server).
    pub user: Option<String>,
    pub sql: String,
}

/// A query that has not ended. Held by its execution; dropping the last holder ends it.
pub struct Query {
    id: u64,
    asked: Asked,
    started_at: SystemTime,
    started: Instant,
    plan: Arc<dyn ExecutionPlan>,
    running: AtomicBool,
    rows: AtomicU64,
    bytes: AtomicU64,
    /// How it ended, once the front end knows: the state and the error's text.
    outcome: Mutex<Option<(&'static str, Option<String>)>>,
    cancel: Cancel,
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("id", &self.id)
            .field("sql", &self.asked.sql)
            .finish()
    }
}

/// A query as the console lists it.
#[derive(Debug, Clone)]
pub struct QueryView {
    pub id: u64,
    pub asked: Asked,
    pub started_at: SystemTime,
    pub seconds: f64,
    /// `planned`, `running`, `ok`, `error`, `timeout`, `cancelled` or `expired`.
    pub state: &'static str,
    pub rows: u64,
    pub bytes: u64,
    pub error: Option<String>,
    /// The physical plan of a query not yet ended: its metrics are the live figures.
    pub plan: Option<Arc<dyn ExecutionPlan>>,
    /// What an ended query's plan was described as when it ended.
    pub described: Option<String>,
}

impl Activity {
    /// Starts listing a planned query; `cancel` stops it.
    pub fn begin(&self, asked: Asked, plan: Arc<dyn ExecutionPlan>, cancel: Cancel) -> Arc<Query> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let query = Arc::new(Query {
            id,
            asked,
            started_at: SystemTime::now(),
            started: Instant::now(),
            plan,
            running: AtomicBool::new(false),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            outcome: Mutex::new(None),
            cancel,
        });
        lock(&self.live).insert(id, Arc::downgrade(&query));
        query
    }

    /// The queries not yet ended, oldest first.
    pub fn live(&self) -> Vec<QueryView> {
        // Upgraded under the lock, looked at (and maybe dropped: the last holder's drop ends
        // the query, which takes the lock) after it.
        let live: Vec<Arc<Query>> = lock(&self.live)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        live.iter().map(|q| q.view()).collect()
    }

    /// The last [`RECENT`] ended queries, newest first.
    pub fn recent(&self) -> Vec<QueryView> {
        lock(&self.recent).iter().rev().cloned().collect()
    }

    /// One query, live or recent.
    pub fn get(&self, id: u64) -> Option<QueryView> {
        let live = lock(&self.live).get(&id).and_then(Weak::upgrade);
        match live {
            Some(query) => Some(query.view()),
            None => lock(&self.recent).iter().find(|q| q.id == id).cloned(),
        }
    }

    /// Cancels a live query; false when it is not (or no longer) live.
    pub fn cancel(&self, id: u64) -> bool {
        let Some(query) = lock(&self.live).get(&id).and_then(Weak::upgrade) else {
            return false;
        };
        query.ended("cancelled", Some("cancelled from the console".to_string()));
        (query.cancel)();
        true
    }

    fn end(&self, view: QueryView) {
        lock(&self.live).remove(&view.id);
        let mut recent = lock(&self.recent);
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(view);
    }
}

impl Query {
    /// Its number on this node.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Its rows have started streaming.
    pub fn started(&self) {
        self.running.store(true, Ordering::Relaxed);
    }

    /// Counts rows and bytes sent to the client.
    pub fn sent(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// How it ended (the first call counts): `ok`, `error`, `timeout` or `cancelled`.
    pub fn ended(&self, state: &'static str, error: Option<String>) {
        let mut outcome = lock(&self.outcome);
        if outcome.is_none() {
            *outcome = Some((state, error));
        }
    }

    fn view(&self) -> QueryView {
        let (state, error) = match &*lock(&self.outcome) {
            Some((state, error)) => (*state, error.clone()),
            None if self.running.load(Ordering::Relaxed) => ("running", None),
            None => ("planned", None),
        };
        QueryView {
            id: self.id,
            asked: self.asked.clone(),
            started_at: self.started_at,
            seconds: self.started.elapsed().as_secs_f64(),
            state,
            rows: self.rows.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            error,
            plan: Some(Arc::clone(&self.plan)),
            described: None,
        }
    }
}

impl Drop for Query {
    fn drop(&mut self) {
        let mut view = self.view();
        view.state = match view.state {
            // Dropped while streaming without an end: the client went away.
            "running" => "cancelled",
            "planned" => "expired",
            state => state,
        };
        view.described = DESCRIBE.get().map(|describe| describe(&self.plan));
        view.plan = None;
        activity().end(view);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_plan::empty::EmptyExec;
    use std::sync::Arc;

    fn plan() -> Arc<dyn ExecutionPlan> {
        Arc::new(EmptyExec::new(Arc::new(
            datafusion::arrow::datatypes::Schema::empty(),
        )))
    }

    fn asked(sql: &str) -> Asked {
        Asked {
            protocol: "flightsql",
            user: None,
            sql: sql.into(),
        }
    }

    #[test]
    fn a_query_is_live_until_dropped_and_then_recent_with_its_outcome() {
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&cancelled);
        let a = activity().begin(
            asked("SELECT 1"),
            plan(),
            Box::new(move || flag.store(true, Ordering::Relaxed)),
        );
        let b = activity().begin(asked("SELECT 2"), plan(), Box::new(|| {}));
        let c = activity().begin(asked("SELECT 3"), plan(), Box::new(|| {}));
        let (a_id, b_id, c_id) = (a.id(), b.id(), c.id());
        assert_eq!(activity().get(a_id).unwrap().state, "planned");
        a.started();
        a.sent(5, 100);
        let view = activity().get(a_id).unwrap();
        assert_eq!((view.state, view.rows, view.bytes), ("running", 5, 100));
        assert!(activity().live().iter().any(|q| q.id == b_id));

        assert!(activity().cancel(a_id));
        assert!(cancelled.load(Ordering::Relaxed));
        drop(a);
        assert!(!activity().cancel(a_id), "no longer live");
        let view = activity().get(a_id).unwrap();
        assert_eq!(
            (view.state, view.asked.sql.as_str()),
            ("cancelled", "SELECT 1")
        );

        b.started();
        b.ended("error", Some("boom".into()));
        drop(b);
        drop(c);
        let ended = |id| activity().get(id).unwrap();
        assert_eq!(ended(b_id).state, "error");
        assert_eq!(ended(b_id).error.as_deref(), Some("boom"));
        assert_eq!(ended(c_id).state, "expired");
        assert!(
            !activity()
                .live()
                .iter()
                .any(|q| [a_id, b_id, c_id].contains(&q.id))
        );
        assert!(
            ended(b_id).plan.is_none(),
            "an ended query lets its plan go"
        );
        let recent: Vec<u64> = activity().recent().iter().map(|q| q.id).collect();
        let at = |id| recent.iter().position(|r| *r == id).unwrap();
        assert!(at(c_id) < at(b_id) && at(b_id) < at(a_id), "newest first");
    }
}
