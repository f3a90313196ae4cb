//! Registering the simulated fleet through the operators' gRPC API, as an operator would: a
//! usage plan, then per unit `SIM-000001`… the unit (its device key comes back once), a
//! customer with a completed registration (which opens the billing account) and an opening
//! credit under the idempotent reference `<serial>-opening`.
//!
//! Re-running is safe: the plan is found by name, a unit the organisation already has is not
//! registered again (its key must then come from the credentials file of the run that
//! registered it), an installed unit is not installed again, and the opening credit's
//! reference makes it one payment however often the fleet is enrolled.
//!
//! Keypad units (`enrol/keypad.rs`) are registered fresh on every run with their OpenPAYGO
//! setup, on a weekly instalment plan, with no opening credit: the simulator pays for them as
//! it runs.

use ed25519_dalek::VerifyingKey;
use std::collections::HashMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use sunledger_proto::api::v1 as api;
use sunledger_proto::authenticity::DeviceKey;
use tonic::Code;

use crate::credentials::device_key;
use crate::device::DeviceCredentials;
use crate::error::SimError;
use crate::keypad_unit::KeypadSpec;
use crate::operator::{Operator, bounded};
use crate::plans::{SimTariff, find_or_create};

mod keypad;

pub use keypad::{EnrolledKeypad, KEYPAD_PLAN_NAME, KeypadEnrolment};

/// Name of the usage plan the fleet is billed on, found again by it on later runs.
pub const PLAN_NAME: &str = "sim usage";
/// Units enrolled at once: each takes a handful of calls that each wait for a durable commit,
/// and concurrent commits share group commits on the server.
const ENROL_CONCURRENCY: usize = 8;
/// First 14 digits of simulator IMEIs, less the unit number: "35" is a GSMA reporting body,
/// and the range stays clear of the demo's and the end-to-end tests' IMEIs.
const SIM_IMEI_BASE: u64 = 35_800_000_000_000;
/// Where simulated customers live (Nairobi), as registrations require a location.
const SIM_LOCATION: (f64, f64) = (-1.2921, 36.8219);

/// What to enrol.
#[derive(Debug, Clone)]
pub struct EnrolOptions {
    /// Units `SIM-000001`… to enrol.
    pub devices: usize,
    /// Price of a kWh on the plan, a decimal string in the organisation's currency.
    pub price_per_kwh: String,
    /// Credit recorded for each unit once, a decimal string; zero records none.
    pub opening_credit: String,
    /// Keypad units to register, on top of the connected ones; none enrols no keypad plan.
    pub keypads: Vec<KeypadSpec>,
    /// Price of a week of credit on the keypad units' plan, a decimal string above zero.
    pub keypad_price_per_week: String,
}

/// One enrolled unit.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrolledUnit {
    /// `SIM-000001`…, the device's MQTT client id.
    pub serial: String,
    /// The device key: issued by this run, or from the credentials file given; `None` for a
    /// unit registered earlier whose key the file lacks.
    pub device_key: Option<DeviceKey>,
    /// Whether this run registered the unit (else the organisation already had it).
    pub newly_registered: bool,
    /// The complete installation whose account bills the unit (ledger and balance name it).
    pub installation_id: String,
    /// Energy the platform had metered for the unit before this run (earlier runs'), so
    /// the audit compares only what this run's devices reported.
    pub consumed_wh_before: u64,
}

impl std::fmt::Debug for EnrolledUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = self.device_key.map(|_| "<redacted>");
        f.debug_struct("EnrolledUnit")
            .field("serial", &self.serial)
            .field("device_key", &key)
            .field("newly_registered", &self.newly_registered)
            .field("installation_id", &self.installation_id)
            .field("consumed_wh_before", &self.consumed_wh_before)
            .finish()
    }
}

/// The enrolled fleet, in serial order.
#[derive(Debug, Clone)]
pub struct Enrolment {
    /// The usage plan the fleet is billed on.
    pub plan_id: String,
    /// The organisation's command-verification key, flashed into every unit.
    pub command_key: VerifyingKey,
    /// Every connected unit, in serial order.
    pub units: Vec<EnrolledUnit>,
    /// The keypad units and their plan, when any were asked for.
    pub keypads: Option<KeypadEnrolment>,
}

impl Enrolment {
    /// Units the organisation already had, whose registration was skipped.
    pub fn already_registered(&self) -> impl Iterator<Item = &EnrolledUnit> {
        self.units.iter().filter(|unit| !unit.newly_registered)
    }

