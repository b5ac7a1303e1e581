//! Another Flight service on the same port: tickets and actions that are not Flight SQL's go
//! to it (a node's distributed worker, in Flotilla).

use arrow_flight::{Action, FlightData, Ticket};
use futures::stream::BoxStream;
use std::fmt::Debug;
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
}
