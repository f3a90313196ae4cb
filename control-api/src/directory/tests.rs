//! The directory against a real redb file: founding, members, tokens, the last-Admin rule,
//! organisation isolation, and the audit log written with each change (and only with a
//! change that commits).

use std::sync::Arc;

use redb::ReadableTableMetadata;
use sunledger_billing::clock::SystemClock;
use sunledger_billing::store::Store;

use super::records::{MEMBERS, ORGANISATIONS};
use super::tokens::TOKENS_PER_MEMBER_MAX;
use super::*;
use crate::pagination::PageRequest;
use crate::roles::{Caller, Role};

struct Fixture {
    directory: Directory,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("sunledger.redb")).unwrap());
    Fixture {
        directory: Directory::open(store, Arc::new(SystemClock)).unwrap(),
        _dir: dir,
    }
}

fn new_organisation(name: &str) -> NewOrganisation {
    NewOrganisation {
        name: name.into(),
        country: "KE".into(),
        currency: "KES".into(),
        time_zone: "Africa/Nairobi".into(),
        accept_terms: true,
        admin_name: "Wanjiru".into(),
        admin_email: "wanjiru@example.com".into(),
    }
}

/// A fresh directory with one organisation founded, and its Admin as caller.
fn founded(name: &str) -> (Fixture, Founded, Caller) {
    let fixture = fixture();
    let founded = fixture
        .directory
        .create_organisation(&new_organisation(name))
        .unwrap();
    let admin = admin_of(&founded);
    (fixture, founded, admin)
}

fn admin_of(founded: &Founded) -> Caller {
    Caller {
        org_id: founded.organisation.id.clone(),
        member_id: founded.admin.id.clone(),
        role: Role::Admin,
    }
}

fn add(directory: &Directory, admin: &Caller, email: &str, role: Role) -> Member {
    let new = NewMember {
        name: email.into(),
        email: email.into(),
        role,
    };
    directory.add_member(admin, &new).unwrap().0
}

fn actions(directory: &Directory, org_id: &str) -> Vec<String> {
    let page = directory
        .audit_events(org_id, &PageRequest::parse(500, "").unwrap())
        .unwrap();
    page.items.into_iter().map(|event| event.action).collect()
}

#[test]
fn founding_stores_the_organisation_its_admin_and_a_working_token() {
    let fixture = fixture();
    let founded = fixture
        .directory
        .create_organisation(&new_organisation("Amani Solar"))
        .unwrap();
    let organisation = fixture
        .directory
        .organisation(&founded.organisation.id)
        .unwrap();
    assert_eq!(organisation, founded.organisation);
    assert_eq!(organisation.terms_accepted.member_id, founded.admin.id);
    let caller = fixture
        .directory
        .authenticate(founded.token.secret.expose())
        .unwrap();
    assert_eq!(caller, Some(admin_of(&founded)));
    assert_eq!(
        actions(&fixture.directory, &organisation.id),
        ["token.created", "member.added", "organisation.created"]
    );
}

#[test]
fn an_invalid_organisation_stores_nothing() {
    let fixture = fixture();
    let mut new = new_organisation("Amani Solar");
    new.accept_terms = false;
    let error = fixture.directory.create_organisation(&new).unwrap_err();
    assert_eq!(error.to_string(), "accept_terms: must be accepted");
    let txn = fixture.directory.read().unwrap();
    assert_eq!(txn.open_table(ORGANISATIONS).unwrap().len().unwrap(), 0);
    assert_eq!(txn.open_table(MEMBERS).unwrap().len().unwrap(), 0);
}

#[test]
fn emails_are_unique_per_organisation_ignoring_case() {
    let fixture = fixture();
    let first = fixture
        .directory
        .create_organisation(&new_organisation("A"))
        .unwrap();
    let admin = admin_of(&first);
    add(
        &fixture.directory,
        &admin,
        "tech@example.com",
        Role::Technician,
    );
    let before = actions(&fixture.directory, &admin.org_id).len();
    let again = NewMember {
        name: "Tech".into(),
        email: "TECH@example.com".into(),
        role: Role::Observer,
    };
    let error = fixture.directory.add_member(&admin, &again).unwrap_err();
    assert!(matches!(error, DirectoryError::EmailTaken(_)), "{error}");
    assert_eq!(actions(&fixture.directory, &admin.org_id).len(), before);
    // Another organisation may have a member with the same email.
    let second = fixture
        .directory
        .create_organisation(&new_organisation("B"))
        .unwrap();
    fixture
        .directory
        .add_member(&admin_of(&second), &again)
        .unwrap();
}

