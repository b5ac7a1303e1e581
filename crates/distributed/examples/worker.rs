//! A worker on a localhost port: `cargo run -p flotilla-distributed --example worker -- 127.0.0.1:50061`.
//!
//! It runs the stages coordinators send it, with DataFusion's default functions and codec.

use datafusion::execution::session_state::SessionStateBuilder;
use flotilla_distributed::Worker;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50061".to_string());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    eprintln!("worker on grpc://{}", listener.local_addr()?);
    let worker = Worker::new(SessionStateBuilder::new().with_default_features().build());
    tonic::transport::Server::builder()
        .add_service(worker.into_service())
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await?;
    Ok(())
}
