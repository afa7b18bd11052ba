//! `Delivery`: how the worker sends operations to the API.

use std::fmt;
use std::str::FromStr;

/// How operations travel to the API.
///
/// ```
/// use prefactor_runtime::{Config, Delivery};
///
/// let config = Config::builder().api_url("http://127.0.0.1:9").api_token("t").build().unwrap();
/// assert_eq!(config.delivery(), Delivery::Bulk);
/// assert_eq!("per_request".parse::<Delivery>(), Ok(Delivery::PerRequest));
/// assert_eq!(Delivery::Bulk.to_string(), "bulk");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Many operations per `POST /api/v1/bulk` request (the default). A server that answers
    /// 404 or 405 there (no bulk endpoint) makes the client switch to [`Delivery::PerRequest`]
    /// for good, without losing anything.
    #[default]
    Bulk,
    /// One HTTP request per operation, on the endpoint of that operation.
    PerRequest,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Delivery::Bulk => "bulk",
            Delivery::PerRequest => "per_request",
        })
    }
}

impl FromStr for Delivery {
    type Err = String;

    /// `bulk`, or `per_request` / `per-request` (any case).
    fn from_str(text: &str) -> Result<Delivery, String> {
        match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "bulk" => Ok(Delivery::Bulk),
            "per_request" => Ok(Delivery::PerRequest),
            _ => Err(format!("`{text}` is not `bulk` or `per_request`")),
        }
    }
}
