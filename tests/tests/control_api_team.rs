//! The operators' team API against the running server. Organisations are founded through the
//! same library call as `sunledger admin create-org`; everything else goes over real gRPC
//! with the generated tonic clients, proving:
//!
//! - what each role may do, and that a refused call (PERMISSION_DENIED) writes nothing;
//! - that calls without a valid token (none, garbage, another scheme, unknown, revoked, of a
//!   removed member) are UNAUTHENTICATED and counted;
//! - that a second organisation can neither see nor change the first's members (NOT_FOUND);
//! - that each invalid field is INVALID_ARGUMENT naming the field, with nothing stored;
//! - that pagination over more than a page returns every member and event exactly once;
//! - that every change is in the audit log with the member who made it, newest first;
//! - that the last Admin can be neither demoted nor removed (FAILED_PRECONDITION);
//! - that reflection lists and health serves every operator service, and calls are counted
//!   by method and code.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use sunledger_proto::api::v1 as api;
use sunledger_proto::api::v1::Role;
use sunledger_proto::api::v1::organisations_client::OrganisationsClient;
use sunledger_proto::api::v1::team_client::TeamClient;
use sunledger_tests::TestServer;
use sunledger_tests::api::{self as shared, Authorized, assert_invalid, found};
use tonic::{Code, Status};

const TEAM: &str = "sunledger.api.v1.Team";
const ORGANISATIONS: &str = "sunledger.api.v1.Organisations";
const PLANS: &str = "sunledger.api.v1.Plans";
const UNITS: &str = "sunledger.api.v1.Units";
const PAYMENTS: &str = "sunledger.api.v1.Payments";
const CUSTOMERS: &str = "sunledger.api.v1.Customers";
const INSTALLATIONS: &str = "sunledger.api.v1.Installations";
const REPORTS: &str = "sunledger.api.v1.Reports";

/// The API as one caller sees it. Clients are cheap clones of one channel.
#[derive(Clone)]
struct Api {
    team: TeamClient<Authorized>,
    organisations: OrganisationsClient<Authorized>,
}

impl Api {
    async fn with_authorization(server: &TestServer, value: Option<&str>) -> Api {
        let shared = shared::Api::with_authorization(server, value).await;
        Api {
            team: shared.team(),
            organisations: shared.organisations(),
        }
    }

    async fn bearer(server: &TestServer, token: &str) -> Api {
        Api::with_authorization(server, Some(&format!("Bearer {token}"))).await
    }

    async fn add(
        &self,
        name: &str,
        email: &str,
        role: Role,
    ) -> Result<api::AddMemberResponse, Status> {
        let request = api::AddMemberRequest {
            name: name.into(),
            email: email.into(),
            role: role.into(),
        };
        Ok(self.team.clone().add_member(request).await?.into_inner())
    }

    async fn members(
        &self,
        page_size: i32,
        page_token: &str,
    ) -> Result<api::ListMembersResponse, Status> {
        let request = api::ListMembersRequest {
            page_size,
            page_token: page_token.into(),
        };
        Ok(self.team.clone().list_members(request).await?.into_inner())
    }

    async fn events(
        &self,
        page_size: i32,
        page_token: &str,
    ) -> Result<api::ListAuditEventsResponse, Status> {
        let request = api::ListAuditEventsRequest {
            page_size,
            page_token: page_token.into(),
        };
        Ok(self
            .team
            .clone()
            .list_audit_events(request)
            .await?
            .into_inner())
    }

    /// Every member, walking the pages of `page_size`.
    async fn all_members(&self, page_size: i32) -> Vec<api::Member> {
        shared::all_pages(|token| async move {
            let page = self
                .members(page_size, &token)
                .await
                .expect("listing members");
            (page.members, page.next_page_token)
        })
        .await
    }

    /// Every audit event, newest first, walking the pages of `page_size`.
    async fn all_events(&self, page_size: i32) -> Vec<api::AuditEvent> {
        shared::all_pages(|token| async move {
            let page = self
                .events(page_size, &token)
                .await
                .expect("listing audit events");
            (page.events, page.next_page_token)
        })
        .await
    }

