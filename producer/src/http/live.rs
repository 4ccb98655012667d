//! `GET /v1/events`: every transition of the fleet as server-sent events, one `data:`
//! line per `{ns}:events` message (the JSON the scripts publish), kept alive with
//! comments every 15 s.
//!
//! Auth is the same bearer header as every route. Browsers' `EventSource` cannot
//! send headers, so the dashboard reads this stream with `fetch` and a
//! `ReadableStream` instead of putting the token in the URL, where it would reach
//! access logs, history and `Referer` headers.
//!
//! Each stream holds a Redis pub/sub connection of its own: at most
//! [`MAX_STREAMS`] are open at once; more get 503.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use std::convert::Infallible;
use std::time::Duration;

/// Live event streams (each one Redis pub/sub connection) open at once.
pub(crate) const MAX_STREAMS: usize = 64;

/// Live transitions as server-sent events (`data:` = the event JSON)
#[utoipa::path(get, path = "/v1/events", security(("bearer" = ["tasks:read"])),
    responses((status = 200, description = "text/event-stream: one event per transition", body = String, content_type = "text/event-stream"),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks tasks:read", body = ErrorBody),
        (status = 503, description = "Redis unreachable, or too many open streams", body = ErrorBody)))]
pub(crate) async fn events(
    State(s): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let permit = s.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("at most {MAX_STREAMS} event streams at once; try again later"),
        )
    })?;
    let store = s.producer.store();
    let ps = store
        .subscribe(&store.names().events_channel())
        .await
        .map_err(crate::error::ProducerError::from)?;
    let stream = ps.into_on_message().map(move |msg| {
        // The permit lives as long as the stream.
        let _held = &permit;
        let data: String = msg.get_payload().unwrap_or_default();
        Ok(Event::default().event("transition").data(data))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
