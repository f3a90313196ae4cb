//! Conversions between directory records and the wire messages of `sunledger.api.v1`, so
//! handlers only move values across.

use prost_types::Timestamp;
use sunledger_billing::store::CommandKeys;
use sunledger_proto::api::v1 as wire;

use crate::directory::{AuditEvent, IssuedToken, Member, Organisation, Token};
use crate::roles::Role;
use crate::validate::FieldViolation;

/// A protobuf timestamp of unix milliseconds.
pub fn timestamp(at_ms: i64) -> Timestamp {
    Timestamp {
        seconds: at_ms.div_euclid(1_000),
        // Below 1e9, so it fits.
        nanos: (at_ms.rem_euclid(1_000) * 1_000_000) as i32,
    }
}

/// The role a request names in `field`; ROLE_UNSPECIFIED and unknown numbers are invalid.
pub fn role_from_wire(field: &'static str, value: i32) -> Result<Role, FieldViolation> {
    match wire::Role::try_from(value) {
        Ok(wire::Role::Admin) => Ok(Role::Admin),
        Ok(wire::Role::Technician) => Ok(Role::Technician),
        Ok(wire::Role::Observer) => Ok(Role::Observer),
        Ok(wire::Role::Unspecified) | Err(_) => Err(FieldViolation::new(
            field,
            "must be ROLE_ADMIN, ROLE_TECHNICIAN or ROLE_OBSERVER",
        )),
    }
}

impl From<Role> for wire::Role {
    fn from(role: Role) -> wire::Role {
        match role {
            Role::Admin => wire::Role::Admin,
            Role::Technician => wire::Role::Technician,
            Role::Observer => wire::Role::Observer,
        }
    }
}

/// An organisation as replies carry it, with its command keys as they stand at `now_ms`.
pub fn organisation_to_wire(
    organisation: Organisation,
    keys: &CommandKeys,
    now_ms: i64,
) -> wire::Organisation {
    let pending = keys.pending_at(now_ms);
    wire::Organisation {
        command_verify_key: hex::encode(keys.signing_at(now_ms).verifying_key().as_bytes()),
        next_command_verify_key: pending
            .map(|(key, _)| hex::encode(key.as_bytes()))
            .unwrap_or_default(),
        next_command_key_from: pending.map(|(_, from_ms)| timestamp(from_ms)),
        id: organisation.id,
        name: organisation.name,
        country: organisation.country,
        currency: organisation.currency,
        time_zone: organisation.time_zone,
        terms_accepted: Some(wire::TermsAcceptance {
            member_id: organisation.terms_accepted.member_id,
            accepted_at: Some(timestamp(organisation.terms_accepted.accepted_at_ms)),
        }),
        created_at: Some(timestamp(organisation.created_at_ms)),
    }
}

impl From<Member> for wire::Member {
    fn from(member: Member) -> wire::Member {
        wire::Member {
            id: member.id,
            name: member.name,
            email: member.email,
            role: wire::Role::from(member.role).into(),
            created_at: Some(timestamp(member.created_at_ms)),
        }
    }
}

impl From<Token> for wire::Token {
    fn from(token: Token) -> wire::Token {
        wire::Token {
            id: token.id,
            member_id: token.member_id,
            created_at: Some(timestamp(token.created_at_ms)),
        }
    }
}

impl From<IssuedToken> for wire::IssuedToken {
    fn from(issued: IssuedToken) -> wire::IssuedToken {
        wire::IssuedToken {
            secret: issued.secret.expose().to_owned(),
            token: Some(issued.token.into()),
        }
    }
}

impl From<AuditEvent> for wire::AuditEvent {
    fn from(event: AuditEvent) -> wire::AuditEvent {
        wire::AuditEvent {
            sequence: event.sequence,
            at: Some(timestamp(event.at_ms)),
            actor_member_id: event.actor_member_id,
            action: event.action,
            target_id: event.target_id,
            description: event.description,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_split_milliseconds_including_before_the_epoch() {
        assert_eq!(
            timestamp(1_500),
            Timestamp {
                seconds: 1,
                nanos: 500_000_000
            }
        );
        assert_eq!(
            timestamp(-1),
            Timestamp {
                seconds: -1,
                nanos: 999_000_000
            }
        );
    }

    #[test]
    fn every_role_survives_the_wire_and_unspecified_is_refused() {
        for role in [Role::Admin, Role::Technician, Role::Observer] {
            assert_eq!(
                role_from_wire("role", wire::Role::from(role).into()),
                Ok(role)
            );
        }
        for value in [0, 99, -1] {
            assert_eq!(role_from_wire("role", value).unwrap_err().field, "role");
        }
    }
}
