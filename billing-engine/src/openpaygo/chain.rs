//! The SipHash-2-4 token chain, standard and extended, as the reference builds it.
//!
//! Every token is the previous chain value hashed with the unit's key; the value is then put in
//! its last digits. Both formats share one shape ([`Scheme`]) and differ in how many digits the
//! value takes, how the hash input is laid out and how the 64-bit hash is cut down.

use siphasher::sip::SipHasher24;

use super::TokenKey;

/// One token format's arithmetic: the standard (9-digit) or extended (12-digit) token.
#[derive(Debug)]
pub(super) struct Scheme {
    /// 10^(value digits): the value lives in `code % modulus`.
    pub modulus: u64,
    /// Digits of a written token with 0–9.
    pub plain_digits: usize,
    /// Digits of a written token with 1–4 (two bits each).
    pub restricted_digits: usize,
    next: fn(u64, &TokenKey) -> u64,
}

/// The standard token: 9 digits, value in the last 3 (`OpenPAYGOTokenShared`).
pub(super) const STANDARD: Scheme = Scheme {
    modulus: 1_000,
    plain_digits: 9,
    restricted_digits: 15,
    next: next_standard,
};

/// The extended token: 12 digits, value in the last 6 (`OpenPAYGOTokenSharedExtended`).
pub(super) const EXTENDED: Scheme = Scheme {
    modulus: 1_000_000,
    plain_digits: 12,
    restricted_digits: 20,
    next: next_extended,
};

impl Scheme {
    /// The scheme of a format.
    pub fn of(extended: bool) -> &'static Scheme {
        if extended { &EXTENDED } else { &STANDARD }
    }

    /// The value digits of a code (`get_token_base`).
    pub fn base(&self, code: u64) -> u64 {
        code % self.modulus
    }

    /// The code with its value digits replaced (`put_base_in_token`).
    pub fn with_base(&self, code: u64, base: u64) -> u64 {
        code - self.base(code) + base
    }

    /// The value digits that carry `value` on top of the starting code's (`_encode_base`):
    /// addition modulo 10^digits, so that the value is hidden by the starting code.
    pub fn encode_base(&self, starting_base: u64, value: u64) -> u64 {
        (starting_base + value) % self.modulus
    }

    /// The value carried by `token_base` (`_decode_base`), the inverse of [`Self::encode_base`].
    pub fn decode_base(&self, starting_base: u64, token_base: u64) -> u64 {
        (token_base + self.modulus - starting_base) % self.modulus
    }

    /// The next chain value (`generate_next_token`).
    pub fn next(&self, code: u64, key: &TokenKey) -> u64 {
        (self.next)(code, key)
    }
}

/// SipHash-2-4 of `input` under the key, as the reference's `siphash.SipHash_2_4(key, input)`.
fn siphash(key: &TokenKey, input: &[u8]) -> u64 {
    SipHasher24::new_with_key(key.bytes()).hash(input)
}

/// Standard step: the code as 4 big-endian bytes, written twice to make SipHash's 8-byte input,
/// then folded to a 9-digit number. Standard codes are below 10^9, so the `u32` cut keeps them
/// whole.
fn next_standard(code: u64, key: &TokenKey) -> u64 {
    let word = (code as u32).to_be_bytes();
    let mut input = [0u8; 8];
    input[..4].copy_from_slice(&word);
    input[4..].copy_from_slice(&word);
    u64::from(fold_to_9_digits(siphash(key, &input)))
}

/// `convert_hash_to_token` + `_convert_to_29_5_bits`: the two 32-bit halves XORed, the low two
/// bits dropped (30 bits left), and the 73 741 825 values above 999 999 999 moved down.
fn fold_to_9_digits(hash: u64) -> u32 {
    let folded = ((hash >> 32) as u32) ^ (hash as u32);
    let bits30 = folded >> 2;
    if bits30 > 999_999_999 {
        bits30 - 73_741_825
    } else {
        bits30
    }
}

/// Extended step: the code as 8 big-endian bytes, hashed, and the top 40 bits kept, with the
/// values above 999 999 999 999 moved down (`_convert_to_40_bits`).
fn next_extended(code: u64, key: &TokenKey) -> u64 {
    let bits40 = siphash(key, &code.to_be_bytes()) >> 24;
    if bits40 > 999_999_999_999 {
        bits40 - 99_511_627_777
    } else {
        bits40
    }
}

/// The starting code the reference derives from a key when none is given
/// (`generate_starting_code`: the key hashed under itself, folded to 9 digits). Units flashed
/// without their own starting code use this one.
pub fn starting_code_from_key(key: &TokenKey) -> u32 {
    fold_to_9_digits(siphash(key, key.bytes()))
}
