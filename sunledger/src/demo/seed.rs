//! Seeding the demo through the operators' own operations, so everything it creates is what
//! the gRPC API shows and nothing exists only inside the demo.
//!
//! First start: the organisation "Sunledger Demo" with its first Admin (as
//! `sunledger admin create-org` does), a usage plan and an instalment plan; then per demo unit
//! `DEMO-000001`…: the unit registered as the Units service registers it (billing store,
//! directory claim, broker credential check), a customer and a registration started and
//! completed as the Installations service does (which opens the billing account), and a
//! welcome credit recorded as the Payments service records it.
//!
//! Later starts on the same database find the organisation through [`super::record`], revoke
//! the previous demo token and issue a fresh one (tokens are stored only hashed), and re-key
//! every unit (a device key is shown only once). A unit already installed is not installed
//! again, and the welcome credit's reference `<serial>-welcome` makes it one payment however
//! often the demo starts. Each step finds what an interrupted earlier start
//! left, so seeding can be repeated until it completes.

use anyhow::Context;
use sunledger_billing::keypad::TimeMode;
use sunledger_billing::ledger::PaymentChannel;
use sunledger_billing::tariff::Period;
use sunledger_billing::units::DeviceKey;
use sunledger_control_api::directory::registration::{
    Completion, NewRegistration, PlanChoice, RegistrationContact,
};
use sunledger_control_api::directory::{
    ContactPreference, CustomerType, DirectoryError, NewCustomer, NewPlan, NewTariff, NewUnit,
    Organisation, TokenSecret, UserDetails, units,
};
use sunledger_control_api::roles::Caller;
use sunledger_control_api::{NewOrganisation, Platform};

use super::SERIAL_PREFIX;
use super::record::{self, DemoRecord};
use super::top_up::pay;
use crate::server::Server;

/// Price of a kWh on the demo usage plan, in the organisation's KES.
const USAGE_PRICE_PER_KWH: &str = "1.50";
/// Credit every demo unit starts with: a few simulated hours of load before switch-off.
const WELCOME_CREDIT: &str = "0.50";
/// Where demo customers live (Nairobi), as registrations require a location.
const DEMO_LOCATION: (f64, f64) = (-1.2921, 36.8219);
/// First 14 digits of demo IMEIs, less the unit number: "35" is a GSMA reporting body, and
/// the range stays clear of the end-to-end tests' IMEIs.
const DEMO_IMEI_BASE: u64 = 35_900_000_000_000;

/// What seeding produced: how to call the API as the demo Admin, and the demo units with
/// their fresh device keys for the simulated fleet.
pub struct Seeded {
    /// The demo organisation.
    pub organisation: Organisation,
    /// Its Admin, who registers, installs and pays for the demo units.
    pub admin: Caller,
    /// A fresh API token of the Admin, valid until the next start.
    pub token: TokenSecret,
    /// The demo units, in serial order.
    pub units: Vec<SeededUnit>,
}

/// One demo unit, registered and installed.
pub struct SeededUnit {
    /// `DEMO-000001`…, also the device's MQTT client id.
    pub serial: String,
    /// The complete installation whose account bills the unit (payments name it).
    pub installation_id: String,
    /// The device key issued by this start; the previous one no longer works.
    pub device_key: DeviceKey,
}

/// Seeds (first start) or finds and re-keys (later starts) the demo organisation with
/// `devices` demo units. Blocks a runtime thread in place (the directory and engine calls
/// wait for durable commits), so it needs the multi-threaded runtime the server needs.
pub async fn seed(server: &Server, devices: usize) -> anyhow::Result<Seeded> {
    tokio::task::block_in_place(|| seed_blocking(server, devices))
}

