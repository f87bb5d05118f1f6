//! The JSON gateway: the same services as gRPC, with grpc-gateway's
//! conventions, so that XMTP's JavaScript SDK (which speaks this gateway)
//! works unchanged.
//!
//! - Routes: `POST /message/v1/{publish,query,batch-query,subscribe,subscribe-all}`
//!   and `POST /key/v1/{register-installation,upload-one-time-keys,
//!   count-one-time-keys,get-installations,claim-one-time-keys,publish-revocation}`;
//!   `GET /healthz`; `GET /metrics` (Prometheus text).
//! - Bodies are the proto3 JSON mapping of the request messages (pbjson):
//!   camelCase names out, snake_case accepted in, 64-bit integers as decimal
//!   strings, bytes as base64, enums by name or number. A body is parsed as
//!   JSON whatever its `Content-Type` (the JS SDK sends `text/plain`); an
//!   empty body is `{}`.
//! - Streams are newline-delimited `{"result":<Envelope>}` objects; a stream
//!   that fails ends with `{"error":{"code":N,"message":"...","details":[]}}`.
//! - Errors are `{"code":N,"message":"...","details":[]}` with the HTTP status
//!   grpc-gateway gives the gRPC code (see [`http_status`]).
//! - Publish reads the `Authorization: Bearer <token>` header when the node
//!   requires tokens (see [`crate::auth`]); refusals are 401
//!   (Unauthenticated) or 403 (PermissionDenied).
//! - CORS is permissive, for browsers.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use axum::{
    body::{Body, Bytes},
    extract::{ConnectInfo, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use futures::{Stream, StreamExt};
use serde::{de::DeserializeOwned, Serialize};
use tower_http::cors::CorsLayer;
use xmtp_proto::xmtp::message_api::v1::{Envelope, SubscribeAllRequest, SubscribeRequest};

use crate::{
    grpc::envelope_stream,
    hub::{Hub, Subscription},
    metrics::Metrics,
    service::{ApiError, KeyService, MessageService, MAX_REQUEST_BYTES},
};

/// Largest JSON body: the largest binary request, base64-expanded, plus room
/// for the JSON around it.
pub const MAX_BODY_BYTES: usize = MAX_REQUEST_BYTES / 3 * 4 + (64 << 10);

#[derive(Clone)]
struct Gateway {
    messages: MessageService,
    keys: KeyService,
    metrics: Arc<Metrics>,
    hub: Arc<Hub>,
}

/// The HTTP status grpc-gateway uses for a gRPC code.
pub fn http_status(code: tonic::Code) -> StatusCode {
    use tonic::Code;
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: i32,
    message: &'a str,
    details: [(); 0],
}

impl<'a> ErrorBody<'a> {
    fn of(err: &'a ApiError) -> Self {
        Self {
            code: err.code() as i32,
            message: err.message(),
            details: [],
        }
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error_response(err: &ApiError) -> Response {
    let body = serde_json::to_vec(&ErrorBody::of(err)).unwrap_or_default();
    json_response(http_status(err.code()), body)
}

/// A routing error in the same JSON shape as every other error.
fn plain_error(status: StatusCode, code: tonic::Code, message: &str) -> Response {
    let body = ErrorBody {
        code: code as i32,
        message,
        details: [],
    };
    json_response(status, serde_json::to_vec(&body).unwrap_or_default())
}

fn respond<T: Serialize>(result: Result<T, ApiError>) -> Response {
    match result.and_then(|value| {
        serde_json::to_vec(&value)
            .map_err(|e| ApiError::Internal(format!("cannot encode response: {e}")))
    }) {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(err) => error_response(&err),
    }
}

/// Reads and decodes a request body, whatever its content type.
async fn parse<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            ApiError::InvalidArgument(format!(
                "cannot read request body (at most {MAX_BODY_BYTES} bytes): {e}"
            ))
        })?;
    decode_body(&bytes)
}

/// Decodes a request body that was read whole: a body of only whitespace is
/// the empty message `{}`, anything else must be the message's proto3 JSON.
/// Public so that the fuzz targets (`xmtp_node/fuzz`) exercise exactly what
/// the gateway runs on hostile bodies.
pub fn decode_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(text)
        .map_err(|e| ApiError::InvalidArgument(format!("invalid JSON request: {e}")))
}

/// Newline-delimited `{"result":...}` objects, then `{"error":...}` if the
/// stream fails.
fn ndjson(stream: impl Stream<Item = Result<Envelope, ApiError>> + Send + 'static) -> Response {
    #[derive(Serialize)]
    struct Item<'a> {
        result: &'a Envelope,
    }
    #[derive(Serialize)]
    struct Failure<'a> {
        error: ErrorBody<'a>,
    }
    let lines = stream.map(|item| {
        let mut line = match &item {
            Ok(env) => serde_json::to_vec(&Item { result: env }),
            Err(err) => serde_json::to_vec(&Failure {
                error: ErrorBody::of(err),
            }),
        }
        .unwrap_or_default();
        line.push(b'\n');
        Ok::<_, Infallible>(Bytes::from(line))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(lines),
    )
        .into_response()
}

