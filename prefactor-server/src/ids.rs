//! Client-supplied ids: accepted when they are valid PFIDs, normalised to lowercase.

use prefactor_protocol::Pfid;

use crate::error::ApiError;

/// Parses `text` as a PFID for the field `field`; 422 naming the field otherwise.
///
/// ```
/// use prefactor_server::ids::parse_pfid;
/// assert_eq!(parse_pfid("id", "013XRZP12G3NQK8N0000000000000000").unwrap(), "013xrzp12g3nqk8n0000000000000000");
/// let error = parse_pfid("details.id", "abc").unwrap_err();
/// assert_eq!(error.status, 422);
/// assert!(error.errors.unwrap().contains_key("details.id"));
/// ```
pub fn parse_pfid(field: &str, text: &str) -> Result<String, ApiError> {
    text.parse::<Pfid>()
        .map(|pfid| pfid.to_string())
        .map_err(|error| ApiError::validation(field, format!("'{text}' is not a valid PFID: {error}")))
}

/// Like [`parse_pfid`] for a path segment: an id that cannot exist is reported as 404 would
/// hide the typo, so it is a 422 as well.
pub fn parse_path_id(kind: &str, text: &str) -> Result<String, ApiError> {
    parse_pfid(&format!("{kind} id"), text)
}
