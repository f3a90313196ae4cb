//! Wiring of the one Sunledger process: broker, ingest, billing engine, gRPC API and the
//! Prometheus endpoint, started together and stopped together.
//!
//! - [`settings`]: every setting, from the built-in defaults, an optional TOML file,
//!   environment variables and flags (in that order of precedence, lowest first).
//! - [`server`]: [`Server::start`] brings everything up on the configured ports and
//!   [`Server::shutdown`] flushes and stops it; the end-to-end tests use the same entry point.
//! - [`metrics_http`]: the `/metrics` endpoint.
//! - [`demo`]: `serve --demo`: seeded units and an in-process simulated fleet.

pub mod demo;
pub mod metrics_http;
pub mod server;
pub mod settings;

pub use server::Server;
pub use settings::Settings;
