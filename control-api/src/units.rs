//! The `sunledger.api.v1.Units` service: control units, their device state and customer
//! history, and Offline Disable.

use sunledger_billing::engine::UnitState;
use sunledger_billing::keypad::{CommMode, IssuedToken, TokenReason};
use sunledger_billing::openpaygo::TokenKind;
use sunledger_proto::api::v1 as wire;
use sunledger_proto::api::v1::units_server::Units;
use sunledger_proto::device;
use tonic::{Request, Response, Status};

use crate::convert::timestamp;
use crate::directory::installations::UnitAssignment;
use crate::directory::{
    DirectoryError, EnableStatus, HeldUnit, KeypadInput, NewUnit, TokenSent, UnitChanges,
    UnitFilter,
};
use crate::notify::{self, SmsKind};
use crate::pagination::PageRequest;
use crate::platform::Platform;
use crate::roles::Role;
use crate::validate::FieldViolation;
use crate::{auth, blocking};

/// Serves `Units` from the directory, the billing engine and the broker's credential check.
pub struct UnitsService {
    platform: Platform,
}

impl UnitsService {
    /// A service over `platform`.
    pub fn new(platform: Platform) -> UnitsService {
        UnitsService { platform }
    }
}

impl UnitsService {
    /// Texts `sent.token` to the customer and returns it as the reply carries it.
    fn send_token(&self, sent: TokenSent) -> wire::KeypadToken {
        let serial = sent.serial;
        let text = notify::token_message(&serial, &sent.token);
        notify::send(
            &*self.platform.sms,
            SmsKind::Token,
            sent.phone.as_deref(),
            &text,
        );
        token_to_wire(&serial, &sent.token)
    }
}

/// A keypad token as replies carry it.
pub(crate) fn token_to_wire(serial: &str, token: &IssuedToken) -> wire::KeypadToken {
    let (reason, payment_reference) = match &token.reason {
        TokenReason::Payment { provider_ref } => ("payment", provider_ref.clone()),
        TokenReason::PlanCompleted => ("plan_completed", String::new()),
        TokenReason::CounterSync => ("counter_sync", String::new()),
    };
    wire::KeypadToken {
        unit_serial: serial.to_owned(),
        count: token.count,
        kind: match token.kind {
            TokenKind::AddTime => wire::KeypadTokenKind::AddTime,
            TokenKind::SetTime => wire::KeypadTokenKind::SetTime,
            TokenKind::DisablePayg => wire::KeypadTokenKind::DisablePayg,
            TokenKind::CounterSync => wire::KeypadTokenKind::CounterSync,
        }
        .into(),
        value: token.value,
        code: token.code.clone(),
        reason: reason.to_owned(),
        payment_reference,
        issued_by: token.issued_by.clone(),
        issued_at: Some(timestamp(token.at_ms)),
    }
}

#[tonic::async_trait]
impl Units for UnitsService {
    async fn register_unit(
        &self,
        request: Request<wire::RegisterUnitRequest>,
    ) -> Result<Response<wire::RegisterUnitResponse>, Status> {
        let caller = auth::authorised(&request, Role::Technician)?;
        let request = request.into_inner();
        if request.development_mode {
            // Accepting unauthenticated messages is a security decision, not a technician's.
            caller.require(Role::Admin)?;
        }
        let comm_mode = match wire::CommMode::try_from(request.comm_mode) {
            Ok(wire::CommMode::Unspecified | wire::CommMode::Connected) => CommMode::Connected,
            Ok(wire::CommMode::Keypad) => CommMode::Keypad,
            Ok(wire::CommMode::Both) => CommMode::Both,
            Err(_) => {
                return Err(FieldViolation::new("comm_mode", "unknown communication mode").into());
            }
        };
        let new = NewUnit {
            serial: request.serial,
            imei: request.imei,
            entity_id: request.entity_id,
            comm_mode,
            keypad: request.keypad.map(|keypad| KeypadInput {
                key: keypad.key,
                starting_code: keypad.starting_code,
                restricted_digits: keypad.restricted_digits,
                extended: keypad.extended,
                initial_count: keypad.initial_count,
            }),
            development_mode: request.development_mode,
        };
        let platform = self.platform.clone();
        let (unit, key) = blocking(move || {
            platform
                .directory
                .register_unit(&caller, &new, &platform.units)
        })
        .await?;
        let held = HeldUnit {
            unit,
            current: None,
        };
        let (device_key, device_secret) = match comm_mode.uses_mqtt() {
            true => (key.hex(), key.mqtt_password()),
            false => Default::default(),
        };
        let verify_key = self
            .platform
            .store
            .command_verifying_key(&held.unit.org_id)
            .map_err(DirectoryError::from)?;
        Ok(Response::new(wire::RegisterUnitResponse {
            unit: Some(unit_to_wire(held)),
            device_secret,
            command_verify_key: hex::encode(verify_key.as_bytes()),
            device_key,
        }))
    }