    async fn newest_sequence(&self) -> u64 {
        self.events(1, "").await.expect("audit log").events[0].sequence
    }

    async fn create_token(&self, member_id: &str) -> Result<api::IssuedToken, Status> {
        let request = api::CreateTokenRequest {
            member_id: member_id.into(),
        };
        let response = self.team.clone().create_token(request).await?.into_inner();
        Ok(response.token.expect("issued token"))
    }

    async fn change_role(&self, member_id: &str, role: Role) -> Result<api::Member, Status> {
        let request = api::ChangeRoleRequest {
            member_id: member_id.into(),
            role: role.into(),
        };
        Ok(self.team.clone().change_role(request).await?.into_inner())
    }

    async fn remove(&self, member_id: &str) -> Result<(), Status> {
        let request = api::RemoveMemberRequest {
            member_id: member_id.into(),
        };
        self.team.clone().remove_member(request).await.map(drop)
    }

    async fn revoke(&self, member_id: &str, token_id: &str) -> Result<(), Status> {
        let request = api::RevokeTokenRequest {
            member_id: member_id.into(),
            token_id: token_id.into(),
        };
        self.team.clone().revoke_token(request).await.map(drop)
    }

    async fn organisation(&self) -> Result<api::Organisation, Status> {
        let request = api::GetOrganisationRequest {};
        Ok(self
            .organisations
            .clone()
            .get_organisation(request)
            .await?
            .into_inner())
    }
}

/// A team member as the tests drive them: their API and ids.
struct Actor {
    role: Role,
    api: Api,
    member_id: String,
    /// A second token of theirs, for them to revoke.
    spare_token_id: String,
}

/// An API call of the role table; each runs as one actor.
#[derive(Clone, Debug)]
enum Call {
    GetOrganisation,
    UpdateOrganisation,
    ListMembers,
    GetMember(String),
    ListOwnTokens,
    ListTokensOf(String),
    CreateOwnToken,
    CreateTokenFor(String),
    RevokeOwnSpareToken,
    AddMember,
    ChangeRole(String),
    ListAuditEvents,
    RemoveMember(String),
}

impl Call {
    async fn run(&self, actor: &Actor) -> Result<(), Status> {
        static ADDED: AtomicUsize = AtomicUsize::new(0);
        let mut team = actor.api.team.clone();
        let own = actor.member_id.clone();
        match self.clone() {
            Call::GetOrganisation => actor.api.organisation().await.map(drop),
            Call::UpdateOrganisation => {
                let request = api::UpdateOrganisationRequest {
                    name: Some(format!("Renamed by {:?}", actor.role)),
                    time_zone: None,
                };
                let mut organisations = actor.api.organisations.clone();
                organisations.update_organisation(request).await.map(drop)
            }
            Call::ListMembers => actor.api.members(0, "").await.map(drop),
            Call::GetMember(member_id) => team
                .get_member(api::GetMemberRequest { member_id })
                .await
                .map(drop),
            Call::ListOwnTokens => {
                let request = api::ListTokensRequest {
                    member_id: String::new(),
                };
                team.list_tokens(request).await.map(drop)
            }
            Call::ListTokensOf(member_id) => team
                .list_tokens(api::ListTokensRequest { member_id })
                .await
                .map(drop),
            Call::CreateOwnToken => actor.api.create_token("").await.map(drop),
            Call::CreateTokenFor(member_id) => actor.api.create_token(&member_id).await.map(drop),
            Call::RevokeOwnSpareToken => actor.api.revoke(&own, &actor.spare_token_id).await,
            Call::AddMember => {
                let n = ADDED.fetch_add(1, Ordering::Relaxed);
                let email = format!("added-{n}@example.com");
                actor
                    .api
                    .add("Added", &email, Role::Observer)
                    .await
                    .map(drop)
            }
            Call::ChangeRole(member_id) => actor
                .api
                .change_role(&member_id, Role::Observer)
                .await
                .map(drop),
            Call::ListAuditEvents => actor.api.events(0, "").await.map(drop),
            Call::RemoveMember(member_id) => actor.api.remove(&member_id).await,
        }
    }
}

