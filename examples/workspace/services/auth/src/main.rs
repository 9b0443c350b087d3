//! The `auth` example service.

/// Service-local marker served on `GET /`. Hot-reload tests edit this line.
const MARKER: &str = "auth-1";

const SERVICE: &str = "auth";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    common::run(SERVICE, MARKER).await
}
