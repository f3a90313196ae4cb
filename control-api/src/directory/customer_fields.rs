//! Validation of the fields of customers and installations, beside the general rules of
//! [`crate::validate`] and the amounts of [`crate::amount`]: phone numbers of the
//! organisation's country, optional free text, coordinates, household sizes and sale terms.
//! Each function names the wire field it checks and returns the canonical value or a
//! [`FieldViolation`].

use phonenumber::Mode;
use rust_decimal::Decimal;

use super::installations::{HouseholdDetails, Location, SystemDetails};
use crate::validate::{self, FieldViolation};

/// Refuses a down-payment above the total system cost (naming `down_payment`): the sale
/// would be paid off before it began. Checked at registration and on every later change of
/// either, before the billing engine is asked.
pub fn sale_terms(
    down_payment: Decimal,
    total_system_cost: Option<Decimal>,
) -> Result<(), FieldViolation> {
    match total_system_cost.is_some_and(|total| down_payment > total) {
        true => Err(FieldViolation::new(
            "down_payment",
            "cannot exceed the total system cost",
        )),
        false => Ok(()),
    }
}

/// Most people a household can be recorded with; more is a typing error.
pub const HOUSEHOLD_MEMBERS_MAX: u32 = 100;

/// A phone number of `country` (ISO 3166-1 alpha-2), in any common national or international
/// notation, returned in E.164 (`+254712345678`). A number of another country is refused:
/// the organisation's customers are reached through its own country's networks.
pub fn phone(field: &'static str, raw: &str, country: &str) -> Result<String, FieldViolation> {
    let value = optional_text(field, raw)?;
    let region: phonenumber::country::Id = country
        .parse()
        .map_err(|_| FieldViolation::new(field, format!("no numbering plan for {country}")))?;
    let number = phonenumber::parse(Some(region), &value)
        .map_err(|_| FieldViolation::new(field, "not a phone number"))?;
    if !number.is_valid() {
        return Err(FieldViolation::new(field, "not a valid phone number"));
    }
    let number_region = number
        .metadata(&phonenumber::metadata::DATABASE)
        .map(|metadata| metadata.id());
    if number_region != Some(country) {
        return Err(FieldViolation::new(
            field,
            format!("must be a number of the organisation's country ({country})"),
        ));
    }
    Ok(number.format().mode(Mode::E164).to_string())
}

/// Free text that may be empty: trimmed, one line, at most
/// [`TEXT_BYTES_MAX`](crate::validate::TEXT_BYTES_MAX) bytes.
pub fn optional_text(field: &'static str, raw: &str) -> Result<String, FieldViolation> {
    match raw.trim().is_empty() {
        true => Ok(String::new()),
        false => validate::name(field, raw),
    }
}

/// An optional email address, trimmed; empty means none.
pub fn optional_email(field: &'static str, raw: &str) -> Result<Option<String>, FieldViolation> {
    match raw.trim().is_empty() {
        true => Ok(None),
        false => validate::email(field, raw).map(Some),
    }
}

/// A point on the map, refused outside −90..=90 latitude and −180..=180 longitude.
pub fn location(latitude: f64, longitude: f64) -> Result<Location, FieldViolation> {
    if !(-90.0..=90.0).contains(&latitude) {
        return Err(FieldViolation::new(
            "latitude",
            "must be between -90 and 90",
        ));
    }
    if !(-180.0..=180.0).contains(&longitude) {
        return Err(FieldViolation::new(
            "longitude",
            "must be between -180 and 180",
        ));
    }
    Ok(Location {
        latitude,
        longitude,
    })
}

/// System details with their free text checked.
pub fn system(raw: &SystemDetails) -> Result<SystemDetails, FieldViolation> {
    Ok(SystemDetails {
        panel_capacity_w: raw.panel_capacity_w,
        battery_capacity_wh: raw.battery_capacity_wh,
        battery_type: optional_text("battery_type", &raw.battery_type)?,
        appliances: optional_text("appliances", &raw.appliances)?,
        notes: optional_text("notes", &raw.notes)?,
    })
}

/// Household details with their sizes and free text checked.
pub fn household(raw: &HouseholdDetails) -> Result<HouseholdDetails, FieldViolation> {
    if raw.members > HOUSEHOLD_MEMBERS_MAX {
        return Err(FieldViolation::new(
            "members",
            format!("at most {HOUSEHOLD_MEMBERS_MAX}"),
        ));
    }
    if raw.children > raw.members {
        return Err(FieldViolation::new(
            "children",
            "cannot exceed the household's members",
        ));
    }
    Ok(HouseholdDetails {
        members: raw.members,
        children: raw.children,
        occupation: optional_text("occupation", &raw.occupation)?,
        previous_energy_source: optional_text(
            "previous_energy_source",
            &raw.previous_energy_source,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_of_the_country_come_back_in_e164() {
        for raw in [
            "0712 345678",
            "+254 712 345 678",
            "254712345678",
            "0712-345-678",
        ] {
            assert_eq!(phone("phone", raw, "KE").unwrap(), "+254712345678", "{raw}");
        }
    }

    #[test]
    fn phones_of_another_country_or_malformed_are_refused_naming_the_field() {
        for raw in ["+44 20 7946 0958", "+1 202 555 0143", "12", "not a number"] {
            assert_eq!(
                phone("phone", raw, "KE").unwrap_err().field,
                "phone",
                "{raw}"
            );
        }
    }

    #[test]
    fn coordinates_outside_the_globe_name_their_axis() {
        assert!(location(-1.29, 36.82).is_ok());
        assert_eq!(location(90.5, 0.0).unwrap_err().field, "latitude");
        assert_eq!(location(0.0, -180.5).unwrap_err().field, "longitude");
        assert_eq!(location(f64::NAN, 0.0).unwrap_err().field, "latitude");
    }

    #[test]
    fn households_are_bounded_and_children_are_members() {
        let mut details = HouseholdDetails {
            members: 4,
            children: 2,
            ..HouseholdDetails::default()
        };
        assert!(household(&details).is_ok());
        details.children = 5;
        assert_eq!(household(&details).unwrap_err().field, "children");
        details.members = HOUSEHOLD_MEMBERS_MAX + 1;
        assert_eq!(household(&details).unwrap_err().field, "members");
    }
}
