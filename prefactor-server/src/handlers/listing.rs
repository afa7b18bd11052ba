//! List query parameters (`pagination[offset]`, `pagination[page_size]`, `sorting`) and the
//! list envelope's `pagination` / `sorting` objects.

use prefactor_protocol::{ListResponse, Pagination, SortDirection, Sorting};
use serde::Serialize;

use crate::db::idempotency::StoredAnswer;
use crate::error::ApiError;

/// Largest page (as the real API).
pub const MAX_PAGE_SIZE: u64 = 100;
/// Page size when none is asked for: the maximum, because local tests usually want everything.
pub const DEFAULT_PAGE_SIZE: u64 = 100;

/// Largest accepted `pagination[offset]`: SQLite's largest integer.
pub const MAX_OFFSET: u64 = i64::MAX as u64;

/// Query parameters as (name, value) pairs.
pub type QueryPairs = Vec<(String, String)>;

/// The value of parameter `name`, if present.
pub fn param<'a>(query: &'a QueryPairs, name: &str) -> Option<&'a str> {
    query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

/// A requested page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 0-based offset of the first item.
    pub offset: u64,
    /// Items per page, 1..=100.
    pub page_size: u64,
}

/// Reads `pagination[offset]` and `pagination[page_size]`.
///
/// ```
/// use prefactor_server::handlers::listing::page_request;
/// let query = vec![("pagination[page_size]".to_string(), "101".to_string())];
/// assert_eq!(page_request(&query).unwrap_err().status, 422);
/// let query = vec![("pagination[offset]".to_string(), u64::MAX.to_string())];
/// assert_eq!(page_request(&query).unwrap_err().status, 422);
/// ```
pub fn page_request(query: &QueryPairs) -> Result<PageRequest, ApiError> {
    let number = |name: &str, default: u64| -> Result<u64, ApiError> {
        match param(query, name) {
            None => Ok(default),
            Some(text) => text
                .parse::<u64>()
                .map_err(|_| ApiError::validation(name, format!("'{text}' is not a non-negative integer"))),
        }
    };
    let offset = number("pagination[offset]", 0)?;
    // SQLite counts in i64: a larger offset would wrap to a negative one (page one).
    if offset > MAX_OFFSET {
        return Err(ApiError::validation("pagination[offset]", format!("must be at most {MAX_OFFSET} (got {offset})")));
    }
    let page_size = number("pagination[page_size]", DEFAULT_PAGE_SIZE)?;
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(ApiError::validation(
            "pagination[page_size]",
            format!("must be between 1 and {MAX_PAGE_SIZE} (got {page_size})"),
        ));
    }
    Ok(PageRequest { offset, page_size })
}

/// Reads the sort order: `sorting=field` / `sorting=-field`, or the dashboard's
/// `sorting[field]=id&sorting[direction]=desc`, allowing only `allowed` fields.
///
/// ```
/// use prefactor_protocol::{SortDirection, Sorting};
/// use prefactor_server::handlers::listing::sorting;
/// let default = Sorting { field: "id".into(), direction: SortDirection::Asc };
/// let query = vec![("sorting[field]".to_string(), "id".to_string()), ("sorting[direction]".to_string(), "desc".to_string())];
/// assert_eq!(sorting(&query, &["id"], default.clone()).unwrap().direction, SortDirection::Desc);
/// let query = vec![("sorting".to_string(), "-id".to_string())];
/// assert_eq!(sorting(&query, &["id"], default).unwrap().direction, SortDirection::Desc);
/// ```
pub fn sorting(query: &QueryPairs, allowed: &[&str], default: Sorting) -> Result<Sorting, ApiError> {
    let (field, direction) = match (param(query, "sorting"), param(query, "sorting[field]")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation("sorting", "give either sorting or sorting[field], not both"));
        }
        (Some(text), None) => match text.strip_prefix('-') {
            Some(field) => (field, SortDirection::Desc),
            None => (text.strip_prefix('+').unwrap_or(text), SortDirection::Asc),
        },
        (None, Some(field)) => (field, bracket_direction(query)?),
        (None, None) => match param(query, "sorting[direction]") {
            None => return Ok(default),
            Some(_) => (default.field.as_str(), bracket_direction(query)?),
        },
    };
    if !allowed.contains(&field) {
        return Err(ApiError::validation(
            "sorting",
            format!("cannot sort by '{field}'; allowed: {}", allowed.join(", ")),
        ));
    }
    Ok(Sorting { field: field.to_string(), direction })
}

/// `sorting[direction]`: `asc` (the default) or `desc`, in any case.
fn bracket_direction(query: &QueryPairs) -> Result<SortDirection, ApiError> {
    match param(query, "sorting[direction]") {
        None => Ok(SortDirection::Asc),
        Some(text) if text.eq_ignore_ascii_case("asc") => Ok(SortDirection::Asc),
        Some(text) if text.eq_ignore_ascii_case("desc") => Ok(SortDirection::Desc),
        Some(text) => Err(ApiError::validation("sorting[direction]", format!("must be asc or desc, got '{text}'"))),
    }
}

/// The `pagination` object for a page of `returned` items out of `total`.
///
/// ```
/// use prefactor_server::handlers::listing::{pagination, PageRequest};
/// let page = pagination(PageRequest { offset: 20, page_size: 20 }, 42, 20);
/// assert_eq!((page.item_start, page.item_end, page.page_index, page.page_count), (21, 40, 2, 3));
/// assert_eq!((page.next_page_offset, page.previous_page_offset), (Some(40), Some(0)));
/// ```
pub fn pagination(page: PageRequest, total: u64, returned: u64) -> Pagination {
    let PageRequest { offset, page_size } = page;
    Pagination {
        item_count: total,
        item_start: if returned == 0 { 0 } else { offset.saturating_add(1) },
        item_end: offset.saturating_add(returned),
        page_count: total.div_ceil(page_size.max(1)),
        page_index: (offset / page_size.max(1)).saturating_add(1),
        page_offset: offset,
        page_size,
        next_page_offset: offset.checked_add(page_size).filter(|next| *next < total),
        previous_page_offset: (offset > 0).then(|| offset.saturating_sub(page_size)),
    }
}

/// Serializes a list envelope.
pub fn list_answer<T: Serialize>(
    rows: Vec<T>,
    page: PageRequest,
    total: u64,
    sorting: Sorting,
) -> Result<StoredAnswer, ApiError> {
    let returned = rows.len() as u64;
    let envelope = ListResponse {
        status: "success".to_string(),
        summaries: rows,
        pagination: Some(pagination(page, total, returned)),
        sorting: Some(sorting),
    };
    Ok((200, serde_json::to_string(&envelope).map_err(ApiError::internal)?))
}
