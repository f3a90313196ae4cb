//! Checking a typed code the way a unit does (`OpenPAYGOTokenDecoder`).
//!
//! The unit walks its chain from count 0 up to a little past its last count, looking for the
//! code. A match above the last count is new; a match at or below it is accepted only if it is
//! an add-time token among the last [`MAX_UNUSED_OLDER_TOKENS`] counts that was never used (the
//! customer may type two add-time codes out of order). Everything else is refused.
//!
//! Where this differs from the reference decoder, on purpose:
//! - The format is given, not guessed from the length; [`TokenFormat::infer`] guesses as the
//!   reference does, and [`Decoder`] uses it. A code whose length belongs to the other format, or
//!   with a character outside the digit set, is refused as malformed (the reference reads a
//!   restricted code's 0 or 5–9 as garbage bits).
//! - Odd counts with the values 998 and 999 are [`TokenKind::DisablePayg`] and
//!   [`TokenKind::CounterSync`] in the extended format too, as [`super::generate`] writes them
//!   (the reference's extended decoder calls them set-time with value 998 and 999, which the
//!   reference encoder never writes for set-time in the standard format).
//! - A counter-sync token whose count is in `used_counts` is refused as used; the reference takes
//!   it again, and its device simulator then moves the count back, which makes old tokens
//!   valid again. Here the last count never goes down ([`Decoded::last_count`]).
//! - An empty `used_counts` is a unit that has used nothing yet; the reference stops tracking
//!   used counts for good when handed an empty list.

use super::chain::Scheme;
use super::{
    COUNTER_SYNC_VALUE, MAX_STARTING_CODE, PAYG_DISABLE_VALUE, TokenFormat, TokenKey, TokenKind,
    digits,
};

/// How far past its last count a unit looks for a token (`MAX_TOKEN_JUMP`): the server may have
/// issued tokens the customer never typed.
pub const MAX_TOKEN_JUMP: u32 = 64;

/// How far a standard counter-sync token may jump (`MAX_TOKEN_JUMP_COUNTER_SYNC`), since its job
/// is to catch up a unit that fell behind.
pub const MAX_TOKEN_JUMP_COUNTER_SYNC: u32 = 100;

/// How many counts below the highest used one are remembered (`MAX_UNUSED_OLDER_TOKENS`): an
/// unused add-time token in that window is still accepted, and anything older is refused.
pub const MAX_UNUSED_OLDER_TOKENS: u32 = 16;

/// An accepted token and the unit's state after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// What to do.
    pub kind: TokenKind,
    /// The time value for [`TokenKind::AddTime`] and [`TokenKind::SetTime`], as given to
    /// [`super::generate`]; 0 for the commands, which carry none. An add-time token written by
    /// another encoder may carry 996–999 (the reference's extended encoder allows them): the
    /// value is passed on as is.
    pub value: u32,
    /// The count the token was made at.
    pub count: u32,
    /// The unit's last count from now on: the higher of the old one and [`Self::count`].
    pub last_count: u32,
    /// The used counts the unit must keep from now on (`update_used_counts`), ascending.
    pub used_counts: Vec<u32>,
}

/// Why a code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A character outside the digit set of the format (0–9, or 1–4 for restricted keypads).
    #[error("{ch:?} is not a digit of the {} set", if *restricted { "1-4" } else { "0-9" })]
    BadCharacter {
        /// The offending character.
        ch: char,
        /// Whether the restricted digit set was expected.
        restricted: bool,
    },
    /// The code's length does not belong to the format.
    #[error("a code of {len} digits is not a {format} token")]
    WrongLength {
        /// Characters typed.
        len: usize,
        /// The format expected.
        format: TokenFormat,
    },
    /// Starting codes are 9-digit numbers.
    #[error("starting code {0} has more than 9 digits")]
    StartingCodeOutOfRange(u32),
    /// Not a token of this unit, or too far ahead of its count.
    #[error("invalid token")]
    Invalid,
    /// A genuine token of this unit that was already used, or is too old to be accepted.
    #[error("token already used or too old")]
    AlreadyUsed,
}

