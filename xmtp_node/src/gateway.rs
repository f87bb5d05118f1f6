//! The JSON gateway (placeholder routes; completed in the next step).

use std::sync::Arc;

use axum::{routing::get, Router};

use crate::{
    hub::Hub,
    metrics::Metrics,
    service::{KeyService, MessageService},
};

/// The gateway's routes.
pub fn router(
    _messages: MessageService,
    _keys: KeyService,
    metrics: Arc<Metrics>,
    hub: Arc<Hub>,
) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || async move { metrics.render(hub.subscriber_count()) }),
        )
}