fn seed_blocking(server: &Server, devices: usize) -> anyhow::Result<Seeded> {
    let platform = server.platform();
    let (record, admin, token) = match record::load(&platform.store)? {
        Some(record) => reissue_token(platform, record)?,
        None => found(platform)?,
    };
    let organisation = platform.directory.organisation(&record.org_id)?;
    let units = (1..=devices)
        .map(|n| seed_unit(server, &admin, &record.usage_plan_id, n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Seeded {
        organisation,
        admin,
        token,
        units,
    })
}

/// Creates the demo organisation, its Admin and plans, and remembers them.
fn found(platform: &Platform) -> anyhow::Result<(DemoRecord, Caller, TokenSecret)> {
    let founded = platform
        .directory
        .create_organisation(&NewOrganisation {
            name: "Sunledger Demo".into(),
            country: "KE".into(),
            currency: "KES".into(),
            time_zone: "Africa/Nairobi".into(),
            accept_terms: true,
            admin_name: "Demo Admin".into(),
            admin_email: "demo-admin@example.com".into(),
        })
        .context("creating the demo organisation")?;
    let admin = Caller {
        org_id: founded.organisation.id.clone(),
        member_id: founded.admin.id.clone(),
        role: founded.admin.role,
    };
    let usage = NewPlan {
        name: "Demo pay per use".into(),
        tariff: Some(NewTariff::Usage {
            price_per_kwh: USAGE_PRICE_PER_KWH.into(),
        }),
        auto_switch_off: true,
        ..NewPlan::default()
    };
    let usage = platform.directory.create_plan(&admin, &usage)?;
    let instalment = NewPlan {
        name: "Demo daily instalments".into(),
        tariff: Some(NewTariff::Instalment {
            amount_per_period: "30".into(),
            period: Some(Period::Daily),
            token_time: Some(TimeMode::AddTime),
        }),
        auto_switch_off: true,
        ..NewPlan::default()
    };
    platform.directory.create_plan(&admin, &instalment)?;
    let record = DemoRecord {
        org_id: admin.org_id.clone(),
        admin_member_id: admin.member_id.clone(),
        usage_plan_id: usage.id,
        token_id: founded.token.token.id,
    };
    record::save(&platform.store, &record)?;
    Ok((record, admin, founded.token.secret))
}

/// Revokes the previous demo token (unless someone already did) and issues a fresh one.
/// Revoking first keeps the Admin below the directory's tokens-per-member limit however
/// often the demo restarts.
fn reissue_token(
    platform: &Platform,
    mut record: DemoRecord,
) -> anyhow::Result<(DemoRecord, Caller, TokenSecret)> {
    let admin = platform
        .directory
        .member(&record.org_id, &record.admin_member_id)
        .context("finding the demo Admin again")?;
    let admin = Caller {
        org_id: admin.org_id,
        member_id: admin.id,
        role: admin.role,
    };
    match platform
        .directory
        .revoke_token(&admin, &admin.member_id, &record.token_id)
    {
        Ok(()) | Err(DirectoryError::TokenNotFound(_)) => {}
        Err(error) => return Err(error.into()),
    }
    let issued = platform.directory.create_token(&admin, &admin.member_id)?;
    record.token_id = issued.token.id;
    record::save(&platform.store, &record)?;
    Ok((record, admin, issued.secret))
}

/// Registers (or re-keys) demo unit `n`, installs it unless it is installed, and makes sure
/// its welcome credit is paid.
fn seed_unit(
    server: &Server,
    admin: &Caller,
    plan_id: &str,
    n: usize,
) -> anyhow::Result<SeededUnit> {
    let platform = server.platform();
    let serial = format!("{SERIAL_PREFIX}{n:06}");
    let (device_key, current) = match platform.directory.unit(&admin.org_id, &serial) {
        Ok((held, _)) => (server.rotate_device_key(&serial, 0)?, held.current),
        Err(DirectoryError::UnitNotFound(_)) => {
            let new = NewUnit {
                serial: serial.clone(),
                imei: imei(n),
                ..NewUnit::default()
            };
            let (_, device_key) = platform
                .directory
                .register_unit(admin, &new, &platform.units)
                .with_context(|| {
                    format!(
                        "registering {serial} in the demo organisation (a database from an \
                         older demo? start with a fresh --database)"
                    )
                })?;
            (device_key, None)
        }
        Err(error) => return Err(error.into()),
    };
    let installation_id = match current {
        Some(assignment) => assignment.installation_id,
        None => install(platform, admin, &serial, plan_id, n)?,
    };
    pay(
        platform,
        admin,
        &installation_id,
        WELCOME_CREDIT,
        &format!("{serial}-welcome"),
        PaymentChannel::Other,
    )?;
    Ok(SeededUnit {
        serial,
        installation_id,
        device_key,
    })
}

/// Registers a new customer on unit `serial` and plan `plan_id` in both steps, as a
/// Technician does through the Installations service; returns the complete installation's id.
fn install(
    platform: &Platform,
    admin: &Caller,
    serial: &str,
    plan_id: &str,
    n: usize,
) -> Result<String, DirectoryError> {
    let customer = NewCustomer {
        customer_type: CustomerType::Consumer,
        name: format!("Demo Customer {n}"),
        category: String::new(),
        dealer_code: String::new(),
        estimated_monthly_revenue: String::new(),
        email: format!("{}@example.com", serial.to_lowercase()),
        phone: String::new(),
        contact_preference: ContactPreference::Email,
        details: UserDetails::default(),
    };
    let start = NewRegistration {
        unit_serial: serial.to_owned(),
        contact: Some(RegistrationContact::New(customer)),
        location: Some(DEMO_LOCATION),
    };
    let installation_id = match platform.directory.start_registration(admin, &start) {
        Ok(partial) => partial.id,
        // An earlier start stopped between the two steps: complete its registration.
        Err(DirectoryError::UnitInUse {
            installation_id, ..
        }) => installation_id,
        Err(error) => return Err(error),
    };
    let completion = Completion {
        installation_id,
        plan: Some(PlanChoice {
            plan_id: plan_id.to_owned(),
            ..PlanChoice::default()
        }),
        ..Completion::default()
    };
    let engine = &platform.engine;
    let installation =
        platform
            .directory
            .complete_registration(admin, &completion, |serial, opening| {
                engine.open_account(serial, opening)
            })?;
    Ok(installation.id)
}

/// A valid IMEI for demo unit `n`: 14 digits from `n` and whichever check digit the
/// directory's own IMEI validation accepts.
fn imei(n: usize) -> String {
    let body = format!("{:014}", DEMO_IMEI_BASE + n as u64);
    (0..=9)
        .map(|digit| format!("{body}{digit}"))
        .find(|candidate| units::imei("imei", candidate).is_ok())
        .expect("exactly one of ten check digits is the Luhn digit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_imeis_pass_the_directory_check_and_differ_per_unit() {
        let imeis: Vec<String> = (1..=50).map(imei).collect();
        for imei in &imeis {
            assert_eq!(imei.len(), units::IMEI_DIGITS);
            assert!(units::imei("imei", imei).is_ok(), "{imei}");
        }
        let distinct: std::collections::BTreeSet<_> = imeis.iter().collect();
        assert_eq!(distinct.len(), imeis.len());
    }
}
