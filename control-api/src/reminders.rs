//! Low-credit reminders: a text to a keypad unit's customer a few days before the days they
//! paid for run out, so they can pay before the unit switches itself off.
//!
//! A keypad unit cannot tell the platform it is about to stop, so the platform counts: each
//! account knows when its days end ([`sunledger_billing::keypad::KeypadBilling`]). A task asks
//! the engine every `check_interval_ms` for the accounts ending within `days_before` days and
//! texts each customer once per credit end (the directory remembers, restarts included).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::directory::DirectoryError;
use crate::notify::{self, SmsKind};
use crate::platform::Platform;

/// When reminders go out. The TOML section is `[reminders]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReminderSettings {
    /// Days before a keypad unit's credit ends that its customer is texted; 0 sends none.
    pub days_before: u32,
    /// How often the accounts are checked, milliseconds.
    pub check_interval_ms: u64,
}

impl Default for ReminderSettings {
    fn default() -> Self {
        ReminderSettings {
            days_before: 2,
            check_interval_ms: 60_000,
        }
    }
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Checks for ending credit every interval until `shutdown` completes.
pub async fn run(
    platform: Platform,
    settings: ReminderSettings,
    shutdown: impl std::future::Future<Output = ()>,
) {
    if settings.days_before == 0 {
        return;
    }
    let mut ticks = tokio::time::interval(Duration::from_millis(settings.check_interval_ms.max(1)));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        let platform = platform.clone();
        let days = settings.days_before;
        match tokio::task::spawn_blocking(move || remind(&platform, days)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "low-credit reminders failed"),
            Err(error) => tracing::error!(%error, "low-credit reminder task panicked"),
        }
    }
}

/// Texts every customer whose keypad credit ends within `days_before` days and who was not
/// yet reminded of that end; returns how many were reminded.
pub fn remind(platform: &Platform, days_before: u32) -> Result<usize, DirectoryError> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        });
    let horizon_ms = now_ms.saturating_add(i64::from(days_before).saturating_mul(DAY_MS));
    let mut reminded = 0;
    for ending in platform.engine.credit_ending(horizon_ms)? {
        let directory = &platform.directory;
        if !directory.reminder_due(&ending.serial, ending.credit_until_ms)? {
            continue;
        }
        let phone = directory.customer_phone(&ending.org, &ending.serial)?;
        // Rounded up, as the unit counts: a day begun is a day left.
        let left_ms = (ending.credit_until_ms - now_ms).max(0).unsigned_abs();
        let days_left = left_ms.div_ceil(DAY_MS.unsigned_abs());
        let text = notify::low_credit_message(&ending.serial, days_left);
        notify::send(&*platform.sms, SmsKind::LowCredit, phone.as_deref(), &text);
        directory.mark_reminded(&ending.serial, ending.credit_until_ms)?;
        reminded += 1;
    }
    Ok(reminded)
}
