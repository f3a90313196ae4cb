//! The Sunledger ledger: what each unit has used and paid, and whether its load is on.
//!
//! Storage and device side:
//! - [`store`]: the redb file and its tables; one write transaction per batch (group commit).
//! - [`units`]: registered control units, their hashed device secrets, and the in-memory
//!   [`units::UnitDirectory`] the broker and ingest consult on every CONNECT and message.
//! - [`meter`]: turns a unit's cumulative counters into consumed watt-hours, refusing
//!   duplicates, handling counter resets and holding implausible jumps for review.
//! - [`event`]: the decoded device events ingest hands to the engine.
//! - [`engine`]: one partition's hot state, applying batches of events durably and deciding
//!   which load commands to send.
//! - [`commands`]: encoding of load commands and the sink they are published through.
//! - [`account_record`]: what the engine stores per account (organisation, time zone, ledger
//!   length) and the requests that change accounts.
//! - [`clock`]: the engine's time source, settable in tests.
//! - [`keypad`]: units paid with OpenPAYGO tokens, billed in days ([`openpaygo`] makes the
//!   codes); [`secrets`]: the master key their keys are sealed under.
//! - [`worker`]: one thread per partition draining its bounded lock-free queue in batches;
//!   [`worker::Engine`] routes events and requests to the owning partition.
//!
//! Billing rules (pure, no I/O): [`money`], [`tariff`], [`schedule`], [`ledger`], [`account`].
//!
//! Data flow: ingest → [`engine::Partition::apply_batch`] → [`meter`] → [`account`] → redb commit →
//! [`commands::CommandSink`] (the broker's `cmd` topics).

pub mod account_record;
pub mod clock;
pub mod codec;
pub mod commands;
pub mod compact;
pub mod engine;
pub mod event;
pub mod keypad;
pub mod meter;
pub mod secrets;
pub mod store;
pub mod units;
pub mod worker;

pub mod account;
pub mod ledger;
pub mod money;
pub mod openpaygo;
pub mod schedule;
pub mod tariff;
