//! Search text of list filters: what an operator types into a list's search box, matched
//! case-insensitively against names, serials and the like.

use crate::validate::{FieldViolation, TEXT_BYTES_MAX};

/// Lower-cased search text for matching, trimmed; empty matches everything. Bounded like every
/// text field, so a request cannot make each record's comparison arbitrarily long.
pub fn text(field: &'static str, raw: &str) -> Result<String, FieldViolation> {
    match raw.len() > TEXT_BYTES_MAX {
        true => Err(FieldViolation::new(
            field,
            format!("at most {TEXT_BYTES_MAX} bytes"),
        )),
        false => Ok(raw.trim().to_lowercase()),
    }
}

/// Whether `value` contains the search text `needle` (from [`text`]).
pub fn contains(value: &str, needle: &str) -> bool {
    needle.is_empty() || value.to_lowercase().contains(needle)
}

/// Whether `value` starts with the search text `needle` (from [`text`]).
pub fn starts_with(value: &str, needle: &str) -> bool {
    value.to_lowercase().starts_with(needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_matches_case_insensitively_and_empty_matches_all() {
        let needle = text("search", "  Weekly ").unwrap();
        assert_eq!(needle, "weekly");
        assert!(contains("Home WEEKLY plan", &needle));
        assert!(!contains("Daily", &needle));
        assert!(contains("anything", &text("search", "").unwrap()));
        assert!(starts_with("SL-0001", &text("serial", "sl-0").unwrap()));
        assert!(!starts_with("XSL-0001", "sl"));
    }

    #[test]
    fn overlong_search_text_is_refused_naming_the_field() {
        let long = "x".repeat(TEXT_BYTES_MAX + 1);
        assert_eq!(
            text("search", &long).unwrap_err().to_string(),
            "search: at most 256 bytes"
        );
    }
}
