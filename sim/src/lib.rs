//! Sunledger's load simulator: thousands of pay-as-you-go solar home systems, each a real
//! MQTT client speaking the device protocol of `sunledger-proto`, with seeded demand and
//! faults and a ground-truth ledger an auditor can check the platform against.
//!
//! - [`config`]: [`SimConfig`] and [`FaultRates`], with defaults, TOML and `validate()`.
//! - [`load_curve`] and [`energy`]: a household's daily demand and exact integer Wh counters.
//! - [`clock`]: simulated time, running `time_scale` times faster than real time.
//! - [`device_model`]: the firmware logic without I/O: counters, boot and seq, the load
//!   switch, and which commands to apply and acknowledge.
//! - [`faults`]: the seeded per-interval schedule of offline periods, reboots, duplicates and
//!   garbage.
//! - [`truth`]: what each device told the platform, for the auditor.
//! - [`device`]: [`SimDevice`], the model behind a rumqttc client; drivable step by step in
//!   tests.
//! - [`credentials`]: `serial,device_key[,command_key]` files for runs against a real server.
//! - [`run`]: a timed run with progress reports and a [`RunSummary`](run::RunSummary), what
//!   `sunledger sim` drives.
//! - [`fleet`]: [`Fleet`], one tokio task per device (`device_task.rs`), bounded connects,
//!   live [`FleetStats`] from [`stats`], publish→PUBACK percentiles from [`latency`].
//! - [`command_latency`]: how long OFF commands took from the platform's decision to the
//!   device, from the commands' timestamps and the devices' receive times.
//! - [`operator`], [`plans`], [`enrol`] and [`audit`]: the operators' gRPC API as an Admin's
//!   tool calls it, registering the fleet (plans, units, customers, opening credit) and, after
//!   a run, auditing each device's energy and each account's ledger against the truth.
//! - [`keypad_unit`], [`keypad`], [`keypad_truth`] and [`keypad_audit`]: keypad units, which
//!   never touch MQTT. The simulator registers each with a random OpenPAYGO key, pays for it
//!   as a mobile-money provider would, types the tokens that come back into the unit's
//!   firmware, and audits that every day paid for arrived.
//!
//! Data flows from the simulated clock into each device's model (energy accrues whether or
//! not it is connected), out as `Telemetry` sealed under the device key through the outbox to
//! the broker, and back as PUBACKs that move readings into the device's truth as *reported*;
//! commands flow in from the broker, are checked against the owner's signature, go through the
//! model, and out as sealed `CommandAck`s. Every random choice comes from
//! the fleet seed and the device serial, so a run replays. Against a real server, the fleet is
//! enrolled through the API first, and its truths are audited through the API at the end.
//! Keypad units' data flows the other way: payments go to the platform, tokens come back in
//! the answers and are typed into each unit's firmware, and the days they carry go into the
//! unit's truth beside the days its payments owe.

pub mod audit;
pub mod backoff;
#[cfg(test)]
mod broker_smoke;
pub mod clock;
pub mod command_latency;
pub mod config;
pub mod credentials;
pub mod device;
pub mod device_model;
mod device_task;
pub mod energy;
pub mod enrol;
pub mod error;
pub mod faults;
pub mod fleet;
pub mod keypad;
pub mod keypad_audit;
pub mod keypad_truth;
pub mod keypad_unit;
pub mod latency;
pub mod load_curve;
pub mod operator;
mod outbox;
pub mod plans;
pub mod run;
pub mod seed;
pub mod stats;
pub mod truth;

pub use config::{FaultRates, SimConfig};
pub use device::{DeviceCredentials, SimDevice};
pub use device_model::{CommandOutcome, Counters, DeviceModel};
pub use error::{DeviceError, SimError};
pub use fleet::Fleet;
pub use load_curve::{Consumption, LoadCurve, Power};
pub use stats::FleetStats;
pub use truth::{CommandReceipt, DeviceTruth};