    /// Every unit with a device key, as a credentials file lists them.
    pub fn credentials(&self) -> Vec<DeviceCredentials> {
        self.units
            .iter()
            .filter_map(|unit| {
                Some(DeviceCredentials {
                    serial: unit.serial.clone(),
                    device_key: unit.device_key?,
                    command_key: Some(self.command_key),
                })
            })
            .collect()
    }

    /// Refuses a fleet with a unit that cannot log in, naming every such unit.
    pub fn require_all_device_keys(&self) -> Result<(), SimError> {
        let serials: Vec<String> = self
            .units
            .iter()
            .filter(|unit| unit.device_key.is_none())
            .map(|unit| unit.serial.clone())
            .collect();
        match serials.is_empty() {
            true => Ok(()),
            false => Err(SimError::MissingDeviceKeys { serials }),
        }
    }
}

/// Enrols units `SIM-000001`… up to `options.devices` in the caller's organisation, and the
/// keypad units of `options.keypads`; `known` supplies the device keys of units registered by
/// an earlier run.
pub async fn enrol(
    operator: &Operator,
    options: &EnrolOptions,
    known: &[DeviceCredentials],
) -> Result<Enrolment, SimError> {
    let price = amount("--price-per-kwh", &options.price_per_kwh)?;
    let credit = amount("--opening-credit", &options.opening_credit)?;
    let keypad_rate = match options.keypads.is_empty() {
        true => None,
        false => Some(keypad::weekly_rate(
            "--keypad-price-per-week",
            &options.keypad_price_per_week,
        )?),
    };
    let usage = SimTariff::Usage {
        price_per_kwh: price,
    };
    let plan_id = find_or_create(operator, PLAN_NAME, usage).await?;
    let known: HashMap<&str, DeviceKey> = known
        .iter()
        .map(|device| (device.serial.as_str(), device.device_key))
        .collect();
    let units = (1..=options.devices).map(|n| {
        let serial = sim_serial(n);
        let unit = UnitToEnrol {
            operator: operator.clone(),
            n,
            known_device_key: known.get(serial.as_str()).copied(),
            serial,
            plan_id: plan_id.clone(),
            credit,
        };
        unit.enrol()
    });
    let units = bounded(units, ENROL_CONCURRENCY).await?;
    let keypads = match keypad_rate {
        Some(rate) => Some(keypad::enrol_keypads(operator, rate, &options.keypads).await?),
        None => None,
    };
    Ok(Enrolment {
        plan_id,
        command_key: operator.command_key().await?,
        units,
        keypads,
    })
}

/// The serial of simulator unit `n`.
pub fn sim_serial(n: usize) -> String {
    format!("SIM-{n:06}")
}

/// A valid IMEI for simulator unit `n`.
pub fn sim_imei(n: usize) -> String {
    imei_with_check_digit(SIM_IMEI_BASE + n as u64)
}

