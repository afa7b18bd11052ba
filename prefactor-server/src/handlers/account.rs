//! The account-level reads Prefactor's open dashboard starts its sync with: the account (its
//! token check), the alert count and the risk profiles. The local server has one account, no
//! alerts and no risk profiles, and says so in the live API's shapes.

use axum::extract::{Query, State};
use axum::response::Response;
use prefactor_protocol::{SortDirection, Sorting};
use serde::Serialize;
use serde_json::{Value, json};

use super::listing::{QueryPairs, list_answer, page_request, param, sorting};
use super::{respond, success};
use crate::error::{ApiError, json_response};
use crate::ids::parse_pfid;
use crate::state::AppState;

/// The local account as the live API's `details`.
#[derive(Debug, Serialize)]
pub struct AccountDetails {
    /// Always `"account"`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// The account id (also `account_id` on every resource).
    pub id: String,
    /// Display name.
    pub name: &'static str,
    /// The environment runs are registered in unless they name one.
    pub default_environment_id: String,
}

/// `GET /api/v1/account`: the server's one account.
pub async fn account(State(state): State<AppState>) -> Response {
    respond(success(
        AccountDetails {
            type_: "account",
            id: state.account.account_id.clone(),
            name: "Local account",
            default_environment_id: state.account.environment_id.clone(),
        },
        None,
    ))
}

/// `GET /api/v1/alerts/count`: `{"status":"success","count":0}`; the local server raises no
/// alerts.
pub async fn alerts_count() -> Response {
    json_response(200, json!({"status": "success", "count": 0}).to_string())
}

/// `GET /api/v1/risk_profile?account_id=..`: an empty list (the local server scores no risk).
/// An `account_id` other than the local account's is a 404, as for any unknown resource.
pub async fn risk_profiles(
    State(state): State<AppState>,
    query: Result<Query<QueryPairs>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = (|| {
        let Query(query) = query.map_err(|error| ApiError::validation("query", error.body_text()))?;
        if let Some(account_id) = param(&query, "account_id") {
            let account_id = parse_pfid("account_id", account_id)?;
            if account_id != state.account.account_id {
                return Err(ApiError::not_found(format!("account {account_id} not found")));
            }
        }
        let page = page_request(&query)?;
        let order = sorting(&query, &["id"], Sorting { field: "id".to_string(), direction: SortDirection::Desc })?;
        list_answer(Vec::<Value>::new(), page, 0, order)
    })();
    respond(result)
}
