//! Team members: listing, adding (with a first token), changing roles and removing (with all
//! their tokens). Every organisation keeps at least one Admin.

use redb::ReadableTable;

use super::audit::AuditAction;
use super::records::{MEMBER_EMAILS, MEMBERS, Member, member_in, members_of};
use super::tokens::IssuedToken;
use super::{Change, Directory, DirectoryError, encode, new_id};
use crate::pagination::{Page, PageRequest};
use crate::roles::{Caller, Role};
use crate::validate;

/// A member to add, as the request gave it (validated by [`Directory::add_member`]).
#[derive(Clone, Debug)]
pub struct NewMember {
    /// Display name (field `name`).
    pub name: String,
    /// Email address (field `email`).
    pub email: String,
    /// What they may do.
    pub role: Role,
}

impl Directory {
    /// One page of `org_id`'s members, by id.
    pub fn members(
        &self,
        org_id: &str,
        page: &PageRequest<String>,
    ) -> Result<Page<Member>, DirectoryError> {
        let txn = self.read()?;
        let members = txn.open_table(MEMBERS)?;
        page.page(
            members_of(&members, org_id, page.after.as_deref())?,
            |member| member.id.clone(),
        )
    }

    /// Member `member_id` of `org_id`.
    pub fn member(&self, org_id: &str, member_id: &str) -> Result<Member, DirectoryError> {
        let member_id = validate::id("member_id", member_id)?;
        member_in(&self.read()?.open_table(MEMBERS)?, org_id, member_id)
    }

    /// Adds a member to the caller's organisation and issues their first token.
    pub fn add_member(
        &self,
        caller: &Caller,
        new: &NewMember,
    ) -> Result<(Member, IssuedToken), DirectoryError> {
        let name = validate::name("name", &new.name)?;
        let email = validate::email("email", &new.email)?;
        self.change(&caller.org_id, &caller.member_id, |change| {
            let member = change.insert_member(new_id("mem_"), name, email, new.role)?;
            let token = change.issue_token(&member.id)?;
            Ok((member, token))
        })
    }

    /// Gives member `member_id` of the caller's organisation another role.
    pub fn change_role(
        &self,
        caller: &Caller,
        member_id: &str,
        role: Role,
    ) -> Result<Member, DirectoryError> {
        let member_id = validate::id("member_id", member_id)?;
        self.change(&caller.org_id, &caller.member_id, |change| {
            let mut members = change.txn.open_table(MEMBERS)?;
            let mut member = member_in(&members, change.org_id, member_id)?;
            if member.role == role {
                return Ok(member);
            }
            if role != Role::Admin {
                ensure_another_admin(&members, &member)?;
            }
            let before = std::mem::replace(&mut member.role, role);
            members.insert((change.org_id, member_id), encode(&member)?.as_slice())?;
            drop(members);
            change.record(
                AuditAction::MemberRoleChanged,
                member_id,
                format!("{}: {before} → {role}", member.name),
            )?;
            Ok(member)
        })
    }

    /// Removes member `member_id` from the caller's organisation and revokes their tokens.
    pub fn remove_member(
        &self,
        caller: &Caller,
        member_id: &str,
    ) -> Result<Member, DirectoryError> {
        let member_id = validate::id("member_id", member_id)?;
        self.change(&caller.org_id, &caller.member_id, |change| {
            let mut members = change.txn.open_table(MEMBERS)?;
            let member = member_in(&members, change.org_id, member_id)?;
            ensure_another_admin(&members, &member)?;
            members.remove((change.org_id, member_id))?;
            drop(members);
            change
                .txn
                .open_table(MEMBER_EMAILS)?
                .remove((change.org_id, email_key(&member.email).as_str()))?;
            let revoked = change.revoke_all_tokens(member_id)?;
            change.record(
                AuditAction::MemberRemoved,
                member_id,
                format!(
                    "removed {} <{}> ({}); tokens revoked: {revoked}",
                    member.name, member.email, member.role
                ),
            )?;
            Ok(member)
        })
    }
}

impl Change<'_> {
    /// Stores a new member of this change's organisation, refusing an email already in use.
    /// `name` and `email` are validated.
    pub(super) fn insert_member(
        &self,
        id: String,
        name: String,
        email: String,
        role: Role,
    ) -> Result<Member, DirectoryError> {
        let member = Member {
            id,
            org_id: self.org_id.to_owned(),
            name,
            email,
            role,
            created_at_ms: self.at_ms,
        };
        let mut emails = self.txn.open_table(MEMBER_EMAILS)?;
        let email_key = email_key(&member.email);
        if emails.get((self.org_id, email_key.as_str()))?.is_some() {
            return Err(DirectoryError::EmailTaken(member.email));
        }
        emails.insert((self.org_id, email_key.as_str()), member.id.as_str())?;
        let stored = self
            .txn
            .open_table(MEMBERS)?
            .insert(
                (self.org_id, member.id.as_str()),
                encode(&member)?.as_slice(),
            )?
            .is_some();
        if stored {
            return Err(DirectoryError::Corrupt("member id collision".to_owned()));
        }
        self.record(
            AuditAction::MemberAdded,
            &member.id,
            format!(
                "added {} <{}> as {}",
                member.name, member.email, member.role
            ),
        )?;
        Ok(member)
    }
}

/// Refuses to demote or remove `member` if they are their organisation's only Admin.
fn ensure_another_admin(
    members: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    member: &Member,
) -> Result<(), DirectoryError> {
    if member.role != Role::Admin {
        return Ok(());
    }
    for other in members_of(members, &member.org_id, None)? {
        let other = other?;
        if other.role == Role::Admin && other.id != member.id {
            return Ok(());
        }
    }
    Err(DirectoryError::LastAdmin(member.id.clone()))
}

/// The form in which emails are compared: two addresses differing only in case are one.
fn email_key(email: &str) -> String {
    email.to_lowercase()
}