/// The 15-digit IMEI whose first 14 digits are `body` (zero-padded), completed with its Luhn
/// check digit: what a manufacturer prints on a unit.
pub fn imei_with_check_digit(body: u64) -> String {
    let body = format!("{body:014}");
    // From the right of the body, every other digit starting with the last is doubled
    // (less 9 above 9); the check digit brings the sum to a multiple of 10.
    let sum: u32 = body
        .bytes()
        .rev()
        .map(|byte| u32::from(byte - b'0'))
        .enumerate()
        .map(|(position, digit)| match (position % 2, digit * 2) {
            (0, doubled) if doubled > 9 => doubled - 9,
            (0, doubled) => doubled,
            _ => digit,
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// The decimal `value` of option `field`, at least zero.
fn amount(field: &'static str, value: &str) -> Result<Decimal, SimError> {
    Decimal::from_str(value.trim())
        .ok()
        .filter(|amount| !amount.is_sign_negative())
        .ok_or_else(|| SimError::InvalidAmount {
            field,
            value: value.to_owned(),
            must_be: "at least zero",
        })
}

/// One unit's enrolment, owned so it can run on its own task.
struct UnitToEnrol {
    operator: Operator,
    n: usize,
    serial: String,
    known_device_key: Option<DeviceKey>,
    plan_id: String,
    credit: Decimal,
}

impl UnitToEnrol {
    async fn enrol(self) -> Result<EnrolledUnit, SimError> {
        let call = |rpc: &str| format!("{rpc} {}", self.serial);
        let request = api::RegisterUnitRequest {
            serial: self.serial.clone(),
            imei: sim_imei(self.n),
            entity_id: String::new(),
            ..Default::default()
        };
        let (key, newly_registered, installation_id, consumed_wh_before) =
            match self.operator.units().register_unit(request).await {
                Ok(response) => {
                    let issued = device_key(&response.into_inner().device_key);
                    let key = issued.ok_or_else(|| SimError::InvalidDeviceKey {
                        serial: self.serial.clone(),
                    })?;
                    (Some(key), true, None, 0)
                }
                Err(status) if status.code() == Code::AlreadyExists => {
                    let request = api::GetUnitRequest {
                        serial: self.serial.clone(),
                    };
                    let details = self
                        .operator
                        .units()
                        .get_unit(request)
                        .await
                        .map_err(|status| SimError::api(call("GetUnit"), status))?
                        .into_inner();
                    let current = details.unit.map(|unit| unit.current_installation_id);
                    let consumed_wh = details.device.map_or(0, |device| device.consumed_wh);
                    let installation_id = current.filter(|id| !id.is_empty());
                    (self.known_device_key, false, installation_id, consumed_wh)
                }
                Err(status) => return Err(SimError::api(call("RegisterUnit"), status)),
            };
        let installation_id = match installation_id {
            Some(id) => id,
            None => install(&self.operator, &self.serial, &self.plan_id).await?,
        };
        if !self.credit.is_zero() {
            self.pay_opening_credit(&installation_id).await?;
        }
        Ok(EnrolledUnit {
            serial: self.serial,
            device_key: key,
            newly_registered,
            installation_id,
            consumed_wh_before,
        })
    }

    /// Records the opening credit once: a repeat with the same amount is a duplicate the
    /// server ignores, and one with another amount (an earlier run's) stays as it was.
    async fn pay_opening_credit(&self, installation_id: &str) -> Result<(), SimError> {
        let request = api::RecordPaymentRequest {
            installation_id: installation_id.to_owned(),
            amount: self.credit.to_string(),
            reference: format!("{}-opening", self.serial),
            channel: api::PaymentChannel::Other.into(),
        };
        match self.operator.payments().record_payment(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::AlreadyExists => Ok(()),
            Err(status) => Err(SimError::api(
                format!("RecordPayment {}", self.serial),
                status,
            )),
        }
    }
}

/// Registers a new customer, `Sim Customer <serial>`, on unit `serial` in both steps, on plan
/// `plan_id`; returns the installation's id.
async fn install(operator: &Operator, serial: &str, plan_id: &str) -> Result<String, SimError> {
    let customer = api::CustomerDetails {
        r#type: api::CustomerType::Consumer.into(),
        name: format!("Sim Customer {serial}"),
        email: format!("{}@sim.example.com", serial.to_lowercase()),
        contact_preference: api::ContactPreference::Email.into(),
        ..Default::default()
    };
    let (latitude, longitude) = SIM_LOCATION;
    let start = api::StartRegistrationRequest {
        unit_serial: serial.to_owned(),
        contact: Some(api::start_registration_request::Contact::NewCustomer(
            customer,
        )),
        location: Some(api::Location {
            latitude,
            longitude,
        }),
    };
    let installations = operator.installations();
    let partial = installations
        .clone()
        .start_registration(start)
        .await
        .map_err(|status| SimError::api(format!("StartRegistration {serial}"), status))?
        .into_inner();
    let complete = api::CompleteRegistrationRequest {
        installation_id: partial.id,
        plan: Some(api::PlanChoice {
            plan_id: plan_id.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let installation = installations
        .clone()
        .complete_registration(complete)
        .await
        .map_err(|status| SimError::api(format!("CompleteRegistration {serial}"), status))?;
    Ok(installation.into_inner().id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imeis_are_fifteen_digits_with_their_luhn_check_digit() {
        let luhn_ok = |imei: &str| {
            let sum: u32 = imei
                .bytes()
                .rev()
                .map(|byte| u32::from(byte - b'0'))
                .enumerate()
                .map(|(i, d)| {
                    if i % 2 == 1 {
                        (d * 2) / 10 + (d * 2) % 10
                    } else {
                        d
                    }
                })
                .sum();
            sum.is_multiple_of(10)
        };
        assert!(luhn_ok("490154203237518"), "the textbook IMEI");
        for n in [1, 2, 9, 10, 999_999] {
            let imei = sim_imei(n);
            assert_eq!(imei.len(), 15, "{imei}");
            assert!(luhn_ok(&imei), "{imei}");
        }
        assert_ne!(sim_imei(1), sim_imei(2));
    }

    #[test]
    fn amounts_must_be_decimals_of_at_least_zero() {
        assert_eq!(amount("f", " 1.50 ").unwrap(), Decimal::new(150, 2));
        for bad in ["-1", "abc", ""] {
            assert!(matches!(
                amount("f", bad),
                Err(SimError::InvalidAmount { field: "f", .. })
            ));
        }
    }
}
