//! Proves the instalment calendar: month-end clamping without drift, local-time anchoring in
//! zones east and west of UTC, DST gaps and overlaps resolved to the earliest valid instant, and
//! `due_instalments` returning each missed instalment exactly once, bounded per call.

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use chrono_tz::Tz;

use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn local(tz: Tz, text: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
    tz.from_local_datetime(&naive)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

fn last_day_of_month(year: i32, month: u32) -> u32 {
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(next_year, next_month, 1)
        .unwrap()
        .pred_opt()
        .unwrap()
        .day()
}

#[test]
fn monthly_instalments_clamp_31_january_to_28_february_then_back_to_31_march() {
    let anchor = utc("2027-01-31T10:00:00Z");
    let dues: Vec<_> = (1..=3)
        .map(|n| due_at(anchor, Period::Monthly, n, Tz::UTC))
        .collect();
    assert_eq!(
        dues,
        [
            Some(utc("2027-02-28T10:00:00Z")),
            Some(utc("2027-03-31T10:00:00Z")),
            Some(utc("2027-04-30T10:00:00Z")),
        ]
    );
}

#[test]
fn monthly_instalments_clamp_to_29_february_in_a_leap_year() {
    let anchor = utc("2028-01-31T10:00:00Z");
    assert_eq!(
        due_at(anchor, Period::Monthly, 1, Tz::UTC),
        Some(utc("2028-02-29T10:00:00Z"))
    );
    assert_eq!(
        due_at(anchor, Period::Monthly, 2, Tz::UTC),
        Some(utc("2028-03-31T10:00:00Z"))
    );
}

#[test]
fn monthly_instalments_never_drift_over_24_months() {
    for anchor_day in [28, 29, 30, 31] {
        let anchor = Tz::Africa__Nairobi
            .with_ymd_and_hms(2027, 1, anchor_day, 9, 15, 0)
            .unwrap()
            .with_timezone(&Utc);
        for n in 1..=24u32 {
            let due = due_at(anchor, Period::Monthly, n, Tz::Africa__Nairobi).unwrap();
            let due_local = due.with_timezone(&Tz::Africa__Nairobi);
            let month0 = n; // months after January 2027, zero-based from January
            let (year, month) = (2027 + (month0 / 12) as i32, month0 % 12 + 1);
            let day = anchor_day.min(last_day_of_month(year, month));
            assert_eq!(
                (due_local.year(), due_local.month(), due_local.day()),
                (year, month, day),
                "anchor day {anchor_day}, instalment {n}"
            );
            assert_eq!(
                due_local.time(),
                chrono::NaiveTime::from_hms_opt(9, 15, 0).unwrap()
            );
        }
    }
}

#[test]
fn daily_and_weekly_instalments_count_local_days() {
    let anchor = utc("2027-06-01T10:00:00Z");
    assert_eq!(
        due_at(anchor, Period::Daily, 1, Tz::UTC),
        Some(utc("2027-06-02T10:00:00Z"))
    );
    assert_eq!(
        due_at(anchor, Period::Weekly, 3, Tz::UTC),
        Some(utc("2027-06-22T10:00:00Z"))
    );
}

#[test]
fn nairobi_calendar_not_utc_decides_the_due_date() {
    // 00:30 on 31 January in Nairobi is still 30 January in UTC: the local day of month (31)
    // anchors the schedule, so February's instalment is on the 28th local, the 27th in UTC.
    let nairobi = Tz::Africa__Nairobi;
    let anchor = local(nairobi, "2027-01-31 00:30");
    assert_eq!(anchor, utc("2027-01-30T21:30:00Z"));
    assert_eq!(
        due_at(anchor, Period::Monthly, 1, nairobi),
        Some(utc("2027-02-27T21:30:00Z"))
    );
    assert_eq!(
        due_at(anchor, Period::Monthly, 2, nairobi),
        Some(utc("2027-03-30T21:30:00Z"))
    );
    // A UTC calendar would have given 28 February.
    assert_eq!(
        due_at(anchor, Period::Monthly, 1, Tz::UTC),
        Some(utc("2027-02-28T21:30:00Z"))
    );
}

#[test]
fn a_deposit_at_23_30_local_on_the_31st_falls_due_at_23_30_local() {
    let nairobi = Tz::Africa__Nairobi;
    let anchor = local(nairobi, "2027-03-31 23:30");
    assert_eq!(
        due_at(anchor, Period::Monthly, 1, nairobi),
        Some(local(nairobi, "2027-04-30 23:30"))
    );
    assert_eq!(
        due_at(anchor, Period::Daily, 1, nairobi),
        Some(local(nairobi, "2027-04-01 23:30"))
    );
    // The instalment is not due one minute before local 23:30, and is due at it.
    let first = due_at(anchor, Period::Monthly, 1, nairobi).unwrap();
    let minute = chrono::Duration::minutes(1);
    assert!(
        due_instalments(anchor, Period::Monthly, nairobi, 0, first - minute, None)
            .instalments
            .is_empty()
    );
    assert_eq!(
        due_instalments(anchor, Period::Monthly, nairobi, 0, first, None).instalments,
        [Instalment {
            index: 1,
            due_at: first
        }]
    );
}

#[test]
fn weekly_instalments_keep_local_time_across_a_dst_change() {
    let new_york = Tz::America__New_York;
    let anchor = local(new_york, "2027-03-06 12:00");
    assert_eq!(anchor, utc("2027-03-06T17:00:00Z"));
    assert_eq!(
        due_at(anchor, Period::Weekly, 1, new_york),
        Some(utc("2027-03-13T17:00:00Z"))
    );
    assert_eq!(
        due_at(anchor, Period::Weekly, 2, new_york),
        Some(utc("2027-03-20T16:00:00Z"))
    );
}

#[test]
fn a_wall_clock_time_skipped_by_dst_falls_due_at_the_end_of_the_gap() {
    // New York skips 02:00–03:00 EST on 14 March 2027.
    let new_york = Tz::America__New_York;
    let anchor = local(new_york, "2027-03-13 02:30");
    assert_eq!(
        due_at(anchor, Period::Daily, 1, new_york),
        Some(utc("2027-03-14T07:00:00Z"))
    );
    assert_eq!(
        due_at(anchor, Period::Daily, 2, new_york),
        Some(utc("2027-03-15T06:30:00Z"))
    );
    // London skips 01:00–02:00 GMT on 28 March 2027.
    let london = Tz::Europe__London;
    let anchor = local(london, "2027-03-27 01:30");
    assert_eq!(
        due_at(anchor, Period::Daily, 1, london),
        Some(utc("2027-03-28T01:00:00Z"))
    );
}

#[test]
fn an_ambiguous_wall_clock_time_falls_due_at_its_first_occurrence() {
    // New York repeats 01:00–02:00 on 7 November 2027 (EDT, then EST).
    let new_york = Tz::America__New_York;
    let anchor = local(new_york, "2027-11-06 01:30");
    assert_eq!(
        due_at(anchor, Period::Daily, 1, new_york),
        Some(utc("2027-11-07T05:30:00Z"))
    );
    assert_eq!(
        due_at(anchor, Period::Daily, 2, new_york),
        Some(utc("2027-11-08T06:30:00Z"))
    );
}

#[test]
fn missed_instalments_are_returned_once_each_then_none() {
    let anchor = utc("2027-06-01T10:00:00Z");
    let now = utc("2027-06-29T12:00:00Z");
    let due = due_instalments(anchor, Period::Weekly, Tz::UTC, 0, now, None);
    let indices: Vec<u32> = due.instalments.iter().map(|i| i.index).collect();
    assert_eq!(indices, [1, 2, 3, 4]);
    assert!(!due.more_due);
    let again = due_instalments(anchor, Period::Weekly, Tz::UTC, 4, now, None);
    assert_eq!(again, DueInstalments::default());
    let partly = due_instalments(anchor, Period::Weekly, Tz::UTC, 2, now, None);
    assert_eq!(
        partly
            .instalments
            .iter()
            .map(|i| i.index)
            .collect::<Vec<_>>(),
        [3, 4]
    );
}

#[test]
fn nothing_due_at_or_after_the_stop_instant_is_returned() {
    let anchor = utc("2027-06-01T10:00:00Z");
    let now = utc("2027-07-30T00:00:00Z");
    let stop = Some(utc("2027-06-15T10:00:00Z"));
    let due = due_instalments(anchor, Period::Weekly, Tz::UTC, 0, now, stop);
    assert_eq!(
        due.instalments.iter().map(|i| i.index).collect::<Vec<_>>(),
        [1]
    );
}

#[test]
fn one_call_returns_at_most_the_limit_and_says_more_are_due() {
    let anchor = utc("2000-01-01T00:00:00Z");
    let now = utc("2020-01-01T00:00:00Z");
    let due = due_instalments(anchor, Period::Daily, Tz::UTC, 0, now, None);
    assert_eq!(due.instalments.len(), INSTALMENTS_PER_CALL_MAX);
    assert!(due.more_due);
    let rest = due_instalments(anchor, Period::Daily, Tz::UTC, 4096, now, None);
    assert_eq!(rest.instalments.len(), 7305 - 4096);
    assert!(!rest.more_due);
}
