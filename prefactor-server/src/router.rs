//! Routes; every request first passes [`crate::pipeline`] (request log, body limit, bearer
//! auth, fault injection). Unknown routes and wrong methods answer JSON 404 / 405; a panic in
//! any of it is caught and answered 500 in the JSON error shape.

use std::any::Any;

use axum::Router;
use axum::http::{Method, Uri};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;
use crate::handlers::{account, admin, agents, bulk, instance_update, instances, ping, spans};
use crate::otlp;
use crate::pipeline;
use crate::state::AppState;

/// The complete application.
pub fn build(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/ping", get(ping::ping))
        .route("/api/v1/account", get(account::account))
        .route("/api/v1/alerts/count", get(account::alerts_count))
        .route("/api/v1/risk_profile", get(account::risk_profiles))
        .route("/api/v1/agent_instance/register", post(instances::register))
        .route("/api/v1/agent_instance", get(instances::list))
        .route("/api/v1/agent_instance/{id}", get(instances::get).put(instance_update::update))
        .route("/api/v1/agent_instance/{id}/start", post(instances::start))
        .route("/api/v1/agent_instance/{id}/finish", post(instances::finish))
        .route("/api/v1/agent_instance/{id}/record_quality", post(instances::record_quality))
        .route("/api/v1/agent_instance/{id}/terminate", post(instances::terminate))
        .route("/api/v1/agent_spans", post(spans::create).get(spans::list))
        .route("/api/v1/agent_spans/{id}/finish", post(spans::finish))
        .route("/api/v1/agent", post(agents::create).get(agents::list))
        .route("/api/v1/agent/{id}", get(agents::get))
        .route("/api/v1/bulk", post(bulk::bulk))
        .route(otlp::TRACES_PATH, post(otlp::ingest))
        .route("/__admin/faults", post(admin::add_fault).delete(admin::clear_faults))
        .route("/__admin/requests", get(admin::requests).delete(admin::clear_requests))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), pipeline::handle))
        // Around the pipeline, so its own rejections of OTLP protobuf requests are protobuf too.
        .layer(from_fn(otlp::protobuf_errors))
        // Added after the API's middleware layer, so the UI's routes skip bearer auth (they
        // check the session cookie) and stay out of the request log and fault rules.
        .merge(crate::ui::router())
        // Outermost: covers the pipeline, the API handlers and the UI.
        .layer(CatchPanicLayer::custom(panic_answer))
        .with_state(state)
}

/// The answer to a request whose handling panicked (a bug): a logged 500 in the JSON error
/// shape. The connection and every other request carry on.
fn panic_answer(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    ApiError::internal(format!("request handler panicked: {detail}")).into_response()
}

async fn unknown_route(method: Method, uri: Uri) -> Response {
    ApiError::not_found(format!("no route for {method} {}", uri.path())).into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    ApiError::new(405, "method_not_allowed", format!("method {method} is not allowed on {}", uri.path()))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn boom() -> &'static str {
        panic!("handler bug")
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_in_the_error_shape_and_the_server_carries_on() {
        let app: Router = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "ok" }))
            .layer(CatchPanicLayer::custom(panic_answer));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        let boom = client.get(format!("http://{address}/boom")).send().await.unwrap();
        assert_eq!(boom.status().as_u16(), 500);
        assert_eq!(boom.headers()["content-type"], "application/json");
        let body: serde_json::Value = boom.json().await.unwrap();
        assert_eq!(body["code"], "internal_error");
        assert_eq!(body["status"], "error");
        let fine = client.get(format!("http://{address}/fine")).send().await.unwrap();
        assert_eq!(fine.status().as_u16(), 200);
    }
}
