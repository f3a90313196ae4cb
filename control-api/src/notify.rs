//! Outbound SMS to customers: a keypad unit's token after a payment, and a reminder a few
//! days before its credit runs out.
//!
//! Why pluggable: every distributor uses its own SMS gateway (Africa's Talking, Twilio, an
//! operator's SMPP link). The platform calls [`SmsSender`]; the default [`LoggingSms`] writes
//! the message to the log and counts it, so a deployment without a gateway still sees what
//! would have been sent. Sending is best effort after the payment is durable: a failed SMS is
//! counted and logged, the token stays in the unit's log and can be re-sent by an Admin.

use sunledger_billing::keypad::IssuedToken;
use sunledger_billing::openpaygo::TokenKind;

/// A gateway that sends one SMS.
pub trait SmsSender: Send + Sync {
    /// Sends `text` to `to` (E.164); an error is logged and counted by the caller.
    fn send(&self, to: &str, text: &str) -> Result<(), SmsError>;
}

/// Why a gateway did not send.
#[derive(Debug, thiserror::Error)]
#[error("SMS gateway: {0}")]
pub struct SmsError(pub String);

/// The default gateway: logs each message (at info) instead of sending it.
#[derive(Debug, Default)]
pub struct LoggingSms;

impl SmsSender for LoggingSms {
    fn send(&self, to: &str, text: &str) -> Result<(), SmsError> {
        tracing::info!(to, text, "SMS (logging gateway, not sent)");
        Ok(())
    }
}

/// What a message is, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsKind {
    /// A token after a payment, a counter sync or a resend.
    Token,
    /// Credit runs out soon.
    LowCredit,
}

impl SmsKind {
    fn label(self) -> &'static str {
        match self {
            SmsKind::Token => "token",
            SmsKind::LowCredit => "low_credit",
        }
    }
}

/// Sends `text` to `phone` through `sender`, counting the outcome
/// (`sunledger_sms_sent_total` / `sunledger_sms_failed_total` by kind). A missing phone is
/// counted as skipped.
pub fn send(sender: &dyn SmsSender, kind: SmsKind, phone: Option<&str>, text: &str) {
    let Some(phone) = phone else {
        metrics::counter!("sunledger_sms_skipped_total", "kind" => kind.label()).increment(1);
        return;
    };
    match sender.send(phone, text) {
        Ok(()) => {
            metrics::counter!("sunledger_sms_sent_total", "kind" => kind.label()).increment(1)
        }
        Err(error) => {
            metrics::counter!("sunledger_sms_failed_total", "kind" => kind.label()).increment(1);
            tracing::warn!(%error, kind = kind.label(), "SMS not sent");
        }
    }
}

/// The message carrying `token` of unit `serial`, digits grouped in threes for typing.
pub fn token_message(serial: &str, token: &IssuedToken) -> String {
    let code = grouped(&token.code);
    match token.kind {
        TokenKind::AddTime => format!("{serial}: {} days added. Enter {code}", token.value),
        TokenKind::SetTime => format!("{serial}: {} days of credit. Enter {code}", token.value),
        TokenKind::DisablePayg => format!("{serial}: paid off, thank you! Enter {code}"),
        TokenKind::CounterSync => format!("{serial}: enter {code} to resynchronise"),
    }
}

/// The reminder that unit `serial`'s credit ends in `days` days.
pub fn low_credit_message(serial: &str, days: u64) -> String {
    match days {
        0 => format!("{serial}: your credit ends today. Pay to keep the power on."),
        1 => format!("{serial}: your credit ends tomorrow. Pay to keep the power on."),
        days => format!("{serial}: your credit ends in {days} days. Pay to keep the power on."),
    }
}

/// `123456789` → `123 456 789`.
fn grouped(code: &str) -> String {
    let digits: Vec<&str> = code
        .as_bytes()
        .chunks(3)
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect();
    digits.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sunledger_billing::keypad::TokenReason;

    #[test]
    fn a_token_message_groups_the_digits_and_says_what_it_does() {
        let token = IssuedToken {
            count: 2,
            kind: TokenKind::AddTime,
            value: 14,
            code: "123456789".into(),
            reason: TokenReason::PlanCompleted,
            issued_by: "m".into(),
            at_ms: 0,
        };
        assert_eq!(
            token_message("SL-1", &token),
            "SL-1: 14 days added. Enter 123 456 789"
        );
        assert_eq!(grouped("1234567890"), "123 456 789 0");
        assert_eq!(
            low_credit_message("SL-1", 2),
            "SL-1: your credit ends in 2 days. Pay to keep the power on."
        );
    }
}
