//! Serde helpers for values stored on every reading: in binary formats (postcard, the store's
//! codec) money is its scale and its integer mantissa (a varint: 2 to 5 bytes for everyday
//! amounts instead of rust_decimal's fixed 16) and time is seconds plus nanoseconds, instead of
//! the text forms `rust_decimal` and `chrono` use, which cost a formatting and a parse per
//! entry. A unit's record carries six amounts and is rewritten on every reading, so their
//! size is what the store writes. Human-readable formats (JSON, TOML) keep the text forms.
//!
//! Use with `#[serde(with = "crate::compact::decimal")]` and friends.

/// A `Decimal` as (scale, mantissa), or text when human-readable.
pub mod decimal {
    use rust_decimal::Decimal;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes `value`.
    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            Serialize::serialize(value, serializer)
        } else {
            // The scale is at most 28, so it fits a byte; the sign travels in the mantissa.
            (value.scale() as u8, value.mantissa()).serialize(serializer)
        }
    }

    /// Deserializes what [`serialize`] wrote, refusing a scale or mantissa no `Decimal` has.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        if deserializer.is_human_readable() {
            <Decimal as Deserialize>::deserialize(deserializer)
        } else {
            let (scale, mantissa) = <(u8, i128)>::deserialize(deserializer)?;
            Decimal::try_from_i128_with_scale(mantissa, u32::from(scale))
                .map_err(|error| D::Error::custom(format!("stored amount: {error}")))
        }
    }
}

/// An optional `Decimal`, as [`decimal`] does it.
pub mod decimal_option {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Wrapped(#[serde(with = "super::decimal")] Decimal);

    /// Serializes `value`.
    pub fn serialize<S: Serializer>(
        value: &Option<Decimal>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value.map(Wrapped).serialize(serializer)
    }

    /// Deserializes what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Decimal>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(value)| value))
    }
}

/// A UTC instant as (seconds, nanoseconds), or RFC 3339 text when human-readable.
pub mod instant {
    use chrono::{DateTime, Utc};
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes `value`.
    pub fn serialize<S: Serializer>(
        value: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            Serialize::serialize(value, serializer)
        } else {
            (value.timestamp(), value.timestamp_subsec_nanos()).serialize(serializer)
        }
    }

    /// Deserializes what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        if deserializer.is_human_readable() {
            <DateTime<Utc> as Deserialize>::deserialize(deserializer)
        } else {
            let (seconds, nanos) = <(i64, u32)>::deserialize(deserializer)?;
            DateTime::from_timestamp(seconds, nanos)
                .ok_or_else(|| D::Error::custom("instant out of range"))
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use rust_decimal::Decimal;
    use rust_decimal_macros::dec;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        #[serde(with = "super::decimal")]
        amount: Decimal,
        #[serde(with = "super::decimal_option")]
        cost: Option<Decimal>,
        #[serde(with = "super::instant")]
        at: DateTime<Utc>,
    }

    #[test]
    fn binary_and_text_forms_round_trip_exactly() {
        let sample = Sample {
            amount: dec!(-0.045510000000000001),
            cost: Some(dec!(1234.5)),
            at: DateTime::from_timestamp(1_780_000_000, 123_456_789).unwrap(),
        };
        let binary = postcard::to_allocvec(&sample).unwrap();
        assert_eq!(postcard::from_bytes::<Sample>(&binary).unwrap(), sample);
        let text = serde_json::to_string(&sample).unwrap();
        assert!(text.contains("\"-0.045510000000000001\""), "{text}");
        assert_eq!(serde_json::from_str::<Sample>(&text).unwrap(), sample);
        let none = Sample {
            cost: None,
            ..sample
        };
        let binary = postcard::to_allocvec(&none).unwrap();
        assert_eq!(postcard::from_bytes::<Sample>(&binary).unwrap(), none);
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Amount(#[serde(with = "super::decimal")] Decimal);

    #[test]
    fn everyday_amounts_take_a_few_bytes_and_extremes_round_trip() {
        let size = |amount| postcard::to_allocvec(&Amount(amount)).unwrap().len();
        assert_eq!(size(dec!(0)), 2);
        assert_eq!(
            size(dec!(-0.37)),
            2,
            "scale byte and a one-byte zigzag mantissa"
        );
        assert_eq!(size(dec!(1500.00)), 4);
        for amount in [
            Decimal::MAX,
            Decimal::MIN,
            dec!(-0.0000000000000000000000000001),
        ] {
            let binary = postcard::to_allocvec(&Amount(amount)).unwrap();
            assert_eq!(
                postcard::from_bytes::<Amount>(&binary).unwrap(),
                Amount(amount)
            );
        }
    }

    #[test]
    fn a_scale_or_mantissa_no_decimal_has_is_refused() {
        let scale_29 = postcard::to_allocvec(&(29_u8, 1_i128)).unwrap();
        let mantissa_97_bits = postcard::to_allocvec(&(0_u8, 1_i128 << 96)).unwrap();
        for bytes in [scale_29, mantissa_97_bits] {
            let error = postcard::from_bytes::<Amount>(&bytes).unwrap_err();
            assert_eq!(error, postcard::Error::SerdeDeCustom);
        }
    }
}