/// Checks `code` for a unit whose last accepted count is `last_count` and whose remembered used
/// counts are `used_counts`. On success the [`Decoded`] carries the new state to store.
///
/// The cost is one SipHash per count up to `last_count` + 65 (+ 101 for a standard counter
/// sync), as in the reference.
pub fn decode(
    key: &TokenKey,
    starting_code: u32,
    last_count: u32,
    used_counts: &[u32],
    code: &str,
    format: TokenFormat,
) -> Result<Decoded, DecodeError> {
    if starting_code > MAX_STARTING_CODE {
        return Err(DecodeError::StartingCodeOutOfRange(starting_code));
    }
    digits::check_characters(code, format.restricted_digits)?;
    if TokenFormat::infer(code, format.restricted_digits) != Some(format) {
        return Err(DecodeError::WrongLength {
            len: code.len(),
            format,
        });
    }
    let token = digits::parse(code, format.restricted_digits);

    let scheme = Scheme::of(format.extended);
    let starting_code = u64::from(starting_code);
    let token_base = scheme.base(token);
    let wire_value = scheme.decode_base(scheme.base(starting_code), token_base);
    let jump = if !format.extended && wire_value == COUNTER_SYNC_VALUE {
        MAX_TOKEN_JUMP_COUNTER_SYNC
    } else {
        MAX_TOKEN_JUMP
    };
    let end = u64::from(last_count) + u64::from(jump) + 1;

    let mut current = scheme.with_base(starting_code, token_base);
    let mut seen_used = false;
    for count in 0..end {
        let Ok(count32) = u32::try_from(count) else {
            break;
        };
        if scheme.with_base(current, token_base) == token {
            let kind = kind_at(count32, wire_value);
            if count_is_valid(count32, last_count, wire_value, kind, used_counts) {
                return Ok(Decoded {
                    kind,
                    value: if kind.carries_value() {
                        wire_value as u32
                    } else {
                        0
                    },
                    count: count32,
                    last_count: last_count.max(count32),
                    used_counts: update_used_counts(used_counts, wire_value, count32, kind),
                });
            }
            seen_used = true;
        }
        current = scheme.next(current, key);
    }
    Err(if seen_used {
        DecodeError::AlreadyUsed
    } else {
        DecodeError::Invalid
    })
}

/// The kind of a token found at `count`: even counts add time, odd counts set time unless the
/// value is a command's.
fn kind_at(count: u32, wire_value: u64) -> TokenKind {
    match (count % 2 == 1, wire_value) {
        (false, _) => TokenKind::AddTime,
        (true, COUNTER_SYNC_VALUE) => TokenKind::CounterSync,
        (true, PAYG_DISABLE_VALUE) => TokenKind::DisablePayg,
        (true, _) => TokenKind::SetTime,
    }
}

/// `_count_is_valid`, plus the used check for counter sync (see the module docs).
fn count_is_valid(
    count: u32,
    last_count: u32,
    wire_value: u64,
    kind: TokenKind,
    used_counts: &[u32],
) -> bool {
    let (count_i, last_i) = (i64::from(count), i64::from(last_count));
    if wire_value == COUNTER_SYNC_VALUE {
        count_i > last_i - i64::from(MAX_TOKEN_JUMP) && !used_counts.contains(&count)
    } else if count > last_count {
        true
    } else {
        count_i > last_i - i64::from(MAX_UNUSED_OLDER_TOKENS)
            && !used_counts.contains(&count)
            && kind == TokenKind::AddTime
    }
}

/// `update_used_counts`: the window of [`MAX_UNUSED_OLDER_TOKENS`] counts below the highest one.
/// A command or set-time token marks the whole window used (older add-time tokens are void once
/// time was set); an add-time token marks only itself.
fn update_used_counts(past: &[u32], wire_value: u64, count: u32, kind: TokenKind) -> Vec<u32> {
    let highest = past.iter().copied().fold(count, u32::max);
    let window = highest.saturating_sub(MAX_UNUSED_OLDER_TOKENS)..=highest;
    let whole_window = kind != TokenKind::AddTime
        || wire_value == COUNTER_SYNC_VALUE
        || wire_value == PAYG_DISABLE_VALUE;
    window
        .filter(|c| whole_window || *c == count || past.contains(c))
        .collect()
}

/// A keypad unit's token state: its key, starting code and what it has accepted so far.
///
/// The simulator keeps one per unit and feeds it typed codes; the state to persist is
/// [`Decoder::last_count`] and [`Decoder::used_counts`].
#[derive(Debug, Clone)]
pub struct Decoder {
    key: TokenKey,
    starting_code: u32,
    restricted_digits: bool,
    last_count: u32,
    used_counts: Vec<u32>,
}

impl Decoder {
    /// A unit fresh from the factory (or restored): `last_count` and `used_counts` as stored.
    /// A new unit's last count is the count the server starts from (the reference simulators
    /// use 1), with nothing used.
    pub fn new(
        key: TokenKey,
        starting_code: u32,
        restricted_digits: bool,
        last_count: u32,
        used_counts: Vec<u32>,
    ) -> Decoder {
        Decoder {
            key,
            starting_code,
            restricted_digits,
            last_count,
            used_counts,
        }
    }

    /// Checks a typed code and, if accepted, records it. Standard or extended is told by length,
    /// as the reference does; a refused code changes nothing.
    pub fn enter(&mut self, code: &str) -> Result<Decoded, DecodeError> {
        let format =
            TokenFormat::infer(code, self.restricted_digits).ok_or(DecodeError::WrongLength {
                len: code.len(),
                format: TokenFormat {
                    extended: true,
                    restricted_digits: self.restricted_digits,
                },
            })?;
        let decoded = decode(
            &self.key,
            self.starting_code,
            self.last_count,
            &self.used_counts,
            code,
            format,
        )?;
        self.last_count = decoded.last_count;
        self.used_counts.clone_from(&decoded.used_counts);
        Ok(decoded)
    }

    /// The highest count accepted so far.
    pub fn last_count(&self) -> u32 {
        self.last_count
    }

    /// The counts remembered as used.
    pub fn used_counts(&self) -> &[u32] {
        &self.used_counts
    }
}
