//! The instalment calendar: when each instalment of an instalment-based tariff falls due.
//!
//! Instalment `n` (counting from 1) falls due `n` periods after the anchor, the first credit
//! deposit, at the same local wall-clock time in the organisation's time zone. Every due instant
//! is computed from the anchor and `n`, never from the previous due date, so monthly dates clamp
//! to short months (31 Jan → 28/29 Feb → 31 Mar) without drifting.
//!
//! Wall-clock times that a DST change makes ambiguous or skips are resolved to the earliest valid
//! instant: for an ambiguous time (clocks turned back) the first of its two occurrences; for a
//! skipped time (clocks turned forward) the first instant after the gap, which is the transition
//! itself (02:30 on a day New York skips 02:00–03:00 resolves to 03:00 EDT).

use chrono::{DateTime, Days, LocalResult, Months, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::tariff::Period;

/// Most instalments one call to [`due_instalments`] returns. Daily instalments missed during an
/// eleven-year outage still fit; beyond that the caller is told more are due and calls again,
/// so one call never builds an unbounded list.
pub const INSTALMENTS_PER_CALL_MAX: usize = 4096;

/// Half-width of the window searched for the end of a DST gap, in seconds. UTC offsets lie
/// within −12 h … +14 h, so a wall-clock time is always reached within 15 h either side of the
/// same digits read as UTC.
const GAP_SEARCH_HALF_WIDTH_S: i64 = 15 * 3600;

/// One instalment that has fallen due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instalment {
    /// 1-based index; instalment `n` is due `n` periods after the anchor. The index is the
    /// instalment's idempotency key on the ledger.
    pub index: u32,
    /// The instant it falls due.
    pub due_at: DateTime<Utc>,
}

/// The instalments that [`due_instalments`] found, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DueInstalments {
    /// Due instalments not yet applied, at most [`INSTALMENTS_PER_CALL_MAX`].
    pub instalments: Vec<Instalment>,
    /// Whether the per-call limit cut the list short, so the caller should call again.
    pub more_due: bool,
}

/// Maps a local wall-clock time to an instant, resolving ambiguous times to the earlier
/// occurrence and skipped times to the end of the gap (see the module documentation). `None`
/// only outside chrono's representable range.
pub fn resolve_local(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at.with_timezone(&Utc)),
        LocalResult::None => end_of_gap(local, tz),
    }
}

/// First instant whose local time is at or after `local`, for a `local` inside a DST gap:
/// a bounded binary search (≤ 17 steps) over whole seconds, where local time increases.
fn end_of_gap(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    let local_at = |seconds: i64| Some(tz.timestamp_opt(seconds, 0).single()?.naive_local());
    let digits_as_utc = local.and_utc().timestamp();
    // Invariant: local_at(low) < local ≤ local_at(high).
    let mut low = digits_as_utc.checked_sub(GAP_SEARCH_HALF_WIDTH_S)?;
    let mut high = digits_as_utc.checked_add(GAP_SEARCH_HALF_WIDTH_S)?;
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if local_at(middle)? < local {
            low = middle;
        } else {
            high = middle;
        }
    }
    DateTime::from_timestamp(high, 0)
}

/// The instant instalment `index` falls due: `index` periods after `anchor` on the local
/// calendar of `tz`, at the anchor's local wall-clock time. `None` only for dates beyond
/// chrono's range (hundreds of thousands of years).
pub fn due_at(anchor: DateTime<Utc>, period: Period, index: u32, tz: Tz) -> Option<DateTime<Utc>> {
    let anchor_local = anchor.with_timezone(&tz).naive_local();
    let date = anchor_local.date();
    let due_date = match period {
        Period::Daily => date.checked_add_days(Days::new(u64::from(index)))?,
        Period::Weekly => date.checked_add_days(Days::new(u64::from(index) * 7))?,
        Period::Monthly => date.checked_add_months(Months::new(index))?,
    };
    resolve_local(due_date.and_time(anchor_local.time()), tz)
}

/// Every instalment after the first `applied` that has fallen due by `now` (due at or before
/// it) and before `stop` (the plan's completion instant: nothing due at or after it is ever
/// charged), oldest first, at most [`INSTALMENTS_PER_CALL_MAX`]. Because the list starts after
/// `applied`, applying it and counting it makes a repeated call return nothing.
pub fn due_instalments(
    anchor: DateTime<Utc>,
    period: Period,
    tz: Tz,
    applied: u32,
    now: DateTime<Utc>,
    stop: Option<DateTime<Utc>>,
) -> DueInstalments {
    let mut found = DueInstalments::default();
    let mut index = applied;
    loop {
        let Some(next) = index.checked_add(1) else {
            return found;
        };
        let Some(due) = due_at(anchor, period, next, tz) else {
            return found;
        };
        if due > now || stop.is_some_and(|stop| due >= stop) {
            return found;
        }
        if found.instalments.len() == INSTALMENTS_PER_CALL_MAX {
            found.more_due = true;
            return found;
        }
        found.instalments.push(Instalment {
            index: next,
            due_at: due,
        });
        index = next;
    }
}

#[cfg(test)]
mod tests;
