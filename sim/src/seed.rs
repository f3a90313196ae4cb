//! Deriving independent, replayable random streams from the fleet seed: one per device
//! (from its serial, so it does not depend on fleet order) and one per purpose within it.

/// Which random stream of a device; separate streams keep, say, the fault schedule the
/// same however many reconnect delays were drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    LoadCurve = 1,
    Faults = 2,
    Backoff = 3,
    ReportPhase = 4,
    KeypadSetup = 5,
    Payments = 6,
}

/// The seed of the device `serial` in a fleet seeded with `fleet_seed`.
pub fn device_seed(fleet_seed: u64, serial: &str) -> u64 {
    // FNV-1a of the serial, then mixed with the fleet seed.
    let hash = serial.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    splitmix64(fleet_seed ^ hash)
}

/// The seed of one purpose's stream within a device.
pub(crate) fn stream_seed(device_seed: u64, stream: Stream) -> u64 {
    splitmix64(device_seed.wrapping_add(stream as u64))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_per_device_and_per_stream_and_replay() {
        let a = device_seed(1, "SL-1");
        assert_eq!(a, device_seed(1, "SL-1"));
        assert_ne!(a, device_seed(1, "SL-2"));
        assert_ne!(a, device_seed(2, "SL-1"));
        assert_ne!(
            stream_seed(a, Stream::Faults),
            stream_seed(a, Stream::Backoff)
        );
    }
}
