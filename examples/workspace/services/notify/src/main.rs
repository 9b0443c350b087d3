//! The `notify` example service. Depends on `mailer`, which depends on
//! `common`, so editing either library must rebuild and restart it.

/// Service-local marker served on `GET /`. Hot-reload tests edit this line.
const MARKER: &str = "notify-1";

const SERVICE: &str = "notify";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // `GET /` = the standard banner plus the mailer library's marker.
    let body = format!(
        "{} mailer={}",
        common::banner(SERVICE, MARKER),
        mailer::MAILER_TAG
    );
    let preview = mailer::render("dev@example.com", SERVICE);
    let app = common::router(body).route(
        "/preview",
        common::axum::routing::get(move || async move { preview }),
    );
    common::serve(SERVICE, app).await
}
