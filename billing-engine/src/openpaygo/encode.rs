//! Generating a token on the server (`OpenPAYGOTokenEncoder.generate_token`).

use super::chain::Scheme;
use super::{
    COUNTER_SYNC_VALUE, MAX_STARTING_CODE, PAYG_DISABLE_VALUE, RESERVED_VALUES, TokenFormat,
    TokenKey, TokenKind, digits,
};

/// A generated token and the count it was made at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What the customer types: 9, 12, 15 or 20 digits depending on the [`TokenFormat`].
    pub code: String,
    /// The token's count. The server must store it as the unit's count and pass it to the next
    /// [`generate`]: a count is never used twice, or the unit would refuse the token.
    pub count: u32,
}

/// Why no token was generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The time value does not fit the format.
    #[error("value {value} is too high for this token format (at most {max})")]
    ValueTooHigh {
        /// The value asked for.
        value: u32,
        /// The format's highest value.
        max: u32,
    },
    /// 996–999 are kept for commands, in the extended format too.
    #[error("value {value} is reserved for commands (996 to 999)")]
    ReservedValue {
        /// The value asked for.
        value: u32,
    },
    /// Disable-PAYG and counter-sync tokens carry no value: pass 0.
    #[error("a {kind:?} token carries no value, got {value}")]
    ValueNotAllowed {
        /// The token kind asked for.
        kind: TokenKind,
        /// The value given.
        value: u32,
    },
    /// Starting codes are 9-digit numbers.
    #[error("starting code {0} has more than 9 digits")]
    StartingCodeOutOfRange(u32),
    /// The next count would not fit in 32 bits.
    #[error("count {0} cannot go any higher")]
    CountOverflow(u32),
}

/// The token of `kind` carrying `value`, for a unit whose last issued count is `count`.
///
/// `value` is the time to add or set, in the operator's unit (the reference's `value_divider` is
/// the caller's business); it must be 0 for [`TokenKind::DisablePayg`] and
/// [`TokenKind::CounterSync`]. The returned [`Token::count`] follows the reference's parity rule:
/// add-time tokens take the next even count, all others the next odd count, so the unit can tell
/// "add" from "set" (`_get_new_count`).
///
/// The cost is one SipHash per count: it grows with the count, as in the reference.
pub fn generate(
    key: &TokenKey,
    starting_code: u32,
    count: u32,
    kind: TokenKind,
    value: u32,
    format: TokenFormat,
) -> Result<Token, TokenError> {
    if starting_code > MAX_STARTING_CODE {
        return Err(TokenError::StartingCodeOutOfRange(starting_code));
    }
    let wire_value = wire_value(kind, value, format)?;
    let new_count = next_count(count, kind).ok_or(TokenError::CountOverflow(count))?;

    let scheme = Scheme::of(format.extended);
    let starting_code = u64::from(starting_code);
    let token_base = scheme.encode_base(scheme.base(starting_code), wire_value);
    let mut current = scheme.with_base(starting_code, token_base);
    for _ in 0..new_count {
        current = scheme.next(current, key);
    }
    let code = scheme.with_base(current, token_base);
    Ok(Token {
        code: digits::render(scheme, code, format.restricted_digits),
        count: new_count,
    })
}

/// The value as written into the token: the time value (range-checked) or a command's reserved
/// value.
fn wire_value(kind: TokenKind, value: u32, format: TokenFormat) -> Result<u64, TokenError> {
    match kind {
        TokenKind::AddTime | TokenKind::SetTime => {
            let max = format.max_value();
            if value > max {
                Err(TokenError::ValueTooHigh { value, max })
            } else if RESERVED_VALUES.contains(&value) {
                Err(TokenError::ReservedValue { value })
            } else {
                Ok(u64::from(value))
            }
        }
        TokenKind::DisablePayg | TokenKind::CounterSync if value != 0 => {
            Err(TokenError::ValueNotAllowed { kind, value })
        }
        TokenKind::DisablePayg => Ok(PAYG_DISABLE_VALUE),
        TokenKind::CounterSync => Ok(COUNTER_SYNC_VALUE),
    }
}

/// The count of the next token (`_get_new_count`): even for add-time, odd for everything else,
/// always above `count`.
fn next_count(count: u32, kind: TokenKind) -> Option<u32> {
    let odd = count % 2 == 1;
    let step = match kind {
        TokenKind::AddTime if odd => 1,
        TokenKind::AddTime => 2,
        _ if odd => 2,
        _ => 1,
    };
    count.checked_add(step)
}
