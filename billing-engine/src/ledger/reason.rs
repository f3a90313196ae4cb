//! Why a ledger entry was made, as statements show it.
//!
//! A usage charge is made for every reading, so its reason is kept as its two numbers
//! (watt-hours and price) and written out only when someone reads it: building and storing
//! the text ("20 Wh at 0.37 per kWh") was the largest part of a charge's cost and bytes.
//!
//! Stored (postcard, not human-readable) a text reason is the string it always was, and a
//! usage reason is a byte string opening with `0xFF`, a byte no UTF-8 text contains, followed
//! by the watt-hours and the price's scale and mantissa. So entries written before usage
//! reasons were kept as numbers read back unchanged. Human-readable formats carry the text.

use std::fmt;

use rust_decimal::Decimal;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The explanation of a ledger entry; [`fmt::Display`] writes it as statements show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryReason {
    /// Written text: a payment's channel, an instalment's due date, an operator's words.
    Text(String),
    /// A usage charge: "{energy_wh} Wh at {price_per_kwh} per kWh", the price's digits as
    /// the tariff has them (0.370 stays 0.370).
    Usage {
        /// Energy charged, load and USB together.
        energy_wh: u64,
        /// The tariff's price per kWh.
        price_per_kwh: Decimal,
    },
}

/// Opens a stored usage reason; never the first byte of UTF-8 text.
const USAGE_TAG: u8 = 0xFF;
/// Room for the tag, the watt-hours (a u64 varint: up to 10 bytes), the scale (1) and the
/// mantissa (an i128 zigzag varint: up to 19).
const USAGE_BYTES_MAX: usize = 1 + 10 + 1 + 19;

impl fmt::Display for EntryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryReason::Text(text) => f.write_str(text),
            EntryReason::Usage {
                energy_wh,
                price_per_kwh,
            } => write!(f, "{energy_wh} Wh at {price_per_kwh} per kWh"),
        }
    }
}

impl From<String> for EntryReason {
    fn from(text: String) -> EntryReason {
        EntryReason::Text(text)
    }
}

impl From<&str> for EntryReason {
    fn from(text: &str) -> EntryReason {
        EntryReason::Text(text.to_owned())
    }
}

impl Serialize for EntryReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            EntryReason::Text(text) => serializer.serialize_str(text),
            EntryReason::Usage { .. } if serializer.is_human_readable() => {
                serializer.collect_str(self)
            }
            EntryReason::Usage {
                energy_wh,
                price_per_kwh,
            } => {
                let mut bytes = [0; USAGE_BYTES_MAX];
                bytes[0] = USAGE_TAG;
                let fields = (
                    energy_wh,
                    price_per_kwh.scale() as u8,
                    price_per_kwh.mantissa(),
                );
                let used = postcard::to_slice(&fields, &mut bytes[1..])
                    .map_err(serde::ser::Error::custom)?
                    .len();
                serializer.serialize_bytes(&bytes[..1 + used])
            }
        }
    }
}

impl<'de> Deserialize<'de> for EntryReason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EntryReason, D::Error> {
        if deserializer.is_human_readable() {
            String::deserialize(deserializer).map(EntryReason::Text)
        } else {
            deserializer.deserialize_bytes(StoredReason)
        }
    }
}

/// Reads a stored reason: text, or a usage reason's numbers after [`USAGE_TAG`].
struct StoredReason;

impl Visitor<'_> for StoredReason {
    type Value = EntryReason;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a ledger entry's reason: UTF-8 text or a tagged usage reason")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<EntryReason, E> {
        let Some(fields) = bytes.strip_prefix(&[USAGE_TAG]) else {
            let text = std::str::from_utf8(bytes).map_err(E::custom)?;
            return Ok(EntryReason::Text(text.to_owned()));
        };
        let ((energy_wh, scale, mantissa), rest) =
            postcard::take_from_bytes::<(u64, u8, i128)>(fields).map_err(E::custom)?;
        if !rest.is_empty() {
            return Err(E::custom("stored usage reason: trailing bytes"));
        }
        let price_per_kwh = Decimal::try_from_i128_with_scale(mantissa, u32::from(scale))
            .map_err(|error| E::custom(format!("stored usage reason's price: {error}")))?;
        Ok(EntryReason::Usage {
            energy_wh,
            price_per_kwh,
        })
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<EntryReason, E> {
        Ok(EntryReason::Text(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(energy_wh: u64, price_per_kwh: Decimal) -> EntryReason {
        EntryReason::Usage {
            energy_wh,
            price_per_kwh,
        }
    }

    #[test]
    fn a_usage_reason_reads_as_format_would_write_it() {
        for (wh, price) in [
            (20, Decimal::new(37, 2)),
            (20, Decimal::new(370, 3)),
            (0, Decimal::new(5, 0)),
            (u64::MAX, Decimal::new(-1, 1)),
            (7, Decimal::MAX),
            (7, Decimal::new(-1, 28)),
        ] {
            assert_eq!(
                usage(wh, price).to_string(),
                format!("{wh} Wh at {price} per kWh")
            );
        }
    }

    #[test]
    fn every_reason_survives_the_store_codec_with_its_exact_digits() {
        for reason in [
            usage(20, Decimal::new(370, 3)),
            usage(u64::MAX, Decimal::MIN),
            usage(0, Decimal::new(-1, 28)),
            EntryReason::from("payment via MobileMoney"),
            EntryReason::from(""),
            EntryReason::from("ÿ is U+00FF, stored as two bytes"),
        ] {
            let stored = postcard::to_allocvec(&reason).unwrap();
            let read: EntryReason = postcard::from_bytes(&stored).unwrap();
            assert_eq!(read, reason);
            assert_eq!(read.to_string(), reason.to_string());
        }
    }

    #[test]
    fn text_stored_as_a_plain_string_reads_back_as_text() {
        let stored = postcard::to_allocvec("20 Wh at 0.37 per kWh").unwrap();
        let read: EntryReason = postcard::from_bytes(&stored).unwrap();
        assert_eq!(read, EntryReason::from("20 Wh at 0.37 per kWh"));
    }

    #[test]
    fn a_usage_reason_is_stored_in_a_quarter_of_its_text() {
        let reason = usage(20, Decimal::new(37, 2));
        let stored = postcard::to_allocvec(&reason).unwrap();
        let as_text = postcard::to_allocvec(&reason.to_string()).unwrap();
        assert_eq!(stored, [4, USAGE_TAG, 20, 2, 74]);
        assert!(stored.len() * 4 <= as_text.len(), "{stored:?}");
    }

    #[test]
    fn a_damaged_usage_reason_is_refused() {
        for stored in [
            vec![1, USAGE_TAG],
            vec![4, USAGE_TAG, 20, 29, 1],
            vec![5, USAGE_TAG, 20, 2, 74, 9],
            vec![2, 0xC3, 0x28],
        ] {
            assert!(
                postcard::from_bytes::<EntryReason>(&stored).is_err(),
                "{stored:?}"
            );
        }
    }

    #[test]
    fn json_carries_the_text() {
        let reason = usage(20, Decimal::new(37, 2));
        let json = serde_json::to_string(&reason).unwrap();
        assert_eq!(json, "\"20 Wh at 0.37 per kWh\"");
        let read: EntryReason = serde_json::from_str(&json).unwrap();
        assert_eq!(read, EntryReason::from("20 Wh at 0.37 per kWh"));
    }
}