#[test]
fn the_last_admin_can_be_neither_demoted_nor_removed() {
    let (fixture, _, admin) = founded("A");
    let directory = &fixture.directory;
    let last = |error: DirectoryError| matches!(error, DirectoryError::LastAdmin(_));
    assert!(last(
        directory
            .change_role(&admin, &admin.member_id, Role::Observer)
            .unwrap_err()
    ));
    assert!(last(
        directory
            .remove_member(&admin, &admin.member_id)
            .unwrap_err()
    ));
    let second = add(directory, &admin, "second@example.com", Role::Admin);
    directory
        .change_role(&admin, &admin.member_id, Role::Technician)
        .unwrap();
    assert!(last(
        directory.remove_member(&admin, &second.id).unwrap_err()
    ));
}

#[test]
fn removing_a_member_revokes_all_their_tokens() {
    let (fixture, _, admin) = founded("A");
    let directory = &fixture.directory;
    let new = NewMember {
        name: "Tech".into(),
        email: "tech@example.com".into(),
        role: Role::Technician,
    };
    let (member, first) = directory.add_member(&admin, &new).unwrap();
    let second = directory.create_token(&admin, &member.id).unwrap();
    assert_eq!(
        directory.tokens(&admin.org_id, &member.id).unwrap().len(),
        2
    );
    directory.remove_member(&admin, &member.id).unwrap();
    for token in [first, second] {
        assert_eq!(directory.authenticate(token.secret.expose()).unwrap(), None);
    }
    assert!(matches!(
        directory.tokens(&admin.org_id, &member.id),
        Err(DirectoryError::MemberNotFound(_))
    ));
    // The email is free again.
    directory.add_member(&admin, &new).unwrap();
}

#[test]
fn a_member_holds_at_most_the_token_limit() {
    let (fixture, _, admin) = founded("A");
    for _ in 1..TOKENS_PER_MEMBER_MAX {
        fixture
            .directory
            .create_token(&admin, &admin.member_id)
            .unwrap();
    }
    let error = fixture
        .directory
        .create_token(&admin, &admin.member_id)
        .unwrap_err();
    assert!(
        matches!(error, DirectoryError::TokenLimit { .. }),
        "{error}"
    );
    let token = &fixture
        .directory
        .tokens(&admin.org_id, &admin.member_id)
        .unwrap()[0];
    fixture
        .directory
        .revoke_token(&admin, &admin.member_id, &token.id)
        .unwrap();
    fixture
        .directory
        .create_token(&admin, &admin.member_id)
        .unwrap();
}

#[test]
fn another_organisations_records_are_not_found() {
    let fixture = fixture();
    let directory = &fixture.directory;
    let a = directory
        .create_organisation(&new_organisation("A"))
        .unwrap();
    let b = directory
        .create_organisation(&new_organisation("B"))
        .unwrap();
    let (admin_a, admin_b) = (admin_of(&a), admin_of(&b));
    let not_found = |error: DirectoryError| matches!(error, DirectoryError::MemberNotFound(_));
    assert!(not_found(
        directory.member(&admin_b.org_id, &a.admin.id).unwrap_err()
    ));
    assert!(not_found(
        directory
            .change_role(&admin_b, &a.admin.id, Role::Observer)
            .unwrap_err()
    ));
    assert!(not_found(
        directory.remove_member(&admin_b, &a.admin.id).unwrap_err()
    ));
    assert!(not_found(
        directory.create_token(&admin_b, &a.admin.id).unwrap_err()
    ));
    assert!(not_found(
        directory
            .revoke_token(&admin_b, &a.admin.id, &a.token.token.id)
            .unwrap_err()
    ));
    let members = directory
        .members(&admin_a.org_id, &PageRequest::parse(0, "").unwrap())
        .unwrap();
    assert_eq!(members.items, std::slice::from_ref(&a.admin));
    assert_eq!(actions(directory, &admin_a.org_id).len(), 3);
}

#[test]
fn updates_record_what_changed_and_no_op_updates_record_nothing() {
    let fixture = fixture();
    let founded = fixture
        .directory
        .create_organisation(&new_organisation("Amani"))
        .unwrap();
    let admin = admin_of(&founded);
    let changes = OrganisationChanges {
        name: Some("Amani Solar".into()),
        time_zone: Some("Africa/Kampala".into()),
    };
    let updated = fixture
        .directory
        .update_organisation(&admin, &changes)
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.time_zone.as_str()),
        ("Amani Solar", "Africa/Kampala")
    );
    fixture
        .directory
        .update_organisation(&admin, &changes)
        .unwrap();
    let events = fixture
        .directory
        .audit_events(&admin.org_id, &PageRequest::parse(1, "").unwrap())
        .unwrap();
    let newest = &events.items[0];
    assert_eq!(newest.action, "organisation.updated");
    assert_eq!(newest.sequence, 4);
    assert_eq!(newest.actor_member_id, admin.member_id);
    assert_eq!(
        newest.description,
        "name \"Amani\" → \"Amani Solar\"; time zone Africa/Nairobi → Africa/Kampala"
    );
    assert!(!events.next_page_token.is_empty());
}
