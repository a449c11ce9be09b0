//! Pages of lists: one `limit` rule for every paged call.

use crate::{
    config::Limits,
    logic::{Error, Page, Result},
    store::StoreResult,
};

/// The `limit` of a paged call: 0 takes the default, anything outside 1..=max is refused.
pub fn page_limit(limits: &Limits, limit: i32) -> Result<u32> {
    let max = limits.max_page_size;
    match limit {
        0 => Ok(limits.default_page_size),
        1.. if limit as u32 <= max => Ok(limit as u32),
        _ => Err(Error::invalid(format!("limit must be between 1 and {max} (0 for the default), got {limit}"))),
    }
}

/// Reads one page of a list: `read` is asked for one more item than the page holds
/// (`limit`, checked by `page_limit`), and that one only says that more follow.
pub async fn page<T, F, Fut>(limits: &Limits, limit: i32, read: F) -> Result<Page<T>>
where
    F: FnOnce(u32) -> Fut,
    Fut: Future<Output = StoreResult<Vec<T>>>,
{
    let limit = page_limit(limits, limit)?;
    let mut items = read(limit + 1).await?;
    let has_more = items.len() > limit as usize;
    items.truncate(limit as usize);
    Ok(Page { items, has_more })
}
