//! One error type for every route, rendered in OpenAI's shape:
//! `{"error": {"message", "type", "param", "code"}}`. Client mistakes keep their status code;
//! internal failures are logged and answered with a 500 that leaks nothing.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 about one request field.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param.into()),
            code: None,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code: None,
        }
    }

    pub fn not_found(message: impl Into<String>, param: Option<&str>, code: &'static str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(Into::into),
            code: Some(code),
        }
    }

    pub fn too_large() -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: "request body exceeds the server's limit (--max-body-bytes)".into(),
            kind: "invalid_request_error",
            param: None,
            code: Some("request_too_large"),
        }
    }

    /// A POST body that is not declared JSON. Requiring `application/json` also keeps web pages
    /// from driving the API with "simple" cross-origin requests (`text/plain` needs no preflight).
    pub fn unsupported_media_type(given: Option<&str>) -> Self {
        ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!(
                "the body must be JSON, sent with `Content-Type: application/json` (got {})",
                given.map_or("none".into(), |t| format!("`{t}`"))
            ),
            kind: "invalid_request_error",
            param: None,
            code: Some("unsupported_media_type"),
        }
    }

    pub fn host_not_allowed(host: &str) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "the Host `{host}` is not allowed: this server answers only loopback names (localhost, 127.0.0.1, [::1]) and those given with --allowed-host"
            ),
            kind: "invalid_request_error",
            param: None,
            code: Some("host_not_allowed"),
        }
    }

    /// What a stream still open at the shutdown deadline ends with.
    pub fn shut_down() -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the server shut down before this answer was finished (--shutdown-timeout)".into(),
            kind: "server_error",
            param: None,
            code: Some("server_shutdown"),
        }
    }

    /// The queue is full: a 429 the client should retry (`Retry-After` is added on the way out).
    pub fn busy(queued: usize, limit: usize) -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "the server is busy: {queued} requests are waiting (limit {limit}, --max-queue); retry shortly"
            ),
            kind: "server_busy",
            param: None,
            code: Some("server_busy"),
        }
    }

    pub fn queue_timeout(waited: std::time::Duration) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!(
                "the request waited {} s for a free slot (--queue-timeout) and was dropped from the queue; retry shortly",
                waited.as_secs()
            ),
            kind: "server_busy",
            param: None,
            code: Some("queue_timeout"),
        }
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {error}");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "internal server error".into(),
            kind: "server_error",
            param: None,
            code: None,
        }
    }

    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": shortened(&self.message),
            "type": self.kind,
            "param": self.param.as_deref().map(shortened),
            "code": self.code,
        }})
    }
}

/// Longest message or param sent back: messages quote the client's input (a regex, a name),
/// and a 400 KB input must not come back whole.
const MAX_ECHO_BYTES: usize = 2048;

fn shortened(text: &str) -> String {
    if text.len() <= MAX_ECHO_BYTES {
        return text.to_string();
    }
    let cut = (0..=MAX_ECHO_BYTES).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}… ({} more bytes)", &text[..cut], text.len() - cut)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if matches!(self.status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_inputs_are_not_echoed_whole() {
        let e = ApiError::invalid("x".repeat(5000), format!("bad regex: {}é", "a".repeat(400_000)));
        let body = e.body();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.len() < 3000 && message.ends_with("more bytes)"), "{}", message.len());
        assert!(body["error"]["param"].as_str().unwrap().len() < 3000);
        assert_eq!(ApiError::invalid("n", "short").body()["error"]["message"], "short");
    }
}
