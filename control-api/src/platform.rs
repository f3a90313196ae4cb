//! The [`Platform`]: every part of the running server an operator service may need, handed to
//! [`crate::serve`] as one value so services take the parts they use and nothing is opened
//! twice.

use std::sync::Arc;

use sunledger_billing::store::Store;
use sunledger_billing::units::UnitDirectory;
use sunledger_billing::worker::Engine;

use crate::directory::Directory;
use crate::notify::SmsSender;

/// Handles on the one process's shared state; cheap to clone, one clone per service.
#[derive(Clone)]
pub struct Platform {
    /// Organisations, team, customers, plans, units and the audit log (the API's tables).
    pub directory: Directory,
    /// The billing engine: accounts, money movements and load commands go through it, so the
    /// partition owning a unit stays the only writer of its hot state.
    pub engine: Arc<Engine>,
    /// The broker's in-memory credential check: a newly registered unit is added here so its
    /// device can connect at once.
    pub units: Arc<UnitDirectory>,
    /// The redb file: unit records, ledgers and reference indexes the engine committed.
    pub store: Arc<Store>,
    /// The SMS gateway keypad tokens and low-credit reminders go out through.
    pub sms: Arc<dyn SmsSender>,
}
