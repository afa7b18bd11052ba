//! Routes; every request first passes [`crate::pipeline`] (request log, body limit, bearer
//! auth, fault injection). Unknown routes and wrong methods answer JSON 404 / 405.

use axum::Router;
use axum::http::{Method, Uri};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::ApiError;
use crate::handlers::{account, admin, agents, bulk, instance_update, instances, ping, spans};
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
        .route("/__admin/faults", post(admin::add_fault).delete(admin::clear_faults))
        .route("/__admin/requests", get(admin::requests).delete(admin::clear_requests))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), pipeline::handle))
        // Added after the API's middleware layer, so the UI's routes skip bearer auth (they
        // check the session cookie) and stay out of the request log and fault rules.
        .merge(crate::ui::router())
        .with_state(state)
}

async fn unknown_route(method: Method, uri: Uri) -> Response {
    ApiError::not_found(format!("no route for {method} {}", uri.path())).into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    ApiError::new(405, "method_not_allowed", format!("method {method} is not allowed on {}", uri.path()))
        .into_response()
}
