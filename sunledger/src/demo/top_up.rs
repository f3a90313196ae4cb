//! Demo payments: the welcome credit and the periodic top-ups, recorded through the
//! directory's payment operation exactly as the Payments service records them (validated,
//! idempotent by reference, written to the ledger by the engine, audited).

use std::collections::HashMap;
use std::time::Duration;

use sunledger_billing::ledger::PaymentChannel;
use sunledger_control_api::Platform;
use sunledger_control_api::directory::{DirectoryError, NewPayment};
use sunledger_control_api::roles::Caller;
use sunledger_proto::device::LoadState;

use super::is_demo;

/// How often switched-off demo units are topped up.
const TOP_UP_INTERVAL: Duration = Duration::from_secs(60);
/// Most units topped up per round, so some stay off long enough to be seen.
const TOP_UPS_PER_ROUND: usize = 5;
/// What a top-up pays, in the organisation's KES.
const TOP_UP_AMOUNT: &str = "1.00";

/// Records a payment of `amount` on installation `installation_id` as `admin`. `reference`
/// is the idempotency key: the same reference again records nothing new.
pub(super) fn pay(
    platform: &Platform,
    admin: &Caller,
    installation_id: &str,
    amount: &str,
    reference: &str,
    channel: PaymentChannel,
) -> Result<(), DirectoryError> {
    let payment = NewPayment {
        installation_id: installation_id.to_owned(),
        amount: amount.to_owned(),
        reference: reference.to_owned(),
        channel: Some(channel),
    };
    platform
        .directory
        .record_payment(admin, &payment, &platform.engine)?;
    Ok(())
}

/// Every minute, pays for up to [`TOP_UPS_PER_ROUND`] switched-off demo units, as customers
/// would by mobile money. `installations` maps each demo serial to its installation. The
/// reference names the unit and the minute, so a restart never reuses an earlier round's
/// reference (which would be a duplicate and pay nothing).
pub(super) async fn top_up(
    platform: Platform,
    admin: Caller,
    installations: HashMap<String, String>,
) {
    let mut ticker = tokio::time::interval(TOP_UP_INTERVAL);
    loop {
        ticker.tick().await;
        let minute = chrono::Utc::now().timestamp() / 60;
        let units = platform.store.units_hot(is_demo).unwrap_or_default();
        let due: Vec<(String, String)> = units
            .into_iter()
            .filter(|(_, unit)| {
                unit.state
                    .desired
                    .is_some_and(|desired| desired.load == LoadState::Off as i32)
            })
            .filter_map(|(serial, _)| Some((installations.get(&serial)?.clone(), serial)))
            .take(TOP_UPS_PER_ROUND)
            .collect();
        let (platform, admin) = (platform.clone(), admin.clone());
        let round = tokio::task::spawn_blocking(move || {
            for (installation_id, serial) in due {
                let reference = format!("{serial}-top-up-{minute}");
                let channel = PaymentChannel::MobileMoney;
                if let Err(error) = pay(
                    &platform,
                    &admin,
                    &installation_id,
                    TOP_UP_AMOUNT,
                    &reference,
                    channel,
                ) {
                    tracing::warn!(%error, serial, "demo top-up refused");
                }
            }
        });
        if round.await.is_err() {
            tracing::error!("demo top-up round panicked");
        }
    }
}
