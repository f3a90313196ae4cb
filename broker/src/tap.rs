//! The platform's tap on device connections: publishes it consumes itself (device telemetry
//! and acks, taken by ingest) leave each connection's task straight for the billing queues,
//! without the router's log and its forwarding thread (rumqttd's `PublishTap`, a Sunledger
//! patch). Everything the tap declines is routed as before.

use std::sync::{Arc, PoisonError, RwLock};

pub use rumqttd::{PublishTap, Tapped};

/// The broker's tap, filled in when its consumer starts and emptied when it stops.
///
/// While empty, every publish offered is held on its connection (`Full`: not read further,
/// not acked) rather than routed to a log nobody reads yet: a device that reconnects while
/// the server starts keeps its readings until ingest takes them.
#[derive(Default)]
pub struct TapSlot(RwLock<Option<Arc<dyn PublishTap>>>);

impl TapSlot {
    /// Puts `tap` in the slot (replacing any before).
    pub fn fill(&self, tap: Arc<dyn PublishTap>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(tap);
    }

    /// Takes the tap out: publishes are held again.
    pub fn empty(&self) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl PublishTap for TapSlot {
    fn offer(&self, topic: &[u8], payload: &[u8]) -> Tapped {
        match &*self.0.read().unwrap_or_else(PoisonError::into_inner) {
            Some(tap) => tap.offer(topic, payload),
            None => Tapped::Full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TakesAll;

    impl PublishTap for TakesAll {
        fn offer(&self, _topic: &[u8], _payload: &[u8]) -> Tapped {
            Tapped::Taken
        }
    }

    #[test]
    fn an_empty_slot_holds_publishes_and_a_filled_one_passes_them_on() {
        let slot = TapSlot::default();
        assert_eq!(slot.offer(b"t", b"p"), Tapped::Full);
        slot.fill(Arc::new(TakesAll));
        assert_eq!(slot.offer(b"t", b"p"), Tapped::Taken);
        slot.empty();
        assert_eq!(slot.offer(b"t", b"p"), Tapped::Full);
    }
}
