//! Writing a code as digits and reading a typed code back: plain (0–9, zero-padded) or the
//! restricted set (1–4, two bits per digit, most significant first), as the reference's
//! `convert_to_4_digit_token` / `convert_from_4_digit_token`.

use super::chain::Scheme;
use super::decode::DecodeError;

/// The written token: zero-padded decimal, or one digit 1–4 per two bits.
pub(super) fn render(scheme: &Scheme, code: u64, restricted: bool) -> String {
    if restricted {
        let digits = scheme.restricted_digits;
        (0..digits)
            .map(|i| {
                let pair = (code >> (2 * (digits - 1 - i))) & 0b11;
                char::from(b'1' + pair as u8)
            })
            .collect()
    } else {
        format!("{code:0width$}", width = scheme.plain_digits)
    }
}

/// Refuses a typed code with a character that is not a digit of its set.
pub(super) fn check_characters(code: &str, restricted: bool) -> Result<(), DecodeError> {
    let allowed = |ch: char| {
        if restricted {
            matches!(ch, '1'..='4')
        } else {
            ch.is_ascii_digit()
        }
    };
    match code.chars().find(|&ch| !allowed(ch)) {
        Some(ch) => Err(DecodeError::BadCharacter { ch, restricted }),
        None => Ok(()),
    }
}

/// The number a typed code stands for. [`check_characters`] and the caller's length check have
/// passed, so the result fits: at most 12 decimal digits or 20 restricted digits (40 bits).
pub(super) fn parse(code: &str, restricted: bool) -> u64 {
    code.bytes().fold(0u64, |number, byte| {
        if restricted {
            (number << 2) | u64::from(byte.wrapping_sub(b'1') & 0b11)
        } else {
            number
                .wrapping_mul(10)
                .wrapping_add(u64::from(byte.wrapping_sub(b'0')))
        }
    })
}
