//! The `billing` example service.

/// Service-local marker served on `GET /`. Hot-reload tests edit this line.
const MARKER: &str = "billing-1";

const SERVICE: &str = "billing";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    common::run(SERVICE, MARKER).await
}
