//! Organisations: created with their first Admin (who accepts the terms and conditions) by
//! the `sunledger admin create-org` command, then read and renamed through the API.

use redb::ReadableTable;

use super::audit::AuditAction;
use super::records::{Member, ORGANISATIONS, Organisation, TermsAcceptance};
use super::tokens::IssuedToken;
use super::{Directory, DirectoryError, decode, encode, new_id};
use crate::roles::{Caller, Role};
use crate::validate;

/// An organisation to create with its first Admin, as entered (validated by
/// [`Directory::create_organisation`]; errors name these fields).
#[derive(Clone, Debug, Default)]
pub struct NewOrganisation {
    /// Display name.
    pub name: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// IANA time zone.
    pub time_zone: String,
    /// Whether the first Admin accepts the platform's terms and conditions; required.
    pub accept_terms: bool,
    /// The first Admin's name.
    pub admin_name: String,
    /// The first Admin's email.
    pub admin_email: String,
}

/// A newly created organisation, its first Admin, and the Admin's first token (shown once).
#[derive(Clone, Debug)]
pub struct Founded {
    /// The organisation.
    pub organisation: Organisation,
    /// Its first Admin, who accepted the terms.
    pub admin: Member,
    /// The Admin's token.
    pub token: IssuedToken,
}

/// Changes to an organisation; `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct OrganisationChanges {
    /// A new display name (field `name`).
    pub name: Option<String>,
    /// A new IANA time zone (field `time_zone`).
    pub time_zone: Option<String>,
}

impl Directory {
    /// Creates an organisation, its first Admin and the Admin's first token, all in one
    /// transaction.
    pub fn create_organisation(&self, new: &NewOrganisation) -> Result<Founded, DirectoryError> {
        let name = validate::name("name", &new.name)?;
        let country = validate::country("country", &new.country)?;
        let currency = validate::currency("currency", &new.currency)?;
        let time_zone = validate::time_zone("time_zone", &new.time_zone)?;
        validate::accepted("accept_terms", new.accept_terms)?;
        let admin_name = validate::name("admin_name", &new.admin_name)?;
        let admin_email = validate::email("admin_email", &new.admin_email)?;
        let org_id = new_id("org_");
        // The Admin's id must be known before the transaction: it is the actor of every event.
        let admin_id = new_id("mem_");
        self.change(&org_id, &admin_id, |change| {
            // The organisation's command-signing key is made with it.
            self.store.command_key_in(&change.txn, &org_id)?;
            let organisation = Organisation {
                id: org_id.clone(),
                name,
                country,
                currency,
                time_zone,
                terms_accepted: TermsAcceptance {
                    member_id: admin_id.clone(),
                    accepted_at_ms: change.at_ms,
                },
                created_at_ms: change.at_ms,
            };
            let collided = change
                .txn
                .open_table(ORGANISATIONS)?
                .insert(org_id.as_str(), encode(&organisation)?.as_slice())?
                .is_some();
            if collided {
                return Err(DirectoryError::Corrupt(
                    "organisation id collision".to_owned(),
                ));
            }
            change.record(
                AuditAction::OrganisationCreated,
                &org_id,
                format!(
                    "created {} ({}, {}, {}); terms and conditions accepted by {admin_id}",
                    organisation.name,
                    organisation.country,
                    organisation.currency,
                    organisation.time_zone
                ),
            )?;
            let admin =
                change.insert_member(admin_id.clone(), admin_name, admin_email, Role::Admin)?;
            let token = change.issue_token(&admin.id)?;
            Ok(Founded {
                organisation,
                admin,
                token,
            })
        })
    }

    /// Organisation `org_id`.
    pub fn organisation(&self, org_id: &str) -> Result<Organisation, DirectoryError> {
        match self.read()?.open_table(ORGANISATIONS)?.get(org_id)? {
            Some(stored) => decode(stored.value()),
            None => Err(DirectoryError::OrganisationNotFound(org_id.to_owned())),
        }
    }

    /// Renames the caller's organisation or moves it to another time zone. Values equal to
    /// the current ones change nothing and record nothing.
    pub fn update_organisation(
        &self,
        caller: &Caller,
        changes: &OrganisationChanges,
    ) -> Result<Organisation, DirectoryError> {
        let name = changes
            .name
            .as_deref()
            .map(|name| validate::name("name", name))
            .transpose()?;
        let time_zone = changes
            .time_zone
            .as_deref()
            .map(|zone| validate::time_zone("time_zone", zone))
            .transpose()?;
        self.change(&caller.org_id, &caller.member_id, |change| {
            let mut organisations = change.txn.open_table(ORGANISATIONS)?;
            let mut organisation: Organisation = match organisations.get(change.org_id)? {
                Some(stored) => decode(stored.value())?,
                None => {
                    return Err(DirectoryError::OrganisationNotFound(
                        change.org_id.to_owned(),
                    ));
                }
            };
            let mut described = Vec::new();
            if let Some(name) = name.filter(|name| *name != organisation.name) {
                described.push(format!("name {:?} → {name:?}", organisation.name));
                organisation.name = name;
            }
            if let Some(zone) = time_zone.filter(|zone| *zone != organisation.time_zone) {
                described.push(format!("time zone {} → {zone}", organisation.time_zone));
                organisation.time_zone = zone;
            }
            if described.is_empty() {
                return Ok(organisation);
            }
            organisations.insert(change.org_id, encode(&organisation)?.as_slice())?;
            drop(organisations);
            change.record(
                AuditAction::OrganisationUpdated,
                change.org_id,
                described.join("; "),
            )?;
            Ok(organisation)
        })
    }
}