/// Adds a member with `role` through `admin` and gives them a spare token.
async fn actor(server: &TestServer, admin: &Api, role: Role, email: &str) -> Actor {
    let added = admin
        .add(&format!("{role:?}"), email, role)
        .await
        .expect("member added");
    let member_id = added.member.expect("member").id;
    let spare = admin.create_token(&member_id).await.expect("spare token");
    Actor {
        role,
        api: Api::bearer(server, &added.token.expect("first token").secret).await,
        member_id,
        spare_token_id: spare.token.expect("token").id,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_make_exactly_its_calls_and_refused_calls_write_nothing() {
    let server = TestServer::start().await;
    let founded = found(&server, "Roles").await;
    let admin_api = Api::bearer(&server, founded.token.secret.expose()).await;
    let spare = admin_api
        .create_token("")
        .await
        .expect("admin's spare token");
    let admin = Actor {
        role: Role::Admin,
        api: admin_api.clone(),
        member_id: founded.admin.id.clone(),
        spare_token_id: spare.token.expect("token").id,
    };
    let technician = actor(&server, &admin_api, Role::Technician, "tech@example.com").await;
    let observer = actor(&server, &admin_api, Role::Observer, "obs@example.com").await;
    let victim = admin_api
        .add("Victim", "victim@example.com", Role::Technician)
        .await
        .expect("victim added")
        .member
        .expect("member")
        .id;

    use Code::{Ok as Allowed, PermissionDenied as Denied};
    // Expected outcome for [Observer, Technician, Admin], run in that order.
    let table = [
        (Call::GetOrganisation, [Allowed, Allowed, Allowed]),
        (Call::ListMembers, [Allowed, Allowed, Allowed]),
        (
            Call::GetMember(founded.admin.id.clone()),
            [Allowed, Allowed, Allowed],
        ),
        (Call::ListOwnTokens, [Allowed, Allowed, Allowed]),
        (
            Call::ListTokensOf(victim.clone()),
            [Denied, Denied, Allowed],
        ),
        (Call::CreateOwnToken, [Denied, Allowed, Allowed]),
        (
            Call::CreateTokenFor(victim.clone()),
            [Denied, Denied, Allowed],
        ),
        (Call::RevokeOwnSpareToken, [Denied, Allowed, Allowed]),
        (Call::UpdateOrganisation, [Denied, Denied, Allowed]),
        (Call::AddMember, [Denied, Denied, Allowed]),
        (Call::ChangeRole(victim.clone()), [Denied, Denied, Allowed]),
        (Call::ListAuditEvents, [Denied, Denied, Allowed]),
        (
            Call::RemoveMember(victim.clone()),
            [Denied, Denied, Allowed],
        ),
    ];
    for (call, expected) in table {
        for (actor, expected) in [&observer, &technician, &admin].into_iter().zip(expected) {
            let before = admin_api.newest_sequence().await;
            let code = match call.run(actor).await {
                Ok(()) => Code::Ok,
                Err(status) => status.code(),
            };
            assert_eq!(code, expected, "{call:?} as {:?}", actor.role);
            if code == Denied {
                assert_eq!(admin_api.newest_sequence().await, before, "{call:?} wrote");
            }
        }
    }
    let name = admin_api.organisation().await.expect("organisation").name;
    assert_eq!(name, "Renamed by Admin");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_a_valid_token_are_unauthenticated_and_counted() {
    let server = TestServer::start().await;
    let founded = found(&server, "Auth").await;
    let admin = Api::bearer(&server, founded.token.secret.expose()).await;
    let added = admin
        .add("Tech", "tech@example.com", Role::Technician)
        .await
        .expect("member added");
    let member_id = added.member.expect("member").id;
    let first = added.token.expect("first token");
    let second = admin.create_token(&member_id).await.expect("second token");
    let second_secret = second.secret.clone();
    admin
        .revoke(&member_id, &second.token.expect("token").id)
        .await
        .expect("revoked");
    // Removing the member revokes the first token too.
    let still_valid = Api::bearer(&server, &first.secret).await;
    still_valid
        .organisation()
        .await
        .expect("first token works before removal");
    admin.remove(&member_id).await.expect("member removed");

    let unknown = format!("slt_{}", "0".repeat(64));
    let cases = [
        (None, "missing"),
        (Some("garbage".to_owned()), "malformed"),
        (Some("Bearer not-a-token".to_owned()), "malformed"),
        (
            Some(format!("Basic {}", founded.token.secret.expose())),
            "malformed",
        ),
        (Some(format!("Bearer {unknown}")), "unknown"),
        (Some(format!("Bearer {second_secret}")), "unknown"),
        (Some(format!("Bearer {}", first.secret)), "unknown"),
    ];
    for (header, reason) in cases {
        let before = server
            .metric("sunledger_api_auth_failed_total", &[("reason", reason)])
            .await;
        let api = Api::with_authorization(&server, header.as_deref()).await;
        let organisation = api.organisation().await.expect_err("refused");
        let members = api.members(0, "").await.expect_err("refused");
        for status in [organisation, members] {
            assert_eq!(status.code(), Code::Unauthenticated, "{header:?}");
        }
        server
            .wait_for_metric(
                "sunledger_api_auth_failed_total",
                &[("reason", reason)],
                before + 2.0,
            )
            .await;
    }
    // The admin's own token is unaffected.
    admin
        .organisation()
        .await
        .expect("admin still authenticated");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organisation_can_neither_see_nor_change_the_first_ones_team() {
    let server = TestServer::start().await;
    let first = found(&server, "First").await;
    let second = found(&server, "Second").await;
    let first_api = Api::bearer(&server, first.token.secret.expose()).await;
    let intruder = Api::bearer(&server, second.token.secret.expose()).await;
    let tech = first_api
        .add("Tech", "tech@example.com", Role::Technician)
        .await
        .expect("member added");
    let tech_id = tech.member.expect("member").id;
    let tech_token_id = tech.token.expect("token").token.expect("token").id;
    let events_before = first_api.all_events(0).await;

    let seen: Vec<String> = intruder
        .all_members(0)
        .await
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(seen, [second.admin.id.as_str()]);
    assert_eq!(
        intruder.organisation().await.expect("own organisation").id,
        second.organisation.id
    );
    let mut team = intruder.team.clone();
    let attempts = [
        team.get_member(api::GetMemberRequest {
            member_id: tech_id.clone(),
        })
        .await
        .map(drop),
        intruder.change_role(&tech_id, Role::Admin).await.map(drop),
        intruder
            .change_role(&first.admin.id, Role::Observer)
            .await
            .map(drop),
        intruder.remove(&tech_id).await,
        intruder.create_token(&tech_id).await.map(drop),
        intruder.revoke(&tech_id, &tech_token_id).await,
        team.list_tokens(api::ListTokensRequest {
            member_id: first.admin.id.clone(),
        })
        .await
        .map(drop),
    ];
    for (index, attempt) in attempts.into_iter().enumerate() {
        assert_eq!(
            attempt.expect_err("refused").code(),
            Code::NotFound,
            "attempt {index}"
        );
    }
    // The first organisation's team and log are untouched; the intruder's log shows nothing
    // of the first organisation.
    let members = first_api.all_members(0).await;
    assert_eq!(members.len(), 2);
    assert!(
        members
            .iter()
            .any(|m| m.id == tech_id && m.role() == Role::Technician)
    );
    assert_eq!(first_api.all_events(0).await, events_before);
    let intruder_events = intruder.all_events(0).await;
    assert!(
        intruder_events
            .iter()
            .all(|event| event.target_id != tech_id)
    );
    assert_eq!(intruder_events.len(), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_invalid_field_is_refused_naming_it_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let founded = found(&server, "Validation").await;
    let admin = Api::bearer(&server, founded.token.secret.expose()).await;
    let member_page_token = {
        admin
            .add("Other", "other@example.com", Role::Observer)
            .await
            .expect("added");
        admin
            .members(1, "")
            .await
            .expect("first page")
            .next_page_token
    };
    let organisation_before = admin.organisation().await.expect("organisation");
    let members_before = admin.all_members(0).await;
    let events_before = admin.all_events(0).await;
    let invalid_before = server
        .metric(
            "sunledger_api_invalid_argument_total",
            &[("method", "/sunledger.api.v1.Team/AddMember")],
        )
        .await;

    let long = "x".repeat(300);
    let huge = "y".repeat(1 << 20);
    let email = "new@example.com";
    let mut team = admin.team.clone();
    let mut organisations = admin.organisations.clone();
    let update = |name: Option<&str>, time_zone: Option<&str>| api::UpdateOrganisationRequest {
        name: name.map(Into::into),
        time_zone: time_zone.map(Into::into),
    };
    let outcomes: Vec<(&str, Result<(), Status>)> = vec![
        ("name", admin.add("", email, Role::Observer).await.map(drop)),
        (
            "name",
            admin
                .add("line\nbreak", email, Role::Observer)
                .await
                .map(drop),
        ),
        (
            "name",
            admin.add(&long, email, Role::Observer).await.map(drop),
        ),
        (
            "name",
            admin.add(&huge, email, Role::Observer).await.map(drop),
        ),
        (
            "email",
            admin
                .add("New", "not-an-address", Role::Observer)
                .await
                .map(drop),
        ),
        (
            "email",
            admin
                .add("New", "New <new@example.com>", Role::Observer)
                .await
                .map(drop),
        ),
        (
            "email",
            admin.add("New", &huge, Role::Observer).await.map(drop),
        ),
        (
            "role",
            admin.add("New", email, Role::Unspecified).await.map(drop),
        ),
        ("role", {
            let request = api::AddMemberRequest {
                name: "New".into(),
                email: email.into(),
                role: 42,
            };
            team.add_member(request).await.map(drop)
        }),
        (
            "time_zone",
            organisations
                .update_organisation(update(None, Some("Mars/Base")))
                .await
                .map(drop),
        ),
        (
            "name",
            organisations
                .update_organisation(update(Some("  "), Some("UTC")))
                .await
                .map(drop),
        ),
        (
            "role",
            admin
                .change_role(&founded.admin.id, Role::Unspecified)
                .await
                .map(drop),
        ),
        (
            "member_id",
            admin.change_role("", Role::Observer).await.map(drop),
        ),
        (
            "member_id",
            team.get_member(api::GetMemberRequest {
                member_id: String::new(),
            })
            .await
            .map(drop),
        ),
        ("member_id", admin.remove(&huge).await),
        ("token_id", admin.revoke("", "").await),
        ("page_size", admin.members(-1, "").await.map(drop)),
        (
            "page_token",
            admin.members(0, "not-a-token").await.map(drop),
        ),
        (
            "page_token",
            admin.events(0, &member_page_token).await.map(drop),
        ),
    ];
    for (field, outcome) in outcomes {
        let long_input_not_echoed = outcome
            .as_ref()
            .err()
            .is_some_and(|status| status.message().len() < 200);
        assert_invalid(outcome, field);
        assert!(long_input_not_echoed, "the message does not echo the input");
    }
    assert_eq!(
        admin.organisation().await.expect("organisation"),
        organisation_before
    );
    assert_eq!(admin.all_members(0).await, members_before);
    assert_eq!(admin.all_events(0).await, events_before);
    server
        .wait_for_metric(
            "sunledger_api_invalid_argument_total",
            &[("method", "/sunledger.api.v1.Team/AddMember")],
            invalid_before + 9.0,
        )
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_over_more_than_a_page_return_every_member_and_event_exactly_once() {
    let server = TestServer::start().await;
    let founded = found(&server, "Pagination").await;
    let admin = Api::bearer(&server, founded.token.secret.expose()).await;
    let added_count = 60;
    for n in 0..added_count {
        admin
            .add(
                &format!("Member {n}"),
                &format!("member-{n}@example.com"),
                Role::Observer,
            )
            .await
            .expect("member added");
    }
    let first_page = admin.members(0, "").await.expect("first page");
    assert_eq!(first_page.members.len(), 50, "the default page size");
    assert!(!first_page.next_page_token.is_empty());
    for page_size in [0, 7, 500] {
        let members = admin.all_members(page_size).await;
        let ids: HashSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(members.len(), added_count + 1, "page size {page_size}");
        assert_eq!(
            ids.len(),
            members.len(),
            "no member twice at page size {page_size}"
        );
        assert!(
            members.windows(2).all(|pair| pair[0].id < pair[1].id),
            "ordered by id"
        );
    }
    // Founding wrote 3 events; each addition wrote 2 (member.added, token.created).
    let events = admin.all_events(0).await;
    let sequences: Vec<u64> = events.iter().map(|event| event.sequence).collect();
    let expected: Vec<u64> = (1..=(3 + 2 * added_count as u64)).rev().collect();
    assert_eq!(sequences, expected, "every event once, newest first");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_audited_with_the_member_who_made_it() {
    let server = TestServer::start().await;
    let founded = found(&server, "Audit").await;
    let admin_id = founded.admin.id.clone();
    let org_id = founded.organisation.id.clone();
    let admin = Api::bearer(&server, founded.token.secret.expose()).await;
    let added = admin
        .add("Tech", "tech@example.com", Role::Technician)
        .await
        .expect("member added");
    let tech_id = added.member.expect("member").id;
    let first_token_id = added
        .token
        .as_ref()
        .and_then(|t| t.token.as_ref())
        .expect("token")
        .id
        .clone();
    let tech = Api::bearer(&server, &added.token.expect("token").secret).await;
    let own = tech.create_token("").await.expect("own token");
    let own_id = own.token.expect("token").id;
    tech.revoke("", &own_id).await.expect("own token revoked");
    admin
        .change_role(&tech_id, Role::Observer)
        .await
        .expect("demoted");
    let request = api::UpdateOrganisationRequest {
        name: Some("Audit Ltd".into()),
        time_zone: Some("Africa/Kampala".into()),
    };
    admin
        .organisations
        .clone()
        .update_organisation(request)
        .await
        .expect("renamed");
    admin.remove(&tech_id).await.expect("removed");

    let events = admin.all_events(0).await;
    let seen: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                e.actor_member_id.as_str(),
                e.target_id.as_str(),
            )
        })
        .collect();
    let expected = [
        ("member.removed", admin_id.as_str(), tech_id.as_str()),
        ("organisation.updated", &admin_id, &org_id),
        ("member.role_changed", &admin_id, &tech_id),
        ("token.revoked", &tech_id, &own_id),
        ("token.created", &tech_id, &own_id),
        ("token.created", &admin_id, &first_token_id),
        ("member.added", &admin_id, &tech_id),
        ("token.created", &admin_id, &founded.token.token.id),
        ("member.added", &admin_id, &admin_id),
        ("organisation.created", &admin_id, &org_id),
    ];
    assert_eq!(seen, expected);
    let described = |action: &str| {
        events
            .iter()
            .find(|e| e.action == action)
            .expect("event")
            .description
            .clone()
    };
    assert_eq!(
        described("member.role_changed"),
        "Tech: Technician → Observer"
    );
    assert_eq!(
        described("organisation.updated"),
        "name \"Audit\" → \"Audit Ltd\"; time zone Africa/Nairobi → Africa/Kampala"
    );
    assert_eq!(
        described("member.removed"),
        "removed Tech <tech@example.com> (Observer); tokens revoked: 1"
    );
    assert!(events.iter().all(|e| e.at.is_some()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_admin_can_be_neither_demoted_nor_removed() {
    let server = TestServer::start().await;
    let founded = found(&server, "Admins").await;
    let admin_id = founded.admin.id.clone();
    let admin = Api::bearer(&server, founded.token.secret.expose()).await;
    for refused in [
        admin
            .change_role(&admin_id, Role::Technician)
            .await
            .map(drop),
        admin.remove(&admin_id).await,
    ] {
        assert_eq!(
            refused.expect_err("refused").code(),
            Code::FailedPrecondition
        );
    }
    let other = admin
        .add("Other", "other@example.com", Role::Observer)
        .await
        .expect("added")
        .member
        .expect("member")
        .id;
    admin
        .change_role(&other, Role::Admin)
        .await
        .expect("promoted");
    admin
        .change_role(&admin_id, Role::Observer)
        .await
        .expect("a second Admin remains");
    // The demotion applies at once: the former Admin is now an Observer.
    let status = admin.remove(&other).await.expect_err("no longer Admin");
    assert_eq!(status.code(), Code::PermissionDenied);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_and_health_list_every_service_and_calls_are_counted() {
    use tokio_stream::StreamExt;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = TestServer::start().await;
    let channel = server.grpc_channel().await;
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol(TEAM.into()),
    ]
    .map(|message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    });
    let mut responses = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection stream")
        .into_inner();
    let listed = match responses
        .next()
        .await
        .expect("a response")
        .expect("ok")
        .message_response
    {
        Some(MessageResponse::ListServicesResponse(list)) => list
            .service
            .into_iter()
            .map(|service| service.name)
            .collect::<Vec<_>>(),
        other => panic!("expected a service list, got {other:?}"),
    };
    for service in [
        TEAM,
        ORGANISATIONS,
        PLANS,
        UNITS,
        PAYMENTS,
        CUSTOMERS,
        INSTALLATIONS,
        REPORTS,
    ] {
        assert!(
            listed.iter().any(|name| name == service),
            "{service} in {listed:?}"
        );
    }
    match responses
        .next()
        .await
        .expect("a response")
        .expect("ok")
        .message_response
    {
        Some(MessageResponse::FileDescriptorResponse(files)) => {
            assert!(!files.file_descriptor_proto.is_empty())
        }
        other => panic!("expected the Team file, got {other:?}"),
    }
    for service in [
        TEAM,
        ORGANISATIONS,
        PLANS,
        UNITS,
        PAYMENTS,
        CUSTOMERS,
        INSTALLATIONS,
        REPORTS,
    ] {
        let request = HealthCheckRequest {
            service: service.into(),
        };
        let response = HealthClient::new(channel.clone())
            .check(request)
            .await
            .expect("health");
        assert_eq!(
            response.into_inner().status(),
            ServingStatus::Serving,
            "{service}"
        );
    }

    let founded = found(&server, "Metrics").await;
    let admin = Api::bearer(&server, founded.token.secret.expose()).await;
    let method = "/sunledger.api.v1.Team/ListMembers";
    let ok_before = server
        .metric(
            "sunledger_api_requests_total",
            &[("method", method), ("code", "Ok")],
        )
        .await;
    admin.members(0, "").await.expect("listed");
    admin.members(-1, "").await.expect_err("refused");
    server
        .wait_for_metric(
            "sunledger_api_requests_total",
            &[("method", method), ("code", "Ok")],
            ok_before + 1.0,
        )
        .await;
    server
        .wait_for_metric(
            "sunledger_api_requests_total",
            &[("method", method), ("code", "InvalidArgument")],
            1.0,
        )
        .await;
    server
        .wait_for_metric(
            "sunledger_api_request_seconds_count",
            &[("method", method)],
            2.0,
        )
        .await;
    server.stop().await;
}
