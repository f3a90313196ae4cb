//! Ingest: device messages off the broker, into the billing partitions.
//!
//! - [`decode`]: one MQTT message → a [`DeviceEvent`] or a [`Rejection`] naming the reason.
//!   Pure: no I/O, no metrics, never panics on input.
//! - `intake`: decode, admit (the unit is registered and enabled, a reading or ack carries
//!   the unit's valid MAC: `UnitDirectory::admit`) and count one kind of message.
//! - `tap`: device telemetry and acks, taken straight off their MQTT connections by the
//!   connection's own task (the broker's tap slot) and pushed onto the bounded lock-free queue
//!   of the partition that owns the serial. When that queue is full the connection stops
//!   reading and offers again shortly (counted): back-pressure reaches the device through TCP,
//!   memory stays bounded and nothing is dropped.
//! - [`stage`]: starts the tap, and one reader thread per remaining subscription (every
//!   device's `status`, which includes the wills the router publishes, and `cmd`), each on its
//!   own in-process broker link; a reader waits (counted) on a full queue while the broker
//!   keeps the backlog in its own bounded log, and if that log overflows, the messages it
//!   evicted are counted from the gap in its offsets (`sunledger_ingest_broker_skipped_total`).
//!
//! Data flow: connection → tap, or broker link → reader; then [`decode`] → admit → partition
//! queue → billing worker (batches, commits). Checking MACs here keeps them off the
//! partitions' threads, which every reading of their units must pass through.
//!
//! Which unit's topic a message is on is settled before ingest sees it: the broker's codec
//! refuses any publish outside the sender's own topics. That the message is the unit's own
//! words (not a neighbour's, not replayed from another unit) is the MAC's job, checked here.

pub mod decode;
mod intake;
pub mod stage;
mod tap;

pub use decode::Rejection;
pub use stage::Ingest;
pub use sunledger_billing::event::DeviceEvent;
