//! Encoding of stored records with rkyv: compact, versionless binary values for redb tables.
//!
//! redb hands out byte slices with no alignment guarantee, so [`decode`] copies into an
//! aligned buffer before validating; records are small, so the copy is cheap.

use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;

/// A stored record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("record codec: {0}")]
pub struct CodecError(#[from] rancor::Error);

/// Encodes a record for storage.
pub fn encode<T>(value: &T) -> Result<AlignedVec, CodecError>
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    Ok(rkyv::to_bytes::<rancor::Error>(value)?)
}

/// Validates and decodes a stored record.
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
