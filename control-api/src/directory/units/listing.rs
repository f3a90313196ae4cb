//! Reading units: one unit with its customer history, and the list ordered as the Home CRM
//! shows it, by current customer id (units nobody has come last), then serial.
//!
//! The current customer lives in the installations' assignment history, not in the unit
//! record, so a page is built by reading the organisation's units and their current
//! assignment, sorting, and taking the page after the token's position: one read
//! transaction, O(units of the organisation) per page. Positions are (customer, serial), so a
//! unit that changes customer between pages may move past or behind the reader, but no other
//! unit repeats or is skipped.

use std::cmp::Ordering;

use redb::ReadTransaction;

use super::super::installations::{UnitAssignment, unit_history};
use super::super::org_records::org_records;
use super::super::{Directory, DirectoryError};
use super::{ControlUnit, EnableStatus, HeldUnit, UNITS, serial, unit_in};
use crate::pagination::{Page, PageKey, PageRequest};
use crate::search;

/// Which units a list shows; the default shows all.
#[derive(Clone, Debug, Default)]
pub struct UnitFilter {
    /// Only serials starting with this, case-insensitively (field `serial_prefix`).
    pub serial_prefix: String,
    /// Only units with this enable status.
    pub enable_status: Option<EnableStatus>,
}

/// A unit's place in the list: customers in id order, then units nobody has, each by serial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitPosition {
    /// The current customer's id; `None` sorts after every customer.
    pub customer_id: Option<String>,
    /// The unit's serial.
    pub serial: String,
}

impl Ord for UnitPosition {
    fn cmp(&self, other: &Self) -> Ordering {
        let held = |position: &UnitPosition| position.customer_id.is_some();
        held(other)
            .cmp(&held(self))
            .then_with(|| self.customer_id.cmp(&other.customer_id))
            .then_with(|| self.serial.cmp(&other.serial))
    }
}

impl PartialOrd for UnitPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Encoded as a held flag, the customer id, a NUL and the serial: neither ids nor serials
/// contain NUL.
impl PageKey for UnitPosition {
    const LIST: u8 = 21;

    fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = vec![u8::from(self.customer_id.is_some())];
        bytes.extend(self.customer_id.as_deref().unwrap_or("").as_bytes());
        bytes.push(0);
        bytes.extend(self.serial.as_bytes());
        bytes
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (&held, rest) = bytes.split_first()?;
        let separator = rest.iter().position(|&byte| byte == 0)?;
        let customer_id = String::from_utf8(rest[..separator].to_vec()).ok()?;
        let serial = String::from_utf8(rest[separator + 1..].to_vec()).ok()?;
        match held {
            1 => Some(UnitPosition {
                customer_id: Some(customer_id),
                serial,
            }),
            0 if customer_id.is_empty() => Some(UnitPosition {
                customer_id: None,
                serial,
            }),
            _ => None,
        }
    }
}

impl HeldUnit {
    /// The unit's place in the list.
    pub fn position(&self) -> UnitPosition {
        UnitPosition {
            customer_id: self
                .current
                .as_ref()
                .map(|current| current.customer_id.clone()),
            serial: self.unit.serial.clone(),
        }
    }
}

impl Directory {
    /// Unit `serial` of `org_id` with every customer it was assigned to, oldest first.
    pub fn unit(
        &self,
        org_id: &str,
        serial_raw: &str,
    ) -> Result<(HeldUnit, Vec<UnitAssignment>), DirectoryError> {
        let serial = serial("serial", serial_raw)?;
        let txn = self.read()?;
        let unit = unit_in(&txn.open_table(UNITS)?, org_id, serial)?;
        let history = unit_history(&txn, org_id, serial)?;
        let held = HeldUnit {
            current: active(&history),
            unit,
        };
        Ok((held, history))
    }

    /// One page of `org_id`'s units that `filter` lets through, in list order.
    pub fn units(
        &self,
        org_id: &str,
        filter: &UnitFilter,
        page: &PageRequest<UnitPosition>,
    ) -> Result<Page<HeldUnit>, DirectoryError> {
        let prefix = search::text("serial_prefix", &filter.serial_prefix)?;
        let txn = self.read()?;
        let units = txn.open_table(UNITS)?;
        let mut listed = Vec::new();
        for unit in org_records::<ControlUnit>(&units, org_id, None)? {
            let unit = unit?;
            let shown = search::starts_with(&unit.serial, &prefix)
                && filter
                    .enable_status
                    .is_none_or(|status| status == unit.enable_status);
            if shown {
                listed.push(held(&txn, org_id, unit)?);
            }
        }
        listed.sort_by_cached_key(HeldUnit::position);
        let after = listed.partition_point(|unit| {
            page.after
                .as_ref()
                .is_some_and(|after| unit.position() <= *after)
        });
        page.page(listed.into_iter().skip(after).map(Ok), HeldUnit::position)
    }
}

/// `unit` with its current customer.
fn held(
    txn: &ReadTransaction,
    org_id: &str,
    unit: ControlUnit,
) -> Result<HeldUnit, DirectoryError> {
    let history = unit_history(txn, org_id, &unit.serial)?;
    Ok(HeldUnit {
        current: active(&history),
        unit,
    })
}

/// The assignment without an end: the customer who has the unit now.
fn active(history: &[UnitAssignment]) -> Option<UnitAssignment> {
    history
        .iter()
        .rfind(|assignment| assignment.end_ms.is_none())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(customer_id: Option<&str>, serial: &str) -> UnitPosition {
        UnitPosition {
            customer_id: customer_id.map(str::to_owned),
            serial: serial.to_owned(),
        }
    }

    #[test]
    fn customers_come_in_id_order_and_units_nobody_has_last() {
        let mut positions = vec![
            position(None, "A"),
            position(Some("cus_b"), "A"),
            position(Some("cus_a"), "Z"),
            position(None, "0"),
            position(Some("cus_a"), "B"),
        ];
        positions.sort();
        assert_eq!(
            positions,
            vec![
                position(Some("cus_a"), "B"),
                position(Some("cus_a"), "Z"),
                position(Some("cus_b"), "A"),
                position(None, "0"),
                position(None, "A"),
            ]
        );
    }

    #[test]
    fn positions_survive_their_page_token_bytes() {
        for original in [position(Some("cus_1"), "SL-1"), position(None, "SL-2")] {
            let bytes = original.to_bytes();
            assert_eq!(UnitPosition::from_bytes(&bytes), Some(original));
        }
        assert_eq!(UnitPosition::from_bytes(&[0, b'x', 0, b'S']), None);
        assert_eq!(UnitPosition::from_bytes(&[1, b'x']), None);
        assert_eq!(UnitPosition::from_bytes(&[]), None);
    }
}
