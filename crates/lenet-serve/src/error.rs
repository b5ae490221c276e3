//! Errors, each with its HTTP status.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// What went wrong serving a request (or starting the server).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServeError {
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// The request body is over the limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// No such run (404).
    #[error("{0}")]
    NotFound(String),
    /// The run cannot answer, e.g. it has no weights yet (409).
    #[error("{0}")]
    Conflict(String),
    /// The picture holds nothing to classify (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The server is misconfigured (at start).
    #[error("{0}")]
    Setup(String),
    /// A bug or a failure on the server (500).
    #[error("{0}")]
    Internal(String),
}

impl ServeError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ServeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServeError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServeError::NotFound(_) => StatusCode::NOT_FOUND,
            ServeError::Conflict(_) => StatusCode::CONFLICT,
            ServeError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ServeError::Setup(_) | ServeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the user's flags are at fault (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, ServeError::Setup(_))
    }
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Json(json!({ "error": self.to_string() }));
        if let ServeError::TooLarge(_) = self {
            // The rest of the body is left unread, so this connection cannot carry another
            // request: say so, or a keep-alive client sends its next request into a socket
            // the server has closed (a "broken pipe" on the client's side).
            return (status, [(header::CONNECTION, "close")], body).into_response();
        }
        (status, body).into_response()
    }
}
