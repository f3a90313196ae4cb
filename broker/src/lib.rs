//! The embedded MQTT broker: rumqttd on its own threads, with Sunledger's device rules.
//!
//! - [`config`]: listen address and limits, validated once, turned into rumqttd settings.
//! - [`auth`]: the CONNECT check: client id = username = serial, password = device secret,
//!   verified against a [`auth::CredentialCheck`] the billing store provides, with repeated
//!   failures per client id locked out by a [`failure_limit::FailureLimiter`].
//! - [`failure_limit`]: lockouts after repeated failed logins, also used by the gRPC API.
//! - [`acl`]: a wrapper around rumqttd's MQTT 3.1.1 codec that holds each connection to its
//!   own topics: a device may publish only its own `telemetry`, `ack` and `status`, subscribe
//!   only to its own `cmd`, and set a last will only on its own `status`. rumqttd has no
//!   per-topic ACL, so the rule lives in the codec each connection gets a clone of.
//! - [`tls`]: the certificate and key files of the MQTT TLS listener and of the gRPC API,
//!   checked once at start so a bad file is refused naming its setting.
//! - [`tls_front`]: the MQTT-over-TLS listener (`[broker.tls]`): handshakes in their own
//!   tasks with a deadline, then a relay to the plain device listener.
//! - [`embedded`]: starts the router, the device listener and the TLS front on their own
//!   threads and hands out in-process links, through which the platform subscribes to device
//!   topics and publishes commands.
//! - [`tap`]: the slot through which ingest takes device telemetry and acks straight off the
//!   connections, before the router.
//!
//! Data flow: device TCP (or TLS → [`tls_front`] → loopback TCP) → [`acl::DeviceAcl`] codec
//! (refuses foreign topics) → telemetry and acks: the [`tap`] (ingest; PUBACK once ingest
//! queued them); other publishes: rumqttd router (PUBACK once it holds them) → in-process
//! link → `ingest`.

pub mod acl;
pub mod auth;
pub mod config;
pub mod embedded;
pub mod failure_limit;
pub mod tap;
pub mod tls;
pub mod tls_front;

pub use auth::{CredentialCheck, Verdict};
pub use config::{BrokerConfig, BrokerTls};
pub use embedded::{EmbeddedBroker, Link};
pub use rumqttd::local;
pub use rumqttd::local::{LinkRx, LinkTx};
pub use rumqttd::protocol::{Packet, Publish};
pub use rumqttd::{Forward, Notification};
pub use tap::{PublishTap, TapSlot, Tapped};