fn stream_of(gw: &Gateway, result: Result<Subscription, ApiError>) -> Response {
    match result {
        Ok(sub) => ndjson(envelope_stream(gw.messages.clone(), sub)),
        Err(err) => error_response(&err),
    }
}

type Peer = ConnectInfo<SocketAddr>;

/// A `POST` route that decodes the body into the service method's request
/// type and encodes its response.
macro_rules! unary {
    ($service:ident . $method:ident) => {
        post(
            |State(gw): State<Gateway>, ConnectInfo(peer): Peer, body: Body| async move {
                match parse(body).await {
                    Ok(req) => respond(gw.$service.$method(Some(peer.ip()), req).await),
                    Err(err) => error_response(&err),
                }
            },
        )
    };
}

/// `POST /message/v1/publish`, with the `Authorization` header (read only
/// when the node requires tokens; a value that is not visible ASCII counts as
/// malformed).
async fn publish(
    State(gw): State<Gateway>,
    ConnectInfo(peer): Peer,
    headers: header::HeaderMap,
    body: Body,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default());
    match parse(body).await {
        Ok(req) => respond(
            gw.messages
                .publish(Some(peer.ip()), authorization, req)
                .await,
        ),
        Err(err) => error_response(&err),
    }
}

async fn subscribe(State(gw): State<Gateway>, ConnectInfo(peer): Peer, body: Body) -> Response {
    match parse::<SubscribeRequest>(body).await {
        Ok(req) => {
            let sub = gw.messages.subscribe(Some(peer.ip()), req);
            stream_of(&gw, sub)
        }
        Err(err) => error_response(&err),
    }
}

async fn subscribe_all(State(gw): State<Gateway>, ConnectInfo(peer): Peer, body: Body) -> Response {
    match parse::<SubscribeAllRequest>(body).await {
        Ok(SubscribeAllRequest {}) => {
            let sub = gw.messages.subscribe_all(Some(peer.ip()));
            stream_of(&gw, sub)
        }
        Err(err) => error_response(&err),
    }
}

async fn metrics(State(gw): State<Gateway>) -> Response {
    let text = gw.metrics.render(gw.hub.subscriber_count());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}

/// The gateway's routes. Serve them with
/// `into_make_service_with_connect_info::<SocketAddr>()`: the peer address is
/// the rate-limited client.
pub fn router(
    messages: MessageService,
    keys: KeyService,
    metrics_: Arc<Metrics>,
    hub: Arc<Hub>,
) -> Router {
    let gw = Gateway {
        messages,
        keys,
        metrics: metrics_,
        hub,
    };
    Router::new()
        .route("/message/v1/publish", post(publish))
        .route("/message/v1/query", unary!(messages.query))
        .route("/message/v1/batch-query", unary!(messages.batch_query))
        .route("/message/v1/subscribe", post(subscribe))
        .route("/message/v1/subscribe-all", post(subscribe_all))
        .route(
            "/key/v1/register-installation",
            unary!(keys.register_installation),
        )
        .route(
            "/key/v1/upload-one-time-keys",
            unary!(keys.upload_one_time_keys),
        )
        .route(
            "/key/v1/count-one-time-keys",
            unary!(keys.count_one_time_keys),
        )
        .route("/key/v1/get-installations", unary!(keys.get_installations))
        .route(
            "/key/v1/claim-one-time-keys",
            unary!(keys.claim_one_time_keys),
        )
        .route(
            "/key/v1/publish-revocation",
            unary!(keys.publish_revocation),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            plain_error(StatusCode::NOT_FOUND, tonic::Code::NotFound, "Not Found")
        })
        .method_not_allowed_fallback(|| async {
            plain_error(
                StatusCode::METHOD_NOT_ALLOWED,
                tonic::Code::Unimplemented,
                "Method Not Allowed",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CorsLayer::permissive())
        .with_state(gw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_grpc_gateway() {
        assert_eq!(
            http_status(tonic::Code::InvalidArgument),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            http_status(tonic::Code::ResourceExhausted),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            http_status(tonic::Code::Unauthenticated),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(http_status(tonic::Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            http_status(tonic::Code::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            http_status(tonic::Code::Internal),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn error_bodies_have_code_message_and_details() {
        let err = ApiError::InvalidArgument("bad".into());
        let json = serde_json::to_string(&ErrorBody::of(&err)).unwrap();
        assert_eq!(json, r#"{"code":3,"message":"bad","details":[]}"#);
    }

    #[test]
    fn bodies_decode_as_proto3_json_and_blank_is_empty() {
        let blank: SubscribeRequest = decode_body(b" \r\n\t").unwrap();
        assert_eq!(blank, SubscribeRequest::default());
        let req: SubscribeRequest = decode_body(br#"{"contentTopics":["/a","/b"]}"#).unwrap();
        assert_eq!(req.content_topics, ["/a", "/b"]);
        for bad in [&b"{"[..], b"[]", b"{\"contentTopics\":1}", b"\xff"] {
            let err = decode_body::<SubscribeRequest>(bad).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
        }
    }
}
