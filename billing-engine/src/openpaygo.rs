//! OpenPAYGO Token: the keypad codes that add or set a unit's paid time, generated here and
//! decoded the way a unit does. Pure: no I/O, no storage.
//!
//! Why it exists: units that are offline (or have no modem at all) are paid for by typing a
//! code. The server and the unit share a 16-byte [`TokenKey`] and a 9-digit starting code; each
//! token is a step further along a SipHash-2-4 chain over the starting code, with the value hidden
//! in its last digits. The server stores the count of the last token it issued ([`Token::count`]),
//! the unit stores the last count it accepted and the counts it has used ([`Decoder`]).
//!
//! This follows the reference implementation (the `openpaygo` Python package, 0.6.3:
//! `OpenPAYGOTokenEncoder`, `OpenPAYGOTokenShared`, `OpenPAYGOTokenSharedExtended`,
//! `OpenPAYGOTokenDecoder`) bit for bit on generation; the test vectors in
//! `tests/vectors/openpaygo-token-vectors.jsonl` are its output. Where the reference decoder is
//! ambiguous or buggy, [`decode`] says what it does instead.
//!
//! - [`generate`]: the token for the next count, and the count the server must store.
//! - [`decode`] and [`Decoder`]: a unit's check of a typed code, refusing used and old tokens.
//! - Formats: standard 9 digits (values 0–999) or extended 12 digits (0–999 999); either can be
//!   re-encoded with only the digits 1–4 for four-key keypads ([`TokenFormat`]).

mod chain;
mod decode;
mod digits;
mod encode;
#[cfg(test)]
mod tests;

use std::fmt;
use std::ops::RangeInclusive;

pub use chain::starting_code_from_key;
pub use decode::{
    DecodeError, Decoded, Decoder, MAX_TOKEN_JUMP, MAX_TOKEN_JUMP_COUNTER_SYNC,
    MAX_UNUSED_OLDER_TOKENS, decode,
};
pub use encode::{Token, TokenError, generate};

/// Highest time value of a standard token: the reference's `MAX_ACTIVATION_VALUE`, since
/// 996–999 are reserved for commands.
pub const MAX_STANDARD_VALUE: u32 = 995;

/// Highest time value of an extended token (6 value digits), less [`RESERVED_VALUES`].
pub const MAX_EXTENDED_VALUE: u32 = 999_999;

/// Values no time token may carry: 998 means "disable PAYG" and 999 "counter sync" in the
/// standard token, 996–997 are kept free by the reference. The extended token keeps the same hole
/// so that a unit can tell a command from a time value in both formats.
pub const RESERVED_VALUES: RangeInclusive<u32> = 996..=999;

/// The value a [`TokenKind::DisablePayg`] token carries on the wire.
pub(crate) const PAYG_DISABLE_VALUE: u64 = 998;

/// The value a [`TokenKind::CounterSync`] token carries on the wire.
pub(crate) const COUNTER_SYNC_VALUE: u64 = 999;

/// Highest starting code: starting codes are 9-digit numbers, like standard tokens.
pub const MAX_STARTING_CODE: u32 = 999_999_999;

/// What a token tells the unit to do.
///
/// On the wire the kind is the parity of the token's count (even: add time; odd: set time or a
/// command) together with the reserved values 998 and 999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TokenKind {
    /// Adds `value` (days, or whatever unit the operator chose) to the unit's remaining time.
    AddTime,
    /// Sets the remaining time to `value`, replacing what was left.
    SetTime,
    /// Unlocks the unit for good (paid off): PAYG is switched off. Carries no value.
    DisablePayg,
    /// Moves the unit's count forward when it has fallen behind the server. Carries no value.
    CounterSync,
}

impl TokenKind {
    /// Whether tokens of this kind carry a time value (the commands carry none).
    pub fn carries_value(self) -> bool {
        matches!(self, TokenKind::AddTime | TokenKind::SetTime)
    }
}

/// How a token is written: the unit's keypad and firmware decide, so it is per unit.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct TokenFormat {
    /// Extended token: 12 digits and values up to 999 999 instead of 9 digits and 999.
    pub extended: bool,
    /// Restricted digit set: only the digits 1–4, two bits per digit (15 digits standard, 20
    /// extended), for keypads with four keys.
    pub restricted_digits: bool,
}

impl TokenFormat {
    /// The usual 9-digit token with the digits 0–9.
    pub const STANDARD: TokenFormat = TokenFormat {
        extended: false,
        restricted_digits: false,
    };

    /// The 12-digit token with the digits 0–9.
    pub const EXTENDED: TokenFormat = TokenFormat {
        extended: true,
        restricted_digits: false,
    };

    /// The format the reference decoder assumes for a typed code: it knows whether the keypad
    /// has four keys and tells standard from extended by length (up to 9 digits standard, 10–12
    /// extended; restricted: up to 15 and 16–20). `None` when the code is empty or too long.
    pub fn infer(code: &str, restricted_digits: bool) -> Option<TokenFormat> {
        let (standard_max, extended_max) = if restricted_digits { (15, 20) } else { (9, 12) };
        let extended = match code.len() {
            0 => return None,
            n if n <= standard_max => false,
            n if n <= extended_max => true,
            _ => return None,
        };
        Some(TokenFormat {
            extended,
            restricted_digits,
        })
    }

    /// The highest time value this format can carry.
    pub fn max_value(self) -> u32 {
        if self.extended {
            MAX_EXTENDED_VALUE
        } else {
            MAX_STANDARD_VALUE
        }
    }
}

impl fmt::Display for TokenFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.extended {
            "extended"
        } else {
            "standard"
        })?;
        if self.restricted_digits {
            f.write_str(" restricted-digit")?;
        }
        Ok(())
    }
}

/// The 16-byte secret a unit shares with the server, the SipHash key of its token chain.
///
/// Not [`crate::units::DeviceSecret`] (the unit's MQTT password): this one is flashed into
/// keypad units. Its `Debug` never shows the bytes, so it can sit in structs that get logged.
#[derive(Clone)]
pub struct TokenKey([u8; 16]);

impl TokenKey {
    /// Reads the key as the reference stores it: 32 hexadecimal characters (either case).
    pub fn from_hex(hex_key: &str) -> Result<TokenKey, KeyError> {
        if hex_key.len() != 32 {
            return Err(KeyError::Length(hex_key.len()));
        }
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(hex_key, &mut bytes).map_err(|_| KeyError::NotHex)?;
        Ok(TokenKey(bytes))
    }

    /// The raw key, for the hash chain only.
    pub(crate) fn bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl From<[u8; 16]> for TokenKey {
    /// Wraps raw key bytes (e.g. freshly drawn from a CSPRNG).
    fn from(bytes: [u8; 16]) -> TokenKey {
        TokenKey(bytes)
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key must be exactly 32 hexadecimal characters (16 bytes).
    #[error("an OpenPAYGO key is 32 hexadecimal characters, got {0} characters")]
    Length(usize),
    /// A character is not a hexadecimal digit.
    #[error("the OpenPAYGO key is not hexadecimal")]
    NotHex,
}
