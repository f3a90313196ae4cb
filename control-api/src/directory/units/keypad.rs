//! Keypad units in the directory: validating a unit's OpenPAYGO setup at registration, its
//! token log, and the Admin's token actions (counter sync, resend), each audited.
//!
//! Tokens are made by the billing engine in the transaction that pays for them; this module
//! reads the log and finds the customer a token is sent to.

use sunledger_billing::keypad::{CommMode, IssuedToken, KeypadSetup};
use sunledger_billing::openpaygo::{MAX_STARTING_CODE, TokenFormat, TokenKey};
use sunledger_billing::worker::Engine;

use super::super::audit::AuditAction;
use super::super::customers::{CUSTOMERS, customer_in};
use super::super::installations::{
    INSTALLATIONS, UNIT_INSTALLATIONS, installation_in, unit_holder,
};
use super::super::{Directory, DirectoryError};
use super::{UNITS, serial, unit_in};
use crate::roles::Caller;
use crate::validate::FieldViolation;

/// A keypad unit's token setup as the request gave it (field `keypad`).
#[derive(Clone, Debug, Default)]
pub struct KeypadInput {
    /// 32 hexadecimal characters (field `keypad.key`).
    pub key: String,
    /// At most 9 digits (field `keypad.starting_code`).
    pub starting_code: u32,
    /// Keypads with the keys 1–4 only.
    pub restricted_digits: bool,
    /// 12-digit tokens.
    pub extended: bool,
    /// The unit's factory count; `None` means 1.
    pub initial_count: Option<u32>,
}

/// A token and where it was sent, for the API's answer.
#[derive(Clone, Debug)]
pub struct TokenSent {
    /// The unit.
    pub serial: String,
    /// The token.
    pub token: IssuedToken,
    /// The customer's phone (E.164) it was sent to by SMS; `None` when the unit has no
    /// customer with a phone.
    pub phone: Option<String>,
}

/// The keypad setup `mode` needs from `input`: required for keypad modes, refused for
/// connected units, every field checked.
pub(super) fn keypad_setup(
    mode: CommMode,
    input: Option<&KeypadInput>,
) -> Result<Option<KeypadSetup>, FieldViolation> {
    let input = match (mode.uses_tokens(), input) {
        (false, None) => return Ok(None),
        (false, Some(_)) => {
            return Err(FieldViolation::new(
                "keypad",
                "only keypad units (comm_mode KEYPAD or BOTH) take a keypad setup",
            ));
        }
        (true, None) => {
            return Err(FieldViolation::new(
                "keypad",
                "required for comm_mode KEYPAD or BOTH",
            ));
        }
        (true, Some(input)) => input,
    };
    let key = TokenKey::from_hex(input.key.trim())
        .map_err(|error| FieldViolation::new("keypad.key", error.to_string()))?;
    if input.starting_code > MAX_STARTING_CODE {
        return Err(FieldViolation::new(
            "keypad.starting_code",
            "at most 9 digits (999999999)",
        ));
    }
    Ok(Some(KeypadSetup {
        mode,
        key,
        starting_code: input.starting_code,
        format: TokenFormat {
            extended: input.extended,
            restricted_digits: input.restricted_digits,
        },
        initial_count: input.initial_count.unwrap_or(1),
    }))
}

impl Directory {
    /// Keypad unit `serial` of the caller's organisation's token log, newest first.
    pub fn unit_tokens(
        &self,
        org_id: &str,
        serial_raw: &str,
    ) -> Result<Vec<IssuedToken>, DirectoryError> {
        let serial = self.keypad_unit(org_id, serial_raw)?;
        let mut tokens = self.store.tokens(&serial)?;
        tokens.reverse();
        Ok(tokens)
    }

