//! Field validation: every string that reaches the directory passes through here first, so
//! nothing invalid or oversized is ever stored, and the client learns which field was wrong.
//!
//! Each function takes the wire field's name and returns the value in its canonical form
//! (trimmed, codes upper-cased) or a [`FieldViolation`] naming the field.

use email_address::{EmailAddress, Options};

/// Longest accepted free-text field (names, emails, ids) in bytes. A request cannot make the
/// server store, hash or log more than this per field.
pub const TEXT_BYTES_MAX: usize = 256;

/// One invalid request field: shown to the client as `field: reason` (INVALID_ARGUMENT with a
/// `BadRequest` detail), so a form can point at the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldViolation {
    /// The request field, as named in the `.proto` file.
    pub field: &'static str,
    /// Why it was refused, for a person to read.
    pub reason: String,
}

impl FieldViolation {
    /// A violation of `field` for `reason`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> FieldViolation {
        FieldViolation {
            field,
            reason: reason.into(),
        }
    }
}

/// A display name: trimmed, not empty, one line, at most [`TEXT_BYTES_MAX`] bytes.
pub fn name(field: &'static str, raw: &str) -> Result<String, FieldViolation> {
    let value = bounded(field, raw)?;
    if value.is_empty() {
        return Err(FieldViolation::new(field, "must not be empty"));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldViolation::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// An email address (`local@domain.tld`, no display name or domain literal), trimmed.
pub fn email(field: &'static str, raw: &str) -> Result<String, FieldViolation> {
    let value = bounded(field, raw)?;
    let options = Options::default()
        .with_required_tld()
        .without_domain_literal()
        .without_display_text();
    EmailAddress::parse_with_options(value, options)
        .map(|address| address.as_str().to_owned())
        .map_err(|_| FieldViolation::new(field, "not a valid address"))
}

/// An ISO 3166-1 alpha-2 country code, returned upper-case (`ke` → `KE`).
pub fn country(field: &'static str, raw: &str) -> Result<String, FieldViolation> {
    let value = bounded(field, raw)?;
    isocountry::CountryCode::for_alpha2_caseless(value)
        .map(|country| country.alpha2().to_owned())
        .map_err(|_| FieldViolation::new(field, "not an ISO 3166-1 alpha-2 country code"))
}

/// An ISO 4217 currency code, returned upper-case (`kes` → `KES`).
pub fn currency(field: &'static str, raw: &str) -> Result<String, FieldViolation> {
    let value = bounded(field, raw)?;
    iso_currency::Currency::from_code(&value.to_ascii_uppercase())
        .map(|currency| currency.code().to_owned())
        .ok_or_else(|| FieldViolation::new(field, "not an ISO 4217 currency code"))
}

/// An IANA time zone name such as `Africa/Nairobi`.
pub fn time_zone(field: &'static str, raw: &str) -> Result<String, FieldViolation> {
    let value = bounded(field, raw)?;
    value
        .parse::<chrono_tz::Tz>()
        .map(|zone| zone.name().to_owned())
        .map_err(|_| FieldViolation::new(field, "not an IANA time zone"))
}

/// The id of a record the caller names. Only its size is checked: an id that was never
/// issued is simply not found.
pub fn id<'a>(field: &'static str, raw: &'a str) -> Result<&'a str, FieldViolation> {
    let value = bounded(field, raw)?;
    match value.is_empty() {
        true => Err(FieldViolation::new(field, "must not be empty")),
        false => Ok(value),
    }
}

/// The longest grace an old key may be given: long enough to reach every unit of a fleet,
/// short enough that a forgotten rotation does not leave two keys working for good.
pub const GRACE_SECONDS_MAX: i64 = 90 * 24 * 3600;

/// How long a rotated key's predecessor keeps working, in seconds: 0 (at once, for a leaked
/// key) to [`GRACE_SECONDS_MAX`].
pub fn grace_seconds(field: &'static str, seconds: i64) -> Result<i64, FieldViolation> {
    if (0..=GRACE_SECONDS_MAX).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(FieldViolation::new(
            field,
            format!("must be between 0 and {GRACE_SECONDS_MAX} (90 days)"),
        ))
    }
}

/// A box that must be ticked, such as the acceptance of the terms and conditions.
pub fn accepted(field: &'static str, ticked: bool) -> Result<(), FieldViolation> {
    match ticked {
        true => Ok(()),
        false => Err(FieldViolation::new(field, "must be accepted")),
    }
}

/// `raw` trimmed, if it is within [`TEXT_BYTES_MAX`].
fn bounded<'a>(field: &'static str, raw: &'a str) -> Result<&'a str, FieldViolation> {
    match raw.len() > TEXT_BYTES_MAX {
        true => Err(FieldViolation::new(
            field,
            format!("at most {TEXT_BYTES_MAX} bytes"),
        )),
        false => Ok(raw.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_values_come_back_in_canonical_form() {
        assert_eq!(name("name", "  Amani Solar ").unwrap(), "Amani Solar");
        assert_eq!(
            email("email", " Jo@Example.co.ke ").unwrap(),
            "Jo@Example.co.ke"
        );
        assert_eq!(country("country", "ke").unwrap(), "KE");
        assert_eq!(currency("currency", "kes").unwrap(), "KES");
        assert_eq!(
            time_zone("time_zone", "Africa/Nairobi").unwrap(),
            "Africa/Nairobi"
        );
        assert_eq!(id("member_id", "mem_1").unwrap(), "mem_1");
        assert!(accepted("accept_terms", true).is_ok());
    }

    #[test]
    fn each_invalid_value_is_refused_naming_its_field() {
        let long = "x".repeat(TEXT_BYTES_MAX + 1);
        let cases: Vec<(Result<String, FieldViolation>, &str)> = vec![
            (name("name", "   "), "name: must not be empty"),
            (
                name("name", "a\nb"),
                "name: must not contain control characters",
            ),
            (name("name", &long), "name: at most 256 bytes"),
            (email("email", "not-an-email"), "email: not a valid address"),
            (email("email", "jo@localhost"), "email: not a valid address"),
            (
                email("email", "Jo <jo@example.com>"),
                "email: not a valid address",
            ),
            (email("email", &long), "email: at most 256 bytes"),
            (
                country("country", "XX"),
                "country: not an ISO 3166-1 alpha-2 country code",
            ),
            (
                country("country", "KEN"),
                "country: not an ISO 3166-1 alpha-2 country code",
            ),
            (
                currency("currency", "XYZ1"),
                "currency: not an ISO 4217 currency code",
            ),
            (
                time_zone("time_zone", "Mars/Olympus"),
                "time_zone: not an IANA time zone",
            ),
            (
                id("member_id", "").map(str::to_owned),
                "member_id: must not be empty",
            ),
            (
                id("member_id", &long).map(str::to_owned),
                "member_id: at most 256 bytes",
            ),
            (
                accepted("accept_terms", false).map(|()| String::new()),
                "accept_terms: must be accepted",
            ),
        ];
        for (result, message) in cases {
            assert_eq!(result.unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn a_name_of_exactly_the_limit_is_accepted() {
        let exact = "é".repeat(TEXT_BYTES_MAX / 2);
        assert_eq!(name("name", &exact).unwrap(), exact);
    }
}
