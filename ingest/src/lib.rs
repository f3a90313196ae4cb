//! Ingest: device messages off the broker, into the billing partitions.
//!
//! - [`decode`]: one forwarded MQTT message → a [`DeviceEvent`] or a [`Rejection`] naming the
//!   reason. Pure: no I/O, no metrics, never panics on input.
//! - [`stage`]: one reader thread per subscription (every device's `telemetry`, `ack`,
//!   `status`), each on its own in-process broker link. It decodes each message, admits it
//!   (the unit is registered and enabled, a reading or ack carries the unit's valid MAC:
//!   `UnitDirectory::admit`) and pushes it onto the bounded lock-free queue of the partition
//!   that owns the serial. When a queue is full the reader waits (counted), so memory stays
//!   bounded; the broker keeps the backlog in its own bounded log meanwhile, and if that log
//!   overflows, the messages it evicted are counted from the gap in its offsets
//!   (`sunledger_ingest_broker_skipped_total`).
//!
//! Data flow: broker link → [`decode`] → admit → partition queue → billing worker (batches,
//! commits). Checking MACs here, on the reader threads, keeps them off the partitions' threads,
//! which every reading of their units must pass through.
//!
//! Which unit's topic a message is on is settled before ingest sees it: the broker's codec
//! refuses any publish outside the sender's own topics. That the message is the unit's own
//! words (not a neighbour's, not replayed from another unit) is the MAC's job, checked here.

pub mod decode;
pub mod stage;

pub use decode::Rejection;
pub use stage::Ingest;
pub use sunledger_billing::event::DeviceEvent;
