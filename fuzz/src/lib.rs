//! Checks shared by the fuzz targets in `fuzz_targets/`.

use sunledger_proto::payload::{Encoding, PayloadError};

/// A payload is refused in the encoding its first byte selects: a `{` payload never fails as
/// protobuf, any other never as JSON (so the rejection reason a device sees is about the form
/// it sent).
pub fn assert_refusal_matches_encoding(payload: &[u8], error: &PayloadError) {
    let encoding = Encoding::of(payload);
    let crossed = matches!(
        (encoding, error),
        (Encoding::Json, PayloadError::Protobuf(_)) | (Encoding::Protobuf, PayloadError::Json(_))
    );
    assert!(!crossed, "{encoding:?} payload refused as {error}");
}
