//! Identity's HTTP endpoints: what a browser or a JWT library reaches without gRPC.

use crate::keys::KeyRing;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

pub async fn serve(
    keys: KeyRing,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> Result<(), crate::StartError> {
    let router = Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(keys);
    tracing::info!(address = %listener.local_addr()?, "serving identity HTTP");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

async fn jwks(State(keys): State<KeyRing>) -> Response {
    match keys.jwks(chrono::Utc::now()).await {
        Ok(set) => (
            [
                (header::CACHE_CONTROL, "public, max-age=300"),
                (header::CONTENT_TYPE, "application/jwk-set+json"),
            ],
            axum::Json(set),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot read signing keys");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
