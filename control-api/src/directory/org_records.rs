//! Reading one organisation's records of a table keyed `(organisation id, record id)`, in key
//! order: the scan behind every paginated list, confined to the organisation's key range.

use std::ops::Bound;

use redb::ReadableTable;
use serde::de::DeserializeOwned;

use super::{DirectoryError, decode};

/// The records of `org_id` in `table`, in record-id order, starting after the id `after` if
/// given. Stops at the end of the organisation's key range, so another organisation's records
/// are never read.
pub(crate) fn org_records<'t, T: DeserializeOwned + 't>(
    table: &'t impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    org_id: &'t str,
    after: Option<&'t str>,
) -> Result<impl Iterator<Item = Result<T, DirectoryError>> + 't, DirectoryError> {
    let start = match after {
        Some(id) => Bound::Excluded((org_id, id)),
        None => Bound::Included((org_id, "")),
    };
    let entries = table.range::<(&str, &str)>((start, Bound::Unbounded))?;
    Ok(entries.map_while(move |entry| match entry {
        Err(error) => Some(Err(error.into())),
        Ok((key, value)) => (key.value().0 == org_id).then(|| decode(value.value())),
    }))
}
