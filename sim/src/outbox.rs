//! The device's QoS 1 publishes awaiting the broker's PUBACK, in send order, so an
//! acknowledgement can be attributed to the reading it confirms.
//!
//! Every publish goes through one request queue and one connection, and a broker acknowledges
//! QoS 1 publishes in the order it received them (MQTT 3.1.1 §4.6), so the k-th
//! `Outgoing::Publish` event belongs to the k-th queued entry. A PUBACK is matched by packet
//! id, which also tolerates a broker that acknowledges out of order.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::device_model::Counters;

/// What a queued publish carries, as far as ground truth cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// A reading (or a duplicate copy of one) of `boot`.
    Reading { boot: u32, counters: Counters },
    /// Anything else: status, command acks, garbage.
    Other,
}

#[derive(Debug)]
struct Entry {
    tag: Tag,
    pkid: Option<u16>,
    /// When the publish was handed to the client, for its publish→PUBACK latency.
    queued_at: Instant,
}

/// Publishes handed to the client and not yet acknowledged. Bounded by the request queue
/// capacity plus the in-flight limit, because a publish only enters when the queue takes it.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    entries: VecDeque<Entry>,
}

impl Outbox {
    pub(crate) fn push(&mut self, tag: Tag) {
        self.entries.push_back(Entry {
            tag,
            pkid: None,
            queued_at: Instant::now(),
        });
    }

    /// The event loop wrote the next queued publish with packet id `pkid`.
    pub(crate) fn on_written(&mut self, pkid: u16) -> Option<Tag> {
        let entry = self.entries.iter_mut().find(|e| e.pkid.is_none())?;
        entry.pkid = Some(pkid);
        Some(entry.tag)
    }

    /// The broker acknowledged `pkid`: the publish it confirms and how long that took since
    /// the publish was queued.
    pub(crate) fn on_acked(&mut self, pkid: u16) -> Option<(Tag, Duration)> {
        let index = self.entries.iter().position(|e| e.pkid == Some(pkid))?;
        self.entries
            .remove(index)
            .map(|e| (e.tag, e.queued_at.elapsed()))
    }

    /// The session ended: a clean-session reconnect never retransmits, so nothing queued will
    /// be acknowledged.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(load_wh: u64) -> Tag {
        Tag::Reading {
            boot: 1,
            counters: Counters { load_wh, usb_wh: 0 },
        }
    }

    #[test]
    fn acks_are_matched_to_the_publish_written_with_that_packet_id() {
        let mut outbox = Outbox::default();
        outbox.push(reading(1));
        outbox.push(Tag::Other);
        outbox.push(reading(3));
        assert_eq!(outbox.on_written(7), Some(reading(1)));
        assert_eq!(outbox.on_written(8), Some(Tag::Other));
        let tag = |acked: Option<(Tag, Duration)>| acked.map(|(tag, _)| tag);
        assert_eq!(tag(outbox.on_acked(8)), Some(Tag::Other));
        assert_eq!(outbox.on_written(9), Some(reading(3)));
        assert_eq!(tag(outbox.on_acked(7)), Some(reading(1)));
        assert_eq!(outbox.on_acked(7), None, "an ack is attributed once");
        assert_eq!(tag(outbox.on_acked(9)), Some(reading(3)));
        assert!(outbox.is_empty());
    }
}
