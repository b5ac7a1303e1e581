//! Another Flight service on the same port: tickets and actions that are not Flight SQL's go
//! to it (a node's distributed worker, in Flotilla). It may also say where clients read a
//! query's rows when other nodes compute them.

use arrow_flight::{Action, FlightData, FlightEndpoint, Ticket};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use futures::stream::BoxStream;
use std::fmt::Debug;
use std::sync::Arc;
use tonic::Status;

/// Serves the `DoGet` tickets and `DoAction` actions Flight SQL does not know.
#[tonic::async_trait]
pub trait FlightFallback: Debug + Send + Sync {
    /// Answers a ticket whose type is not a Flight SQL command.
    async fn do_get(
        &self,
        ticket: Ticket,
    ) -> Result<BoxStream<'static, Result<FlightData, Status>>, Status>;

    /// Answers an action that is neither Flight SQL's nor a session action; `None` when this
    /// service does not know it either.
    async fn do_action(
        &self,
        action: Action,
    ) -> Option<Result<BoxStream<'static, Result<arrow_flight::Result, Status>>, Status>>;

    /// Whether `ticket` carries its own authorization (say, signed by a node of the cluster):
    /// it reaches [`Self::do_get`] from any caller, even one the server does not admit.
    fn carries_authorization(&self, _ticket: &Ticket) -> bool {
        false
    }

    /// Where a client reads the rows of `plan` (planned in a session with `context`) when
    /// not from this node: endpoints with the location of another node and a ticket its
    /// fallback serves. `None`: the rows are read here, as usual.
    ///
    /// # Errors
    /// When the endpoints cannot be made.
    fn result_endpoints(
        &self,
        _plan: &Arc<dyn ExecutionPlan>,
        _context: &TaskContext,
    ) -> Result<Option<Vec<FlightEndpoint>>, Status> {
        Ok(None)
    }

    /// Cancels what a ticket of [`Self::result_endpoints`] runs; `false` when `ticket` is not
    /// one of them.
    async fn cancel(&self, _ticket: &Ticket) -> Result<bool, Status> {
        Ok(false)
    }
}