    /// Issues a COUNTER_SYNC token for keypad unit `serial` and records who asked.
    pub fn counter_sync(
        &self,
        caller: &Caller,
        serial_raw: &str,
        engine: &Engine,
    ) -> Result<TokenSent, DirectoryError> {
        let serial = self.keypad_unit(&caller.org_id, serial_raw)?;
        let token = engine.counter_sync(&serial, &caller.member_id)?;
        let description = format!("counter sync token, count {}", token.count);
        self.change(&caller.org_id, &caller.member_id, |change| {
            change.record(AuditAction::KeypadCounterSynced, &serial, description)
        })?;
        self.token_recipient(&caller.org_id, &serial, token)
    }

    /// The last token of keypad unit `serial`, to send again; records who asked.
    pub fn resend_last_token(
        &self,
        caller: &Caller,
        serial_raw: &str,
    ) -> Result<TokenSent, DirectoryError> {
        let serial = self.keypad_unit(&caller.org_id, serial_raw)?;
        let token = self
            .store
            .tokens(&serial)?
            .pop()
            .ok_or_else(|| DirectoryError::NoToken(serial.clone()))?;
        let description = format!("resent token count {}", token.count);
        self.change(&caller.org_id, &caller.member_id, |change| {
            change.record(AuditAction::KeypadTokenResent, &serial, description)
        })?;
        self.token_recipient(&caller.org_id, &serial, token)
    }

    /// `token` of unit `serial` with the phone it is sent to.
    fn token_recipient(
        &self,
        org_id: &str,
        serial: &str,
        token: IssuedToken,
    ) -> Result<TokenSent, DirectoryError> {
        Ok(TokenSent {
            serial: serial.to_owned(),
            token,
            phone: self.customer_phone(org_id, serial)?,
        })
    }

    /// The phone (E.164) of the customer who has unit `serial` of `org_id` now, if any: where
    /// its tokens and reminders are texted.
    pub fn customer_phone(
        &self,
        org_id: &str,
        serial: &str,
    ) -> Result<Option<String>, DirectoryError> {
        let txn = self.read()?;
        let Some(installation_id) =
            unit_holder(&txn.open_table(UNIT_INSTALLATIONS)?, org_id, serial)?
        else {
            return Ok(None);
        };
        let installation =
            installation_in(&txn.open_table(INSTALLATIONS)?, org_id, &installation_id)?;
        let Some(customer_id) = installation.customer_id else {
            return Ok(None);
        };
        Ok(customer_in(&txn.open_table(CUSTOMERS)?, org_id, &customer_id)?.phone)
    }

    /// The serial of keypad unit `serial_raw` of `org_id`: NOT_FOUND for another
    /// organisation's, FAILED_PRECONDITION for a connected unit.
    fn keypad_unit(&self, org_id: &str, serial_raw: &str) -> Result<String, DirectoryError> {
        let serial = serial("serial", serial_raw)?;
        let unit = unit_in(&self.read()?.open_table(UNITS)?, org_id, serial)?;
        if !unit.comm_mode.uses_tokens() {
            return Err(DirectoryError::NotKeypad(unit.serial));
        }
        Ok(unit.serial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keypad_setup_is_required_exactly_for_keypad_modes_and_every_field_is_checked() {
        let good = KeypadInput {
            key: "a29ab82edc5fbbc41ec9530f6dac86b1".into(),
            starting_code: 123_456_789,
            ..KeypadInput::default()
        };
        let field =
            |mode, input: Option<&KeypadInput>| keypad_setup(mode, input).unwrap_err().field;
        assert_eq!(field(CommMode::Connected, Some(&good)), "keypad");
        assert_eq!(field(CommMode::Keypad, None), "keypad");
        let short_key = KeypadInput {
            key: "abc".into(),
            ..good.clone()
        };
        assert_eq!(field(CommMode::Both, Some(&short_key)), "keypad.key");
        let long_code = KeypadInput {
            starting_code: 1_000_000_000,
            ..good.clone()
        };
        assert_eq!(
            field(CommMode::Keypad, Some(&long_code)),
            "keypad.starting_code"
        );
        let setup = keypad_setup(CommMode::Keypad, Some(&good))
            .unwrap()
            .unwrap();
        assert_eq!(setup.initial_count, 1);
        assert!(keypad_setup(CommMode::Connected, None).unwrap().is_none());
    }
}
