//! Code shared by every service in the example workspace.
//!
//! Editing [`VERSION_TAG`] must cause *every* service to be rebuilt and
//! restarted by the dev environment; the tests rely on that.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use axum::routing::get;
use axum::Router;

/// Re-exported so services can add routes without their own axum dependency.
pub use axum;

/// Marker served by every service. Hot-reload tests edit this line.
pub const VERSION_TAG: &str = "v1";

/// Port used when `PORT` is unset or invalid.
pub const DEFAULT_PORT: u16 = 8080;

/// Human-readable greeting for `service`.
pub fn greeting(service: &str) -> String {
    format!("hello from {service}")
}

/// The line served on `GET /`, without the trailing newline:
/// `<service> marker=<marker> common=<VERSION_TAG> hello from <service>`.
pub fn banner(service: &str, marker: &str) -> String {
    format!(
        "{service} marker={marker} common={VERSION_TAG} {}",
        greeting(service)
    )
}

/// Router answering `GET /` with `body`, ` started=<nanoseconds since the epoch
/// at process start>` and a newline, and `GET /healthz` with `ok`. The start
/// stamp tells a test which services a change restarted.
pub fn router(body: String) -> Router {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let body = format!("{body} started={started}\n");
    Router::new()
        .route("/", get(move || async move { body }))
        .route("/healthz", get(|| async { "ok" }))
}

/// Port from the `PORT` environment variable, falling back to [`DEFAULT_PORT`].
pub fn port_from_env() -> u16 {
    std::env::var("PORT")
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(DEFAULT_PORT)
}

/// Bind `0.0.0.0:$PORT` and serve `app` until SIGINT or SIGTERM.
pub async fn serve(service: &str, app: Router) -> io::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port_from_env()));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "{service} listening on {} (common={VERSION_TAG})",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    println!("{service} stopped");
    Ok(())
}

/// Serve the standard router for a service whose `GET /` body is
/// [`banner`]`(service, marker)`.
pub async fn run(service: &str, marker: &str) -> io::Result<()> {
    serve(service, router(banner(service, marker))).await
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM (`docker stop`).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            eprintln!("cannot listen for SIGINT: {err}");
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                eprintln!("cannot listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        _ = ctrl_c => println!("SIGINT received, shutting down"),
        _ = terminate => println!("SIGTERM received, shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_contains_both_markers() {
        let b = banner("api", "api-1");
        assert!(b.contains("marker=api-1"));
        assert!(b.contains(&format!("common={VERSION_TAG}")));
        assert!(b.ends_with("hello from api"));
    }
}
