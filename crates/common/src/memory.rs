//! One query's share of a node's memory pool: `flotilla.query_memory_limit`.
//!
//! DataFusion has one [`MemoryPool`] per runtime, shared by every query of the node (what
//! `[server] memory_limit` bounds). A query with a limit of its own runs with a runtime whose
//! pool is a [`QueryMemoryPool`]: every reservation goes to the node's pool as before, and is
//! also counted against the query's limit. An operator that can spill spills when either says
//! no; the others fail the query with RESOURCE_EXHAUSTED naming the limit.

use crate::options::QueryLimits;
use datafusion::common::{Result, resources_datafusion_err};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionState;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// See the module documentation.
#[derive(Debug)]
pub struct QueryMemoryPool {
    node: Arc<dyn MemoryPool>,
    limit: usize,
    used: AtomicUsize,
}

impl QueryMemoryPool {
    pub fn new(node: Arc<dyn MemoryPool>, limit: usize) -> Self {
        Self {
            node,
            limit,
            used: AtomicUsize::new(0),
        }
    }
}

/// The context to run one query of `state`'s session in: with its own pool when the session
/// sets `flotilla.query_memory_limit`, and the query's `id` (what its log lines carry: see
/// [`query_of`]).
pub fn query_task_context(state: &SessionState, id: &str) -> Arc<TaskContext> {
    let task = TaskContext::from(state).with_task_id(id.to_string());
    Arc::new(
        match QueryLimits::of(state.config_options()).query_memory_limit {
            Some(limit) => task.with_runtime(runtime_for_query(state.runtime_env(), limit)),
            None => task,
        },
    )
}

/// `runtime` with its memory pool bounded to `limit` bytes for one query.
pub fn runtime_for_query(runtime: &RuntimeEnv, limit: usize) -> Arc<RuntimeEnv> {
    let mut runtime = runtime.clone();
    runtime.memory_pool = Arc::new(QueryMemoryPool::new(
        Arc::clone(&runtime.memory_pool),
        limit,
    ));
    Arc::new(runtime)
}

impl fmt::Display for QueryMemoryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "query pool of {} bytes in {}",
            self.limit,
            self.node.name()
        )
    }
}

impl MemoryPool for QueryMemoryPool {
    fn name(&self) -> &str {
        "query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.node.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.node.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.node.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.node.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(additional)
                    .filter(|total| *total <= self.limit)
            })
            .map_err(|used| {
                resources_datafusion_err!(
                    "the query needs more memory than flotilla.query_memory_limit ({} bytes): \
                     {} asked for {additional} more with {used} held by the query",
                    self.limit,
                    reservation.consumer().name()
                )
            })?;
        if let Err(e) = self.node.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        match self.node.memory_limit() {
            MemoryLimit::Finite(node) => MemoryLimit::Finite(node.min(self.limit)),
            _ => MemoryLimit::Finite(self.limit),
        }
    }
}

/// The id of the query a task context runs (set by [`query_task_context`], and by workers to
/// the distributed query's id), or `""`.
pub fn query_of(context: &TaskContext) -> String {
    context.task_id().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    #[test]
    fn a_query_is_held_to_its_limit_and_the_node_to_its_own() {
        let node: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1000));
        let query: Arc<dyn MemoryPool> = Arc::new(QueryMemoryPool::new(Arc::clone(&node), 600));
        let other: Arc<dyn MemoryPool> = Arc::new(QueryMemoryPool::new(Arc::clone(&node), 600));
        let a = MemoryConsumer::new("sort").register(&query);
        a.try_grow(500).unwrap();
        let e = a.try_grow(200).unwrap_err().to_string();
        assert!(e.contains("flotilla.query_memory_limit (600 bytes)"), "{e}");
        assert!(e.contains("sort asked for 200 more with 500 held"), "{e}");
        assert_eq!((query.reserved(), node.reserved()), (500, 500));
        // The node's pool says no before the other query's limit does.
        let b = MemoryConsumer::new("join").register(&other);
        let e = b.try_grow(600).unwrap_err().to_string();
        assert!(!e.contains("query_memory_limit"), "{e}");
        assert_eq!(other.reserved(), 0);
        b.try_grow(500).unwrap();
        drop(a);
        assert_eq!((query.reserved(), node.reserved()), (0, 500));
    }
}
