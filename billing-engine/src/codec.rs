//! Encoding of stored records.
//!
//! - Device-side records (units, unit state) use rkyv: compact, fixed-layout binary values.
//! - Billing records (accounts, ledger entries, reference indexes) hold `rust_decimal` and
//!   `chrono` values, which have serde support but no rkyv 0.8 support, so they use postcard
//!   (a compact serde format) rather than hand-written conversions of money and time.
//!
//! redb hands out byte slices with no alignment guarantee, so [`decode`] copies into an
//! aligned buffer before validating; records are small, so the copy is cheap.

use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A stored record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// An rkyv record failed.
    #[error("record codec: {0}")]
    Rkyv(#[from] rancor::Error),
    /// A postcard record failed.
    #[error("record codec: {0}")]
    Postcard(#[from] postcard::Error),
}

/// Encodes a device-side record (rkyv).
pub fn encode<T>(value: &T) -> Result<AlignedVec, CodecError>
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    Ok(rkyv::to_bytes::<rancor::Error>(value)?)
}

/// Validates and decodes a device-side record (rkyv).
pub fn decode<T>(bytes: &[u8]) -> Result<T, CodecError>
where
    T: rkyv::Archive,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    Ok(rkyv::from_bytes::<T, rancor::Error>(&aligned)?)
}

/// Encodes a billing record (postcard).
pub fn encode_serde<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(postcard::to_allocvec(value)?)
}

/// Encodes a billing record (postcard) into `buffer`, replacing what it held: one buffer
/// serves a whole batch of rows instead of an allocation per row.
pub fn encode_serde_into<T: Serialize>(value: &T, buffer: &mut Vec<u8>) -> Result<(), CodecError> {
    buffer.clear();
    encode_serde_append(value, buffer)
}

/// Encodes a billing record (postcard) after what `buffer` holds: many records packed into
/// one stored row.
pub fn encode_serde_append<T: Serialize>(
    value: &T,
    buffer: &mut Vec<u8>,
) -> Result<(), CodecError> {
    postcard::serialize_with_flavor(value, Append(buffer))?;
    Ok(())
}

/// A postcard output appending to a borrowed `Vec` a slice at a time: postcard's own
/// `to_extend` goes through `Extend` byte by byte, which was 7% of a batch of readings.
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Decodes a postcard value that borrows from `bytes`: a row of records still encoded.
pub fn decode_serde_borrowed<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
) -> Result<T, CodecError> {
    Ok(postcard::from_bytes(bytes)?)
}

/// Decodes a billing record (postcard).
pub fn decode_serde<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Ok(postcard::from_bytes(bytes)?)
}
