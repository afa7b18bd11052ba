//! `GET /api/v1/ping`: token validation.

use axum::response::Response;
use prefactor_protocol::PingDetails;

use super::{respond, success};

/// Answers `{"status":"success","details":{"token_type":"api"}}` (auth already passed).
pub async fn ping() -> Response {
    respond(success(PingDetails { token_type: "api".to_string() }, None))
}
