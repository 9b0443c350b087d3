//! The `api` example service.

/// Service-local marker served on `GET /`. Hot-reload tests edit this line.
const MARKER: &str = "api-1";

const SERVICE: &str = "api";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    common::run(SERVICE, MARKER).await
}