    async fn list_keypad_tokens(
        &self,
        request: Request<wire::ListKeypadTokensRequest>,
    ) -> Result<Response<wire::ListKeypadTokensResponse>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let serial = request.into_inner().serial;
        let platform = self.platform.clone();
        let tokens = blocking(move || {
            let tokens = platform.directory.unit_tokens(&caller.org_id, &serial)?;
            Ok::<_, DirectoryError>((serial, tokens))
        })
        .await?;
        let (serial, tokens) = tokens;
        Ok(Response::new(wire::ListKeypadTokensResponse {
            tokens: tokens
                .iter()
                .map(|token| token_to_wire(serial.trim(), token))
                .collect(),
        }))
    }

    async fn issue_counter_sync(
        &self,
        request: Request<wire::IssueCounterSyncRequest>,
    ) -> Result<Response<wire::KeypadToken>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let serial = request.into_inner().serial;
        let platform = self.platform.clone();
        let sent = blocking(move || {
            platform
                .directory
                .counter_sync(&caller, &serial, &platform.engine)
        })
        .await?;
        Ok(Response::new(self.send_token(sent)))
    }

    async fn resend_last_token(
        &self,
        request: Request<wire::ResendLastTokenRequest>,
    ) -> Result<Response<wire::KeypadToken>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let serial = request.into_inner().serial;
        let platform = self.platform.clone();
        let sent = blocking(move || platform.directory.resend_last_token(&caller, &serial)).await?;
        Ok(Response::new(self.send_token(sent)))
    }

    async fn rotate_device_key(
        &self,
        request: Request<wire::RotateDeviceKeyRequest>,
    ) -> Result<Response<wire::RotateDeviceKeyResponse>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let request = request.into_inner();
        let platform = self.platform.clone();
        let (rotated, held) = blocking(move || {
            let rotated = platform.directory.rotate_device_key(
                &caller,
                &request.serial,
                request.grace_seconds,
                &platform.units,
            )?;
            let (held, _) = platform.directory.unit(&caller.org_id, &request.serial)?;
            Ok::<_, DirectoryError>((rotated, held))
        })
        .await?;
        Ok(Response::new(wire::RotateDeviceKeyResponse {
            unit: Some(unit_to_wire(held)),
            device_key: rotated.key.hex(),
            device_secret: rotated.key.mqtt_password(),
            previous_key_valid_until: rotated.previous_until_ms.map(timestamp),
        }))
    }

    async fn get_unit(
        &self,
        request: Request<wire::GetUnitRequest>,
    ) -> Result<Response<wire::UnitDetails>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let serial = request.into_inner().serial;
        let platform = self.platform.clone();
        let details = blocking(move || details(&platform, &caller.org_id, &serial)).await?;
        Ok(Response::new(details))
    }

    async fn list_units(
        &self,
        request: Request<wire::ListUnitsRequest>,
    ) -> Result<Response<wire::ListUnitsResponse>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let request = request.into_inner();
        let page = PageRequest::parse(request.page_size, &request.page_token)?;
        let filter = UnitFilter {
            enable_status: match request.enable_status() {
                wire::EnableStatus::Unspecified => None,
                wire::EnableStatus::Enabled => Some(EnableStatus::Enabled),
                wire::EnableStatus::OfflineDisabled => Some(EnableStatus::OfflineDisabled),
            },
            serial_prefix: request.serial_prefix,
        };
        let directory = self.platform.directory.clone();
        let page = blocking(move || directory.units(&caller.org_id, &filter, &page)).await?;
        Ok(Response::new(wire::ListUnitsResponse {
            units: page.items.into_iter().map(unit_to_wire).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_unit(
        &self,
        request: Request<wire::UpdateUnitRequest>,
    ) -> Result<Response<wire::ControlUnit>, Status> {
        let caller = auth::authorised(&request, Role::Technician)?;
        let request = request.into_inner();
        let changes = UnitChanges {
            imei: request.imei,
            entity_id: request.entity_id,
        };
        let directory = self.platform.directory.clone();
        let (unit, current) = blocking(move || {
            directory.update_unit(&caller, &request.serial, &changes)?;
            directory.unit(&caller.org_id, &request.serial)
        })
        .await
        .map(|(held, _)| (held.unit, held.current))?;
        Ok(Response::new(unit_to_wire(HeldUnit { unit, current })))
    }

    async fn set_enable_status(
        &self,
        request: Request<wire::SetEnableStatusRequest>,
    ) -> Result<Response<wire::UnitDetails>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let request = request.into_inner();
        let status = match request.enable_status() {
            wire::EnableStatus::Enabled => EnableStatus::Enabled,
            wire::EnableStatus::OfflineDisabled => EnableStatus::OfflineDisabled,
            wire::EnableStatus::Unspecified => {
                return Err(FieldViolation::new(
                    "enable_status",
                    "must be ENABLE_STATUS_ENABLED or ENABLE_STATUS_OFFLINE_DISABLED",
                )
                .into());
            }
        };
        let platform = self.platform.clone();
        let details = blocking(move || {
            let engine = &platform.engine;
            platform
                .directory
                .set_enable_status(&caller, &request.serial, status, engine)?;
            details(&platform, &caller.org_id, &request.serial)
        })
        .await?;
        Ok(Response::new(details))
    }
}

/// Unit `serial` of `org_id` with its device state and customer history.
fn details(
    platform: &Platform,
    org_id: &str,
    serial: &str,
) -> Result<wire::UnitDetails, DirectoryError> {
    let (held, history) = platform.directory.unit(org_id, serial)?;
    let state = platform.engine.unit(&held.unit.serial)?.unwrap_or_default();
    Ok(wire::UnitDetails {
        unit: Some(unit_to_wire(held)),
        device: Some(device_to_wire(&state)),
        customer_history: history.into_iter().map(possession_to_wire).collect(),
    })
}

/// A unit and its current customer as replies carry them.
fn unit_to_wire(held: HeldUnit) -> wire::ControlUnit {
    let HeldUnit { unit, current } = held;
    let (customer_id, installation_id) = current
        .map(|current| (current.customer_id, current.installation_id))
        .unwrap_or_default();
    wire::ControlUnit {
        serial: unit.serial,
        imei: unit.imei,
        entity_id: unit.entity_id,
        enable_status: match unit.enable_status {
            EnableStatus::Enabled => wire::EnableStatus::Enabled,
            EnableStatus::OfflineDisabled => wire::EnableStatus::OfflineDisabled,
        }
        .into(),
        enable_status_changed: Some(wire::EnableStatusChange {
            member_id: unit.status_changed.member_id,
            email: unit.status_changed.email,
            at: Some(timestamp(unit.status_changed.at_ms)),
        }),
        registered_at: Some(timestamp(unit.registered_at_ms)),
        current_customer_id: customer_id,
        current_installation_id: installation_id,
        comm_mode: match unit.comm_mode {
            CommMode::Connected => wire::CommMode::Connected,
            CommMode::Keypad => wire::CommMode::Keypad,
            CommMode::Both => wire::CommMode::Both,
        }
        .into(),
        keypad_restricted_digits: unit
            .token_format
            .is_some_and(|format| format.restricted_digits),
        keypad_extended: unit.token_format.is_some_and(|format| format.extended),
        development_mode: unit.development_mode,
    }
}

/// What the engine knows of the device, as replies carry it.
fn device_to_wire(state: &UnitState) -> wire::DeviceState {
    let desired = state.desired;
    let confirmed_load = state.confirmed.map(|(_, load)| load_to_wire(load));
    let offline_disable_confirmed = state.offline_disabled
        && !state.awaiting_ack()
        && desired.is_some_and(|command| command.reason == device::Reason::OfflineDisable as i32);
    wire::DeviceState {
        online: state.online,
        last_seen: (state.last_seen_ms > 0).then(|| timestamp(state.last_seen_ms)),
        desired_load: desired.map_or(wire::UnitLoad::Unspecified, |command| {
            load_to_wire(command.load)
        }) as i32,
        desired_reason: desired.map_or(wire::LoadReason::Unspecified, |command| {
            reason_to_wire(command.reason)
        }) as i32,
        confirmed_load: confirmed_load.unwrap_or(wire::UnitLoad::Unspecified) as i32,
        awaiting_ack: state.awaiting_ack(),
        offline_disable_confirmed,
        consumed_wh: state.consumed_wh,
        foreign_commands: state.foreign_commands,
        last_foreign_command: (state.last_foreign_command_ms > 0)
            .then(|| timestamp(state.last_foreign_command_ms)),
    }
}

/// A device protocol load state number as the API's enum.
pub(crate) fn load_to_wire(load: i32) -> wire::UnitLoad {
    match device::LoadState::try_from(load) {
        Ok(device::LoadState::On) => wire::UnitLoad::On,
        Ok(device::LoadState::Off) => wire::UnitLoad::Off,
        Ok(device::LoadState::Unspecified) | Err(_) => wire::UnitLoad::Unspecified,
    }
}

/// A device protocol reason number as the API's enum.
pub(crate) fn reason_to_wire(reason: i32) -> wire::LoadReason {
    match device::Reason::try_from(reason) {
        Ok(device::Reason::CreditExhausted) => wire::LoadReason::CreditExhausted,
        Ok(device::Reason::CreditRestored) => wire::LoadReason::CreditRestored,
        Ok(device::Reason::OfflineDisable) => wire::LoadReason::OfflineDisable,
        Ok(device::Reason::Manual) => wire::LoadReason::Manual,
        Ok(device::Reason::PlanCompleted) => wire::LoadReason::PlanCompleted,
        Ok(device::Reason::Unspecified) | Err(_) => wire::LoadReason::Unspecified,
    }
}

/// One customer's possession of a unit as replies carry it.
fn possession_to_wire(assignment: UnitAssignment) -> wire::CustomerPossession {
    wire::CustomerPossession {
        active: assignment.end_ms.is_none(),
        customer_id: assignment.customer_id,
        installation_id: assignment.installation_id,
        start: Some(timestamp(assignment.start_ms)),
        end: assignment.end_ms.map(timestamp),
    }
}
