//! The Flight service as clients reach it: the Flight SQL dispatch of arrow-flight, with its
//! error messages for undecodable requests (a Rust `Debug` rendering such as
//! `DecodeError { description: InvalidWireType … }`) replaced by a sentence.

use crate::layer::Unadmitted;
use crate::service::FlotillaFlightSql;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo,
    SchemaResult, Ticket,
};
use std::sync::Arc;
use tonic::{Request, Response, Status, Streaming};

/// See the module documentation.
#[derive(Clone)]
pub(crate) struct CleanErrors(pub Arc<FlotillaFlightSql>);

type Inner = FlotillaFlightSql;

/// Rewrites a status whose message is a Debug dump of a decoding error.
fn clean(status: Status) -> Status {
    let message = status.message();
    if message.starts_with("DecodeError") || message.contains("DecodeError {") {
        Status::new(
            status.code(),
            "malformed request: the ticket, command or message is not a valid Flight SQL \
             protocol buffer",
        )
    } else {
        status
    }
}

#[tonic::async_trait]
impl FlightService for CleanErrors {
    type HandshakeStream = <Inner as FlightService>::HandshakeStream;
    type ListFlightsStream = <Inner as FlightService>::ListFlightsStream;
    type DoGetStream = <Inner as FlightService>::DoGetStream;
    type DoPutStream = <Inner as FlightService>::DoPutStream;
    type DoActionStream = <Inner as FlightService>::DoActionStream;
    type ListActionsStream = <Inner as FlightService>::ListActionsStream;
    type DoExchangeStream = <Inner as FlightService>::DoExchangeStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        self.0.handshake(request).await.map_err(clean)
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        self.0.list_flights(request).await.map_err(clean)
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.0.get_flight_info(request).await.map_err(clean)
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        self.0.poll_info(request).await.map_err(|e| clean(e.into()))
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        self.0.schema_of(request).await.map_err(|e| clean(e.into()))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        if let Some(Unadmitted(refused)) = request.extensions().get::<Unadmitted>()
            && !self.0.carries_authorization(request.get_ref())
        {
            return Err(refused.clone());
        }
        self.0.do_get(request).await.map_err(clean)
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        self.0.do_put(request).await.map_err(clean)
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        self.0.do_exchange(request).await.map_err(clean)
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        self.0.do_action(request).await.map_err(clean)
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        self.0.list_actions(request).await.map_err(clean)
    }
}
