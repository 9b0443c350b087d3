//! The release scenario's `notify`: like most services it installs no signal handler (as PID 1 without an
//! init it would ignore SIGTERM and be killed after the stop timeout) and has no `/healthz` (only `GET /`
//! answers), so the scenario can check both the init and the port-listen health check.

use common::axum::routing::get;
use common::axum::Router;

const MARKER: &str = "notify-1";

const SERVICE: &str = "notify";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let body = format!("{} mailer={}\n", common::banner(SERVICE, MARKER), mailer::MAILER_TAG);
    let app = Router::new().route("/", get(move || async move { body }));
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", common::port_from_env())).await?;
    println!("{SERVICE} listening on {}", listener.local_addr()?);
    common::axum::serve(listener, app).await
}
