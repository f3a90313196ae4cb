//! A partition's units in memory: a dense list of (serial, unit) slots and an index from
//! serial to slot.
//!
//! Every device event finds its unit by serial, and at 10^5 units and more each lookup is a
//! few trips to main memory. The index keeps its entries small, with the serial inline
//! ([`CompactString`] holds up to 24 bytes without a heap allocation), so finding a slot
//! mostly stays in the CPU caches; and a batch remembers the slots it changed, so committing
//! it looks nothing up again. Each slot also says since which unit log row the unit has been
//! changed without a checkpoint (see [`super::unit_log`]).

use compact_str::CompactString;
use hashbrown::HashMap;

use super::Unit;

/// Where a unit is in [`HotUnits`]; valid until a unit is removed.
pub(super) type Slot = usize;

/// The units one partition owns, by serial.
#[derive(Default)]
pub(super) struct HotUnits {
    index: HashMap<CompactString, Slot>,
    slots: Vec<Held>,
}

/// One unit in memory. In declared order, so the serial shares a cache line with the start
/// of the unit: commits read both, a batch after they were last touched.
#[repr(C)]
struct Held {
    serial: CompactString,
    unit: Unit,
    /// The first unit log row the unit went into since its last checkpoint; `None` while its
    /// checkpoint is its state.
    logged_since: Option<u64>,
}

impl HotUnits {
    /// The slot of `serial`, if the partition holds it.
    pub(super) fn slot(&self, serial: &str) -> Option<Slot> {
        self.index.get(serial).copied()
    }

    /// Whether `slot` holds `serial`: checks a slot remembered elsewhere, which a removal
    /// may have given to another unit.
    pub(super) fn holds_at(&self, slot: Slot, serial: &str) -> bool {
        self.slots
            .get(slot)
            .is_some_and(|held| held.serial == serial)
    }

    /// The slot of `serial`, made with an empty unit if the partition did not hold it.
    pub(super) fn slot_or_insert(&mut self, serial: &str) -> Slot {
        if let Some(slot) = self.slot(serial) {
            return slot;
        }
        self.push(serial, Unit::default())
    }

    /// How many units are held.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The serial and unit in `slot`.
    pub(super) fn at(&self, slot: Slot) -> (&str, &Unit) {
        let held = &self.slots[slot];
        (&held.serial, &held.unit)
    }

    /// The unit in `slot`, to change.
    pub(super) fn at_mut(&mut self, slot: Slot) -> &mut Unit {
        &mut self.slots[slot].unit
    }

    /// The serial and unit in `slot`, the unit to change. The serial is read from beside the
    /// unit, in the same cache lines, rather than from the event, elsewhere in memory.
    pub(super) fn held_mut(&mut self, slot: Slot) -> (&str, &mut Unit) {
        let held = &mut self.slots[slot];
        (&held.serial, &mut held.unit)
    }

    /// The first unit log row the unit in `slot` went into since its last checkpoint.
    pub(super) fn logged_since(&self, slot: Slot) -> Option<u64> {
        self.slots[slot].logged_since
    }

    /// Records since which row the unit in `slot` waits for a checkpoint (`None`: it has one).
    pub(super) fn set_logged_since(&mut self, slot: Slot, row: Option<u64>) {
        self.slots[slot].logged_since = row;
    }

    /// The unit `serial`.
    pub(super) fn get(&self, serial: &str) -> Option<&Unit> {
        self.slot(serial).map(|slot| &self.slots[slot].unit)
    }

    /// The unit `serial`, to change.
    pub(super) fn get_mut(&mut self, serial: &str) -> Option<&mut Unit> {
        self.slot(serial).map(|slot| &mut self.slots[slot].unit)
    }

    /// Puts `unit` in place of `serial`'s, or adds it.
    pub(super) fn insert(&mut self, serial: &str, unit: Unit) {
        match self.slot(serial) {
            Some(slot) => self.slots[slot].unit = unit,
            None => {
                self.push(serial, unit);
            }
        }
    }

    /// Takes `serial` out. The last slot moves into its place, so earlier slots stay valid
    /// but the last one does not.
    pub(super) fn remove(&mut self, serial: &str) -> Option<Unit> {
        let slot = self.index.remove(serial)?;
        let removed = self.slots.swap_remove(slot);
        if let Some(moved) = self.slots.get(slot) {
            self.index.insert(moved.serial.clone(), slot);
        }
        Some(removed.unit)
    }

    /// Every (serial, unit), in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &Unit)> {
        self.slots
            .iter()
            .map(|held| (held.serial.as_str(), &held.unit))
    }

    /// Every unit, in no particular order.
    pub(super) fn values(&self) -> impl Iterator<Item = &Unit> {
        self.slots.iter().map(|held| &held.unit)
    }

    fn push(&mut self, serial: &str, unit: Unit) -> Slot {
        let slot = self.slots.len();
        let serial = CompactString::from(serial);
        self.index.insert(serial.clone(), slot);
        self.slots.push(Held {
            serial,
            unit,
            logged_since: None,
        });
        slot
    }
}

impl FromIterator<(String, Unit)> for HotUnits {
    fn from_iter<I: IntoIterator<Item = (String, Unit)>>(units: I) -> HotUnits {
        let mut hot = HotUnits::default();
        for (serial, unit) in units {
            hot.insert(&serial, unit);
        }
        hot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(consumed_wh: u64) -> Unit {
        let mut unit = Unit::default();
        unit.state.consumed_wh = consumed_wh;
        unit
    }

    #[test]
    fn slots_follow_their_serials_through_removals() {
        let mut hot: HotUnits = (0..5)
            .map(|n| (format!("SL-{n}"), unit(n)))
            .collect::<HotUnits>();
        let long = "A-SERIAL-LONGER-THAN-TWENTY-FOUR-BYTES";
        hot.insert(long, unit(99));
        assert_eq!(hot.remove("SL-1").map(|u| u.state.consumed_wh), Some(1));
        assert_eq!(hot.remove("SL-1"), None);
        let slot = hot.slot(long).expect("moved, still found");
        assert!(hot.holds_at(slot, long));
        assert!(!hot.holds_at(slot + 1, long), "past the end");
        assert!(!hot.holds_at(hot.slot("SL-0").expect("held"), long));
        assert_eq!(hot.at(slot), (long, &unit(99)));
        hot.insert("SL-3", unit(33));
        assert_eq!(hot.get("SL-3"), Some(&unit(33)));
        hot.get_mut("SL-4").expect("held").state.consumed_wh = 44;
        let new = hot.slot_or_insert("SL-NEW");
        assert_eq!(hot.slot_or_insert("SL-NEW"), new);
        hot.at_mut(new).state.consumed_wh = 7;
        let mut all: Vec<(String, u64)> = hot
            .iter()
            .map(|(serial, unit)| (serial.to_owned(), unit.state.consumed_wh))
            .collect();
        all.sort();
        let expected = [
            ("A-SERIAL-LONGER-THAN-TWENTY-FOUR-BYTES", 99),
            ("SL-0", 0),
            ("SL-2", 2),
            ("SL-3", 33),
            ("SL-4", 44),
            ("SL-NEW", 7),
        ];
        assert_eq!(all, expected.map(|(serial, wh)| (serial.to_owned(), wh)));
        assert_eq!(hot.values().count(), 6);
    }
}
