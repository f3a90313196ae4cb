//! Who may do what. Every permission decision of the API is a call to [`Caller::require`] or
//! [`Caller::require_for_member`] at the top of a handler, so the rules live here and each
//! service states what it needs in one line.

use serde::{Deserialize, Serialize};

/// What a team member may do. A higher role may do everything a lower one may.
///
/// Stored by variant position: add new roles at the end only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Everything, including managing the organisation and its team.
    Admin,
    /// Day-to-day operations and their own API tokens; not the team or the organisation.
    Technician,
    /// Read-only.
    Observer,
}

impl Role {
    /// The role's name, as audit descriptions and errors show it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::Technician => "Technician",
            Role::Observer => "Observer",
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn includes(self, needed: Role) -> bool {
        self.rank() >= needed.rank()
    }

    fn rank(self) -> u8 {
        match self {
            Role::Observer => 0,
            Role::Technician => 1,
            Role::Admin => 2,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The authenticated team member a request acts for. The authenticator puts it into the
/// request's extensions; handlers take it from there and act only within its organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The organisation every read and write of the request is confined to.
    pub org_id: String,
    /// The member, recorded as the actor of every change the request makes.
    pub member_id: String,
    /// The member's role when the request arrived.
    pub role: Role,
}

/// A call the caller's role does not allow (PERMISSION_DENIED).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("this call needs the {needed} role; the caller is {held}")]
pub struct Forbidden {
    /// The least role that may make the call.
    pub needed: Role,
    /// The caller's role.
    pub held: Role,
}

impl Caller {
    /// Allows the call if the caller's role includes `needed`.
    pub fn require(&self, needed: Role) -> Result<(), Forbidden> {
        match self.role.includes(needed) {
            true => Ok(()),
            false => Err(Forbidden {
                needed,
                held: self.role,
            }),
        }
    }

    /// Allows a call on a member's own resources (their API tokens): on the caller's own it
    /// needs `own`, on anyone else's it needs Admin.
    pub fn require_for_member(&self, member_id: &str, own: Role) -> Result<(), Forbidden> {
        match member_id == self.member_id {
            true => self.require(own),
            false => self.require(Role::Admin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role) -> Caller {
        Caller {
            org_id: "org_a".into(),
            member_id: "mem_self".into(),
            role,
        }
    }

    #[test]
    fn each_role_includes_exactly_the_roles_below_it() {
        let table = [
            (Role::Admin, [true, true, true]),
            (Role::Technician, [false, true, true]),
            (Role::Observer, [false, false, true]),
        ];
        for (held, allowed) in table {
            for (needed, allowed) in [Role::Admin, Role::Technician, Role::Observer]
                .into_iter()
                .zip(allowed)
            {
                assert_eq!(
                    caller(held).require(needed).is_ok(),
                    allowed,
                    "{held} → {needed}"
                );
            }
        }
    }

    #[test]
    fn own_resources_need_the_given_role_and_other_members_need_admin() {
        let technician = caller(Role::Technician);
        assert!(
            technician
                .require_for_member("mem_self", Role::Technician)
                .is_ok()
        );
        assert_eq!(
            technician.require_for_member("mem_other", Role::Observer),
            Err(Forbidden {
                needed: Role::Admin,
                held: Role::Technician
            })
        );
        let observer = caller(Role::Observer);
        assert!(
            observer
                .require_for_member("mem_self", Role::Observer)
                .is_ok()
        );
        assert!(
            observer
                .require_for_member("mem_self", Role::Technician)
                .is_err()
        );
        assert!(
            caller(Role::Admin)
                .require_for_member("mem_other", Role::Technician)
                .is_ok()
        );
    }
}
