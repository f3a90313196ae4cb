//! Customers, registration in steps, credit approval and installations against the running
//! server, over real gRPC with the generated tonic clients. Organisations are founded through
//! the same library call as `sunledger admin create-org`; units and plans are registered
//! through their own services. The tests prove:
//!
//! - what each role may do, and that a refused call (PERMISSION_DENIED) writes nothing;
//! - that a second organisation can neither see nor change the first's customers,
//!   installations or units (NOT_FOUND);
//! - that each invalid field is INVALID_ARGUMENT naming the field, with nothing stored;
//! - that emails are unique case-insensitively, stay reserved after deletion and never
//!   change, and phones are stored E.164 and must be of the organisation's country;
//! - that lists filter by status, type and search text and page over every item once;
//! - that a partial registration is listed until completed, and completion takes the plan's
//!   defaults, assigns the unit and opens the billing account;
//! - that approval moves only along the workflow;
//! - that a contact holds several installations, and the unit's customer history follows
//!   reassignment, unassignment and deletion;
//! - that deleting a complete installation closes its account, so its unit is billed afresh
//!   for a new installation while the old ledger stays readable and its payment references
//!   stay used;
//! - that the down-payment and total system cost stay editable after completion, and reaching
//!   the total completes the plan;
//! - that every change is in the audit log with the member who made it.

use std::collections::HashSet;
use sunledger_billing::units::DeviceKey;

use sunledger_proto::api::v1 as api;
use sunledger_proto::api::v1::{ApprovalStatus, ContactPreference, CustomerType};
use sunledger_tests::TestServer;
use sunledger_tests::api::{Api, Org, all_pages, assert_invalid, register_unit};
use tonic::{Code, Status};

/// The customer and installation calls these tests repeat, on the shared clients.
trait CustomerCalls {
    async fn create(&self, details: api::CustomerDetails) -> Result<api::Customer, Status>;
    async fn list_matching(&self, request: api::ListCustomersRequest) -> Vec<api::Customer>;
    async fn all_customers(&self) -> Vec<api::Customer>;
    async fn partial_registrations(&self) -> Vec<api::Installation>;
    async fn installations_of(&self, customer_id: &str) -> Vec<api::Installation>;
    async fn register(&self, serial: &str) -> DeviceKey;
    async fn create_plan(&self, name: &str, limit: &str, auto_switch_off: bool) -> api::Plan;
    async fn start(
        &self,
        serial: &str,
        contact: api::start_registration_request::Contact,
    ) -> Result<api::Installation, Status>;
    async fn complete(
        &self,
        request: api::CompleteRegistrationRequest,
    ) -> Result<api::Installation, Status>;
    async fn history(&self, serial: &str) -> (String, Vec<api::CustomerPossession>);
    async fn approve(
        &self,
        customer_id: &str,
        status: ApprovalStatus,
        billing_reference: Option<&str>,
    ) -> Result<api::Customer, Status>;
    async fn member_id(&self) -> String;
    async fn pay(
        &self,
        installation_id: &str,
        amount: &str,
        reference: &str,
    ) -> Result<api::RecordPaymentResponse, Status>;
    async fn balance(&self, installation_id: &str) -> Result<api::Balance, Status>;
    async fn ledger(&self, installation_id: &str) -> Vec<api::LedgerEntry>;
}

impl CustomerCalls for Api {
    async fn create(&self, details: api::CustomerDetails) -> Result<api::Customer, Status> {
        let request = api::CreateCustomerRequest {
            customer: Some(details),
        };
        Ok(self
            .customers()
            .create_customer(request)
            .await?
            .into_inner())
    }

    /// Every customer `request` admits, walking pages of two.
    async fn list_matching(&self, request: api::ListCustomersRequest) -> Vec<api::Customer> {
        all_pages(|page_token| {
            let request = api::ListCustomersRequest {
                page_size: 2,
                page_token,
                ..request.clone()
            };
            async move {
                let page = self.customers().list_customers(request).await;
                let page = page.expect("listing customers").into_inner();
                (page.customers, page.next_page_token)
            }
        })
        .await
    }

    async fn all_customers(&self) -> Vec<api::Customer> {
        self.list_matching(api::ListCustomersRequest::default())
            .await
    }

    async fn partial_registrations(&self) -> Vec<api::Installation> {
        all_pages(|page_token| async move {
            let request = api::ListPartialRegistrationsRequest {
                page_size: 1,
                page_token,
            };
            let page = self
                .installations()
                .list_partial_registrations(request)
                .await;
            let page = page.expect("listing partial registrations").into_inner();
            (page.installations, page.next_page_token)
        })
        .await
    }

    async fn installations_of(&self, customer_id: &str) -> Vec<api::Installation> {
        all_pages(|page_token| async move {
            let request = api::ListInstallationsRequest {
                customer_id: customer_id.into(),
                page_size: 1,
                page_token,
            };
            let page = self.installations().list_installations(request).await;
            let page = page.expect("listing installations").into_inner();
            (page.installations, page.next_page_token)
        })
        .await
    }

    /// Registers unit `serial` with an IMEI derived from it.
    async fn register(&self, serial: &str) -> DeviceKey {
        let n = serial.bytes().fold(0u64, |hash, byte| {
            hash.wrapping_mul(31).wrapping_add(u64::from(byte))
        });
        register_unit(self, serial, n % 1_000_000_000_000).await
    }

    async fn create_plan(&self, name: &str, limit: &str, auto_switch_off: bool) -> api::Plan {
        let request = api::CreatePlanRequest {
            name: name.into(),
            tariff: Some(api::create_plan_request::Tariff::Usage(api::UsageTariff {
                price_per_kwh: "100".into(),
            })),
            negative_charge_limit: limit.into(),
            auto_switch_off,
            rated_power_w: 0,
        };
        let response = self.plans().create_plan(request).await;
        response.expect("plan created").into_inner()
    }

    async fn start(
        &self,
        serial: &str,
        contact: api::start_registration_request::Contact,
    ) -> Result<api::Installation, Status> {
        let request = api::StartRegistrationRequest {
            unit_serial: serial.into(),
            contact: Some(contact),
            location: Some(nairobi()),
        };
        let response = self.installations().start_registration(request).await?;
        Ok(response.into_inner())
    }

    async fn complete(
        &self,
        request: api::CompleteRegistrationRequest,
    ) -> Result<api::Installation, Status> {
        let response = self.installations().complete_registration(request).await?;
        Ok(response.into_inner())
    }

    /// The unit's current customer and customer history, as the Units service shows them.
    async fn history(&self, serial: &str) -> (String, Vec<api::CustomerPossession>) {
        let request = api::GetUnitRequest {
            serial: serial.into(),
        };
        let details = self.units().get_unit(request).await;
        let details = details.expect("unit details").into_inner();
        let current = details.unit.expect("unit").current_customer_id;
        (current, details.customer_history)
    }

    async fn approve(
        &self,
        customer_id: &str,
        status: ApprovalStatus,
        billing_reference: Option<&str>,
    ) -> Result<api::Customer, Status> {
        let request = api::ChangeApprovalRequest {
            customer_id: customer_id.into(),
            status: status.into(),
            assignee_member_id: None,
            credit_reference: None,
            billing_reference: billing_reference.map(str::to_owned),
        };
        let response = self.customers().change_approval(request).await?;
        Ok(response.into_inner())
    }

    /// The caller's own member id, read from their tokens.
    async fn member_id(&self) -> String {
        let request = api::ListTokensRequest {
            member_id: String::new(),
        };
        let tokens = self.team().list_tokens(request).await.expect("own tokens");
        tokens.into_inner().tokens[0].member_id.clone()
    }

    /// Records a mobile-money payment on the installation's account.
    async fn pay(
        &self,
        installation_id: &str,
        amount: &str,
        reference: &str,
    ) -> Result<api::RecordPaymentResponse, Status> {
        let request = api::RecordPaymentRequest {
            installation_id: installation_id.into(),
            amount: amount.into(),
            reference: reference.into(),
            channel: api::PaymentChannel::MobileMoney.into(),
        };
        Ok(self.payments().record_payment(request).await?.into_inner())
    }

    async fn balance(&self, installation_id: &str) -> Result<api::Balance, Status> {
        let request = api::GetBalanceRequest {
            installation_id: installation_id.into(),
        };
        Ok(self.payments().get_balance(request).await?.into_inner())
    }

    /// The installation's whole ledger, oldest first.
    async fn ledger(&self, installation_id: &str) -> Vec<api::LedgerEntry> {
        let request = api::ListLedgerRequest {
            installation_id: installation_id.into(),
            ..Default::default()
        };
        let page = self.payments().list_ledger(request).await;
        page.expect("ledger").into_inner().entries
    }
}

fn nairobi() -> api::Location {
    api::Location {
        latitude: -1.2921,
        longitude: 36.8219,
    }
}

/// A consumer reachable by email.
fn consumer(name: &str, email: &str) -> api::CustomerDetails {
    api::CustomerDetails {
        r#type: CustomerType::Consumer.into(),
        name: name.into(),
        category: "Private individual".into(),
        dealer_code: "ABC123".into(),
        estimated_monthly_revenue: String::new(),
        email: email.into(),
        phone: String::new(),
        contact_preference: ContactPreference::Email.into(),
        details: None,
    }
}

/// A company reachable by phone.
fn company(name: &str, phone: &str) -> api::CustomerDetails {
    api::CustomerDetails {
        r#type: CustomerType::Company.into(),
        name: name.into(),
        category: "Ltd/Plc (under 50 employees)".into(),
        estimated_monthly_revenue: "120.00".into(),
        email: String::new(),
        phone: phone.into(),
        contact_preference: ContactPreference::Phone.into(),
        ..consumer(name, "")
    }
}

fn new_contact(details: api::CustomerDetails) -> api::start_registration_request::Contact {
    api::start_registration_request::Contact::NewCustomer(details)
}

fn existing(customer_id: &str) -> api::start_registration_request::Contact {
    api::start_registration_request::Contact::CustomerId(customer_id.into())
}

/// The rest of a registration on `plan_id`, taking the plan's defaults.
fn completion(installation_id: &str, plan_id: &str) -> api::CompleteRegistrationRequest {
    api::CompleteRegistrationRequest {
        installation_id: installation_id.into(),
        unit_serial: String::new(),
        user: Some(api::UserDetails {
            address: "Kibera, Nairobi".into(),
            id_number: "12345678".into(),
        }),
        plan: Some(api::PlanChoice {
            plan_id: plan_id.into(),
            down_payment: "500".into(),
            total_system_cost: "15000".into(),
            negative_charge_limit: None,
            auto_switch_off: None,
        }),
        partner_organisation: "Solar Aid".into(),
        technician_member_id: String::new(),
        system: Some(api::SystemDetails {
            panel_capacity_w: 50,
            battery_capacity_wh: 240,
            battery_type: "LiFePO4".into(),
            appliances: "3 lights, radio".into(),
            notes: String::new(),
        }),
        household: Some(api::HouseholdDetails {
            members: 5,
            children: 3,
            occupation: "Farming".into(),
            previous_energy_source: "Kerosene".into(),
        }),
    }
}

/// What the organisation has stored, to compare before and after a refused call.
async fn stored(org: &Org) -> (Vec<api::Customer>, Vec<api::Installation>, usize) {
    (
        org.admin.all_customers().await,
        org.admin.partial_registrations().await,
        org.admin.audit_events().await.len(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_make_exactly_its_calls_and_refused_calls_write_nothing() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Roles").await;
    let technician_id = org.technician.member_id().await;
    org.admin.register("SL-ROLE-1").await;
    let plan = org.admin.create_plan("Daily", "0", false).await;
    let customer = org
        .technician
        .create(consumer("Amani", "amani@example.com"))
        .await
        .expect("a Technician registers customers");
    let partial = org
        .technician
        .start("SL-ROLE-1", existing(&customer.id))
        .await
        .expect("a Technician starts registrations");

    let observer = &org.observer;
    assert!(
        observer
            .customers()
            .get_customer(api::GetCustomerRequest {
                customer_id: customer.id.clone()
            })
            .await
            .is_ok()
    );
    assert_eq!(observer.all_customers().await.len(), 1);
    assert_eq!(observer.partial_registrations().await.len(), 1);
    assert_eq!(observer.installations_of(&customer.id).await.len(), 1);

    let before = stored(&org).await;
    let denied = [
        (
            "observer creates",
            observer.create(consumer("X", "x@example.com")).await.err(),
        ),
        (
            "observer updates",
            observer
                .customers()
                .update_customer(api::UpdateCustomerRequest {
                    customer_id: customer.id.clone(),
                    name: Some("Renamed".into()),
                    ..Default::default()
                })
                .await
                .err(),
        ),
        (
            "observer completes",
            observer
                .complete(completion(&partial.id, &plan.id))
                .await
                .err(),
        ),
        (
            "technician approves",
            org.technician
                .approve(&customer.id, ApprovalStatus::Referred, None)
                .await
                .err(),
        ),
        (
            "technician deletes a customer",
            org.technician
                .customers()
                .delete_customer(api::DeleteCustomerRequest {
                    customer_id: customer.id.clone(),
                })
                .await
                .err(),
        ),
        (
            "technician deletes an installation",
            org.technician
                .installations()
                .delete_installation(api::DeleteInstallationRequest {
                    installation_id: partial.id.clone(),
                })
                .await
                .err(),
        ),
    ];
    for (what, refused) in denied {
        let status = refused.unwrap_or_else(|| panic!("{what} was allowed"));
        assert_eq!(status.code(), Code::PermissionDenied, "{what}");
    }
    assert_eq!(stored(&org).await, before, "refused calls wrote nothing");

    let complete = org
        .technician
        .complete(completion(&partial.id, &plan.id))
        .await
        .expect("a Technician completes registrations");
    assert_eq!(
        complete.technician_member_id, technician_id,
        "defaults to the caller"
    );
    org.admin
        .approve(&customer.id, ApprovalStatus::Referred, None)
        .await
        .expect("an Admin moves the approval");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organisation_sees_none_of_the_customers_installations_or_units() {
    let server = TestServer::start().await;
    let first = Org::start(&server, "First").await;
    let second = Org::start(&server, "Second").await;
    first.admin.register("SL-ISO-1").await;
    let customer = first
        .admin
        .create(consumer("Amani", "amani@example.com"))
        .await
        .expect("created");
    let partial = first
        .admin
        .start("SL-ISO-1", existing(&customer.id))
        .await
        .expect("started");
    let before = stored(&first).await;

    let other = &second.admin;
    let get = other
        .customers()
        .get_customer(api::GetCustomerRequest {
            customer_id: customer.id.clone(),
        })
        .await;
    let update = other
        .customers()
        .update_customer(api::UpdateCustomerRequest {
            customer_id: customer.id.clone(),
            name: Some("Taken".into()),
            ..Default::default()
        })
        .await;
    let installation = other
        .installations()
        .get_installation(api::GetInstallationRequest {
            installation_id: partial.id.clone(),
        })
        .await;
    let own = other
        .create(consumer("Baraka", "baraka@example.com"))
        .await
        .expect("own contact");
    let assign = other
        .installations()
        .assign_installation(api::AssignInstallationRequest {
            installation_id: partial.id.clone(),
            customer_id: own.id.clone(),
        })
        .await;
    let foreign_contact = other.start("", existing(&customer.id)).await;
    let foreign_unit = other.start("SL-ISO-1", existing(&own.id)).await;
    for (what, outcome) in [
        ("get customer", get.map(drop)),
        ("update customer", update.map(drop)),
        ("get installation", installation.map(drop)),
        ("assign installation", assign.map(drop)),
        ("register the other's contact", foreign_contact.map(drop)),
        ("register the other's unit", foreign_unit.map(drop)),
    ] {
        assert_eq!(outcome.expect_err(what).code(), Code::NotFound, "{what}");
    }
    let listed: Vec<String> = other
        .all_customers()
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, [own.id]);
    assert!(other.partial_registrations().await.is_empty());
    assert_eq!(
        stored(&first).await,
        before,
        "the first organisation is unchanged"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_invalid_field_is_refused_naming_it_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Validation").await;
    org.admin.register("SL-VAL-1").await;
    let plan = org.admin.create_plan("Daily", "0", false).await;
    let customer = org
        .admin
        .create(consumer("Amani", "amani@example.com"))
        .await
        .expect("created");
    let partial = org
        .admin
        .start("SL-VAL-1", existing(&customer.id))
        .await
        .expect("started");

    let long = "x".repeat(300);
    let with = |change: fn(&mut api::CustomerDetails)| {
        let mut details = consumer("Valid", "valid@example.com");
        change(&mut details);
        details
    };
    let customers = [
        (with(|d| d.name = "  ".into()), "name"),
        (with(|d| d.r#type = 0), "type"),
        (with(|d| d.r#type = 9), "type"),
        (with(|d| d.email = "not-an-email".into()), "email"),
        (with(|d| d.email = String::new()), "email"),
        (
            with(|d| d.contact_preference = ContactPreference::Phone.into()),
            "contact_preference",
        ),
        (with(|d| d.contact_preference = 0), "contact_preference"),
        (with(|d| d.phone = "+44 20 7946 0958".into()), "phone"),
        (with(|d| d.phone = "12".into()), "phone"),
        (
            with(|d| d.estimated_monthly_revenue = "-5".into()),
            "estimated_monthly_revenue",
        ),
        (
            with(|d| d.estimated_monthly_revenue = "lots".into()),
            "estimated_monthly_revenue",
        ),
        (with(|d| d.category = "a\nb".into()), "category"),
    ];
    let before = stored(&org).await;
    for (details, field) in customers {
        assert_invalid(org.admin.create(details.clone()).await, field);
        assert_invalid(org.admin.start("", new_contact(details)).await, field);
    }
    let mut oversized = consumer("Valid", "valid@example.com");
    oversized.dealer_code = long.clone();
    assert_invalid(org.admin.create(oversized).await, "dealer_code");

    let mut installations = org.admin.installations();
    let start = |location: Option<api::Location>, contact| api::StartRegistrationRequest {
        unit_serial: String::new(),
        contact,
        location,
    };
    let contact = Some(existing(&customer.id));
    let starts = [
        (start(None, contact.clone()), "location"),
        (
            start(
                Some(api::Location {
                    latitude: 91.0,
                    longitude: 0.0,
                }),
                contact.clone(),
            ),
            "latitude",
        ),
        (
            start(
                Some(api::Location {
                    latitude: 0.0,
                    longitude: -181.0,
                }),
                contact.clone(),
            ),
            "longitude",
        ),
        (start(Some(nairobi()), None), "contact"),
        (start(Some(nairobi()), Some(existing(""))), "customer_id"),
    ];
    for (request, field) in starts {
        assert_invalid(installations.start_registration(request).await, field);
    }

    let complete = |change: fn(&mut api::CompleteRegistrationRequest)| {
        let mut request = completion(&partial.id, &plan.id);
        change(&mut request);
        request
    };
    let completions = [
        (complete(|r| r.plan = None), "plan"),
        (
            complete(|r| r.installation_id = String::new()),
            "installation_id",
        ),
        (
            complete(|r| r.plan.as_mut().unwrap().plan_id = String::new()),
            "plan_id",
        ),
        (
            complete(|r| r.plan.as_mut().unwrap().down_payment = "-1".into()),
            "down_payment",
        ),
        (
            complete(|r| r.plan.as_mut().unwrap().down_payment = "20000".into()),
            "down_payment",
        ),
        (
            complete(|r| r.plan.as_mut().unwrap().total_system_cost = "x".into()),
            "total_system_cost",
        ),
        (
            complete(|r| r.plan.as_mut().unwrap().negative_charge_limit = Some("5".into())),
            "negative_charge_limit",
        ),
        (
            complete(|r| r.household.as_mut().unwrap().children = 9),
            "children",
        ),
        (
            complete(|r| r.household.as_mut().unwrap().members = 101),
            "members",
        ),
        (
            complete(|r| r.system.as_mut().unwrap().notes = "a\u{0}b".into()),
            "notes",
        ),
        (
            complete(|r| r.unit_serial = "SL-OTHER".into()),
            "unit_serial",
        ),
    ];
    for (request, field) in completions {
        assert_invalid(org.admin.complete(request).await, field);
    }
    let lists = [
        api::ListCustomersRequest {
            page_size: -1,
            ..Default::default()
        },
        api::ListCustomersRequest {
            page_token: "zz".into(),
            ..Default::default()
        },
        api::ListCustomersRequest {
            status: 42,
            ..Default::default()
        },
        api::ListCustomersRequest {
            search: long.clone(),
            ..Default::default()
        },
    ];
    for (request, field) in lists
        .into_iter()
        .zip(["page_size", "page_token", "status", "search"])
    {
        assert_invalid(org.admin.customers().list_customers(request).await, field);
    }
    assert_eq!(
        stored(&org).await,
        before,
        "no refused call stored anything"
    );
    let account = server
        .server
        .engine()
        .account("SL-VAL-1")
        .expect("engine answers");
    assert!(account.is_none(), "no account was opened");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_are_unique_even_after_deletion_and_never_change_once_set() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Emails").await;
    let jo = org
        .admin
        .create(consumer("Jo", "Jo@Example.com"))
        .await
        .expect("created");
    let taken = org
        .admin
        .create(consumer("Joe", "jo@example.COM"))
        .await
        .expect_err("taken");
    assert_eq!(taken.code(), Code::AlreadyExists);

    org.admin
        .customers()
        .delete_customer(api::DeleteCustomerRequest {
            customer_id: jo.id.clone(),
        })
        .await
        .expect("deleted");
    let get = org
        .admin
        .customers()
        .get_customer(api::GetCustomerRequest {
            customer_id: jo.id.clone(),
        })
        .await;
    assert_eq!(get.expect_err("gone").code(), Code::NotFound);
    let again = org
        .admin
        .create(consumer("Jo again", "jo@example.com"))
        .await
        .expect_err("reserved");
    assert_eq!(
        again.code(),
        Code::AlreadyExists,
        "a deleted contact's email stays reserved"
    );

    let phone_only = org
        .admin
        .create(company("Widgets", "0712 345678"))
        .await
        .expect("created");
    let update = |email: &str| api::UpdateCustomerRequest {
        customer_id: phone_only.id.clone(),
        email: Some(email.into()),
        ..Default::default()
    };
    let reserved = org
        .admin
        .customers()
        .update_customer(update("JO@example.com"))
        .await;
    assert_eq!(reserved.expect_err("reserved").code(), Code::AlreadyExists);
    let set = org
        .admin
        .customers()
        .update_customer(update("widgets@example.com"))
        .await;
    assert_eq!(
        set.expect("first email is set").into_inner().email,
        "widgets@example.com"
    );
    let before = stored(&org).await;
    for changed in ["other@example.com", "WIDGETS@example.com", ""] {
        assert_invalid(
            org.admin.customers().update_customer(update(changed)).await,
            "email",
        );
    }
    let same = org
        .admin
        .customers()
        .update_customer(update("widgets@example.com"))
        .await;
    assert!(same.is_ok(), "repeating the same email changes nothing");
    assert_eq!(stored(&org).await, before);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_are_stored_in_e164_and_other_countries_numbers_are_refused() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Phones").await;
    let cases = ["0712 345678", "+254 712-345-678", "254712345678"];
    for (index, raw) in cases.into_iter().enumerate() {
        let customer = org
            .admin
            .create(company(&format!("Firm {index}"), raw))
            .await
            .expect(raw);
        assert_eq!(customer.phone, "+254712345678", "{raw}");
    }
    let found = org
        .admin
        .list_matching(api::ListCustomersRequest {
            search: "+2547123".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(found.len(), 3, "searching by phone");
    for foreign in ["+44 20 7946 0958", "+1 202 555 0143", "+255 712 345 678"] {
        let refused = org.admin.create(company("Abroad", foreign)).await;
        let message = refused
            .as_ref()
            .map_err(Status::message)
            .err()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains("(KE)"), "{foreign}: {message}");
        assert_invalid(refused, "phone");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filter_by_status_type_and_search_and_pages_return_each_customer_once() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Lists").await;
    let mut ids = HashSet::new();
    for n in 0..7 {
        let details = match n % 2 {
            0 => consumer(&format!("Person {n}"), &format!("person{n}@example.com")),
            _ => company(&format!("Firm {n}"), &format!("0712 34567{n}")),
        };
        ids.insert(org.technician.create(details).await.expect("created").id);
    }
    let referred: Vec<String> = ids.iter().take(2).cloned().collect();
    for id in &referred {
        org.admin
            .approve(id, ApprovalStatus::Referred, None)
            .await
            .expect("referred");
    }

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let request = api::ListCustomersRequest {
            page_size: 3,
            page_token: token,
            ..Default::default()
        };
        let page = org
            .observer
            .customers()
            .list_customers(request)
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        seen.extend(page.customers.into_iter().map(|c| c.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 7);
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), ids);

    let list = |request: api::ListCustomersRequest| {
        let observer = org.observer.clone();
        async move {
            observer
                .list_matching(api::ListCustomersRequest {
                    page_size: 2,
                    ..request
                })
                .await
        }
    };
    let companies = list(api::ListCustomersRequest {
        r#type: CustomerType::Company.into(),
        ..Default::default()
    })
    .await;
    assert_eq!(companies.len(), 3);
    assert!(
        companies
            .iter()
            .all(|c| c.r#type() == CustomerType::Company)
    );
    let by_status = list(api::ListCustomersRequest {
        status: ApprovalStatus::Referred.into(),
        ..Default::default()
    })
    .await;
    let mut by_status: Vec<String> = by_status.into_iter().map(|c| c.id).collect();
    by_status.sort();
    let mut expected = referred.clone();
    expected.sort();
    assert_eq!(by_status, expected);
    let new = list(api::ListCustomersRequest {
        status: ApprovalStatus::New.into(),
        ..Default::default()
    })
    .await;
    assert_eq!(new.len(), 5);
    let by_name = list(api::ListCustomersRequest {
        search: "PERSON 4".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_name.len(), 1);
    let by_email = list(api::ListCustomersRequest {
        search: "person2@".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_email[0].name, "Person 2");
    let combined = list(api::ListCustomersRequest {
        r#type: CustomerType::Consumer.into(),
        search: "firm".into(),
        ..Default::default()
    })
    .await;
    assert!(combined.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_registration_is_listed_until_completion_assigns_the_unit_and_opens_the_account()
{
    let server = TestServer::start().await;
    let org = Org::start(&server, "Registration").await;
    let technician_id = org.technician.member_id().await;
    org.admin.register("SL-REG-1").await;
    org.admin.register("SL-REG-2").await;
    let plan = org.admin.create_plan("Weekly", "-50", true).await;

    let partial = org
        .technician
        .start(
            "SL-REG-1",
            new_contact(consumer("Amani", "amani@example.com")),
        )
        .await
        .expect("initial registration saved");
    assert_eq!(partial.status(), api::InstallationStatus::Partial);
    assert!(partial.plan.is_none());
    let listed: Vec<String> = org
        .observer
        .partial_registrations()
        .await
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed, [partial.id.as_str()]);
    let account = server
        .server
        .engine()
        .account("SL-REG-1")
        .expect("engine answers");
    assert!(account.is_none(), "a partial registration has no account");
    let (current, history) = org.observer.history("SL-REG-1").await;
    assert!(
        current.is_empty() && history.is_empty(),
        "a partial registration only reserves the unit"
    );

    let second = org
        .admin
        .start("SL-REG-1", existing(&partial.customer_id))
        .await;
    assert_eq!(
        second.expect_err("unit held").code(),
        Code::FailedPrecondition
    );

    let complete = org
        .technician
        .complete(completion(&partial.id, &plan.id))
        .await
        .expect("registration completed");
    assert_eq!(complete.status(), api::InstallationStatus::Complete);
    let terms = complete.plan.clone().expect("plan assignment");
    assert_eq!(
        (
            terms.down_payment.as_str(),
            terms.total_system_cost.as_str()
        ),
        ("500", "15000")
    );
    assert_eq!(terms.negative_charge_limit, "-50", "the plan's default");
    assert!(terms.auto_switch_off, "the plan's default");
    assert_eq!(complete.household.clone().expect("household").members, 5);
    assert_eq!(complete.partner_organisation, "Solar Aid");
    assert!(org.observer.partial_registrations().await.is_empty());
    let customer = org
        .observer
        .customers()
        .get_customer(api::GetCustomerRequest {
            customer_id: partial.customer_id.clone(),
        })
        .await
        .expect("customer")
        .into_inner();
    assert_eq!(
        customer.details.expect("details").address,
        "Kibera, Nairobi"
    );

    let account = server
        .server
        .engine()
        .account("SL-REG-1")
        .expect("engine answers")
        .expect("account opened");
    assert_eq!(account.account.negative_charge_limit().to_string(), "-50");
    assert!(account.account.auto_switch_off());
    assert_eq!(account.account.down_payment().to_string(), "500");
    let (current, history) = org.observer.history("SL-REG-1").await;
    assert_eq!(current, partial.customer_id);
    assert_eq!(history.len(), 1);
    assert!(history[0].active && history[0].end.is_none());

    let again = org.admin.complete(completion(&partial.id, &plan.id)).await;
    assert_eq!(
        again.expect_err("already complete").code(),
        Code::FailedPrecondition
    );

    // Overrides win over the plan's defaults; the unit may be given on completion.
    let late = org
        .admin
        .start("", existing(&partial.customer_id))
        .await
        .expect("started without a unit");
    let mut request = completion(&late.id, &plan.id);
    request.unit_serial = "SL-REG-2".into();
    let choice = request.plan.as_mut().expect("plan");
    choice.negative_charge_limit = Some("-10".into());
    choice.auto_switch_off = Some(false);
    choice.total_system_cost = String::new();
    request.technician_member_id = technician_id.clone();
    let late = org
        .admin
        .complete(request)
        .await
        .expect("completed with overrides");
    let terms = late.plan.expect("plan assignment");
    assert_eq!(
        (terms.negative_charge_limit.as_str(), terms.auto_switch_off),
        ("-10", false)
    );
    assert!(terms.total_system_cost.is_empty(), "the plan runs forever");
    assert_eq!(late.technician_member_id, technician_id);
    assert_eq!(
        org.observer
            .installations_of(&partial.customer_id)
            .await
            .len(),
        2
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_is_refused_for_retired_plans_unknown_members_and_unknown_units() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Refusals").await;
    org.admin.register("SL-REF-1").await;
    let retired = org.admin.create_plan("Old", "0", false).await;
    org.admin
        .plans()
        .retire_plan(api::RetirePlanRequest {
            plan_id: retired.id.clone(),
        })
        .await
        .expect("retired");
    let plan = org.admin.create_plan("Current", "0", false).await;
    let customer = org
        .admin
        .create(consumer("Amani", "amani@example.com"))
        .await
        .expect("created");
    let unheld = org
        .admin
        .start("", existing(&customer.id))
        .await
        .expect("started");
    let partial = org
        .admin
        .start("SL-REF-1", existing(&customer.id))
        .await
        .expect("started");
    let unknown_unit = org.admin.start("SL-NOPE", existing(&customer.id)).await;
    assert_eq!(
        unknown_unit.expect_err("unknown unit").code(),
        Code::NotFound
    );

    let before = stored(&org).await;
    let mut unknown_member = completion(&partial.id, &plan.id);
    unknown_member.technician_member_id = "mem_nobody".into();
    let mut no_unit = completion(&unheld.id, &plan.id);
    no_unit.unit_serial = String::new();
    let mut held_unit = completion(&unheld.id, &plan.id);
    held_unit.unit_serial = "SL-REF-1".into();
    let cases = [
        (
            completion(&partial.id, &retired.id),
            Code::FailedPrecondition,
        ),
        (completion(&partial.id, "plan_nope"), Code::NotFound),
        (completion("ins_nope", &plan.id), Code::NotFound),
        (unknown_member, Code::NotFound),
        (no_unit, Code::InvalidArgument),
        (held_unit, Code::FailedPrecondition),
    ];
    for (request, code) in cases {
        let status = org
            .admin
            .complete(request.clone())
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "{request:?}: {status:?}");
    }
    assert_eq!(stored(&org).await, before);
    let account = server
        .server
        .engine()
        .account("SL-REF-1")
        .expect("engine answers");
    assert!(account.is_none(), "no refused completion opened an account");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_moves_only_along_the_workflow() {
    use ApprovalStatus::{Billing, FailedCreditRef, New, PassedCreditRef, Referred};
    let server = TestServer::start().await;
    let org = Org::start(&server, "Approval").await;
    let technician_id = org.technician.member_id().await;
    let customer = org
        .technician
        .create(consumer("Amani", "amani@example.com"))
        .await
        .expect("created");
    assert_eq!(customer.approval.clone().expect("approval").status(), New);

    let before = stored(&org).await;
    assert!(
        org.admin.approve(&customer.id, New, None).await.is_ok(),
        "staying New changes nothing"
    );
    let status = org.admin.approve(&customer.id, Billing, None).await;
    let status = status.expect_err("skipping the credit check");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("New → Billing"),
        "{}",
        status.message()
    );
    let assign = |member_id: &str| api::ChangeApprovalRequest {
        customer_id: customer.id.clone(),
        status: 0,
        assignee_member_id: Some(member_id.into()),
        credit_reference: None,
        billing_reference: None,
    };
    let stranger = org
        .admin
        .customers()
        .change_approval(assign("mem_stranger"))
        .await;
    assert_eq!(stranger.expect_err("not a member").code(), Code::NotFound);
    assert_eq!(stored(&org).await, before);

    let assigned = org
        .admin
        .customers()
        .change_approval(assign(&technician_id))
        .await;
    let approval = assigned
        .expect("assigned")
        .into_inner()
        .approval
        .expect("approval");
    assert_eq!(approval.assignee_member_id, technician_id);
    assert_eq!(approval.status(), New);

    org.admin
        .approve(&customer.id, Referred, None)
        .await
        .expect("New → Referred");
    let failed_twice = org.admin.approve(&customer.id, New, None).await;
    assert_eq!(
        failed_twice.expect_err("back to New").code(),
        Code::FailedPrecondition
    );
    org.admin
        .approve(&customer.id, PassedCreditRef, None)
        .await
        .expect("Referred → Passed");
    assert_invalid(
        org.admin.approve(&customer.id, Billing, None).await,
        "billing_reference",
    );
    let billed = org
        .admin
        .approve(&customer.id, Billing, Some("BR-0042"))
        .await
        .expect("Passed → Billing");
    let approval = billed.approval.expect("approval");
    assert_eq!(
        (approval.status(), approval.billing_reference.as_str()),
        (Billing, "BR-0042")
    );
    assert_eq!(approval.changed_by_member_id, org.founded.admin.id);
    for to in [New, Referred, PassedCreditRef, FailedCreditRef] {
        let status = org
            .admin
            .approve(&customer.id, to, None)
            .await
            .expect_err("Billing is final");
        assert_eq!(status.code(), Code::FailedPrecondition);
    }

    let other = org
        .admin
        .create(consumer("Baraka", "baraka@example.com"))
        .await
        .expect("created");
    org.admin
        .approve(&other.id, FailedCreditRef, None)
        .await
        .expect("New → Failed");
    let status = org
        .admin
        .approve(&other.id, PassedCreditRef, None)
        .await
        .expect_err("Failed is final");
    assert!(
        status
            .message()
            .contains("Failed Credit Ref → Passed Credit Ref")
    );
    let billing = org
        .observer
        .list_matching(api::ListCustomersRequest {
            status: Billing.into(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        billing.into_iter().map(|c| c.id).collect::<Vec<_>>(),
        [customer.id.as_str()]
    );

    let actions: Vec<(String, String)> = org
        .admin
        .audit_events()
        .await
        .into_iter()
        .filter(|event| event.target_id == customer.id)
        .map(|event| (event.action, event.actor_member_id))
        .collect();
    let approvals = actions
        .iter()
        .filter(|(action, _)| action == "customer.approval_changed")
        .count();
    assert_eq!(approvals, 4, "assign, referred, passed, billing");
    assert!(actions.contains(&("customer.created".into(), technician_id.clone())));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_holds_several_installations_and_the_unit_history_follows_each_move() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Projects").await;
    let plan = org.admin.create_plan("Daily", "0", false).await;
    for serial in ["SL-PRJ-1", "SL-PRJ-2"] {
        org.admin.register(serial).await;
    }
    let amani = org
        .admin
        .create(consumer("Amani", "amani@example.com"))
        .await
        .expect("created");
    let baraka = org
        .admin
        .create(company("Baraka Ltd", "0712 000111"))
        .await
        .expect("created");
    let mut installed = Vec::new();
    for serial in ["SL-PRJ-1", "SL-PRJ-2"] {
        let partial = org
            .technician
            .start(serial, existing(&amani.id))
            .await
            .expect("started");
        installed.push(
            org.technician
                .complete(completion(&partial.id, &plan.id))
                .await
                .expect("completed"),
        );
    }
    let listed: HashSet<String> = org
        .observer
        .installations_of(&amani.id)
        .await
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(
        listed,
        installed
            .iter()
            .map(|i| i.id.clone())
            .collect::<HashSet<_>>()
    );

    let first = &installed[0];
    let assign = |installation_id: &str, customer_id: &str| api::AssignInstallationRequest {
        installation_id: installation_id.into(),
        customer_id: customer_id.into(),
    };
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let moved = org
        .technician
        .installations()
        .assign_installation(assign(&first.id, &baraka.id))
        .await
        .expect("reassigned")
        .into_inner();
    assert_eq!(moved.customer_id, baraka.id);
    assert_eq!(org.observer.installations_of(&amani.id).await.len(), 1);
    assert_eq!(org.observer.installations_of(&baraka.id).await.len(), 1);
    let (current, history) = org.observer.history("SL-PRJ-1").await;
    assert_eq!(current, baraka.id);
    let owners: Vec<(&str, bool, bool)> = history
        .iter()
        .map(|p| (p.customer_id.as_str(), p.active, p.end.is_some()))
        .collect();
    assert_eq!(
        owners,
        [
            (amani.id.as_str(), false, true),
            (baraka.id.as_str(), true, false)
        ]
    );

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let unassigned = org
        .technician
        .installations()
        .unassign_installation(api::UnassignInstallationRequest {
            installation_id: first.id.clone(),
        })
        .await
        .expect("unassigned")
        .into_inner();
    assert!(unassigned.customer_id.is_empty());
    let (current, history) = org.observer.history("SL-PRJ-1").await;
    assert!(current.is_empty(), "nobody has the unit");
    assert!(history.iter().all(|p| !p.active && p.end.is_some()));

    let delete = org
        .admin
        .customers()
        .delete_customer(api::DeleteCustomerRequest {
            customer_id: amani.id.clone(),
        })
        .await;
    assert_eq!(
        delete.expect_err("still has an installation").code(),
        Code::FailedPrecondition
    );
    let deleted = org
        .admin
        .installations()
        .delete_installation(api::DeleteInstallationRequest {
            installation_id: installed[1].id.clone(),
        })
        .await
        .expect("deleted")
        .into_inner();
    assert_eq!(deleted.status(), api::InstallationStatus::Deleted);
    assert!(org.observer.installations_of(&amani.id).await.is_empty());
    let (current, history) = org.observer.history("SL-PRJ-2").await;
    assert!(current.is_empty());
    assert_eq!(history.len(), 1);
    assert!(history[0].end.is_some(), "deletion ended the possession");
    let edit = org
        .admin
        .installations()
        .update_installation(api::UpdateInstallationRequest {
            installation_id: deleted.id.clone(),
            partner_organisation: Some("Late".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(edit.expect_err("deleted").code(), Code::FailedPrecondition);

    org.admin
        .customers()
        .delete_customer(api::DeleteCustomerRequest {
            customer_id: amani.id.clone(),
        })
        .await
        .expect("no installations left");
    let again = org
        .admin
        .create(consumer("Amani again", "AMANI@example.com"))
        .await;
    assert_eq!(
        again.expect_err("email reserved").code(),
        Code::AlreadyExists
    );

    let actions: HashSet<String> = org
        .admin
        .audit_events()
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    for action in [
        "installation.registration_started",
        "installation.registration_completed",
        "installation.assigned",
        "installation.unassigned",
        "installation.deleted",
        "customer.deleted",
    ] {
        assert!(actions.contains(action), "{action} audited");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_installation_closes_its_account_so_its_unit_is_billed_afresh() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Reuse").await;
    let plan = org.admin.create_plan("Daily", "0", false).await;
    org.admin.register("SL-REUSE-1").await;
    let amani = org
        .admin
        .create(consumer("Amani", "amani@example.com"))
        .await;
    let baraka = org.admin.create(company("Baraka Ltd", "0712 000111")).await;
    let (amani, baraka) = (amani.expect("created"), baraka.expect("created"));
    let first = org
        .technician
        .start("SL-REUSE-1", existing(&amani.id))
        .await;
    let first = first.expect("started");
    let first = org
        .technician
        .complete(completion(&first.id, &plan.id))
        .await;
    let first = first.expect("completed");
    org.admin
        .pay(&first.id, "300", "MP-REUSE-1")
        .await
        .expect("paid");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let deleted = org
        .admin
        .installations()
        .delete_installation(api::DeleteInstallationRequest {
            installation_id: first.id.clone(),
        })
        .await
        .expect("deleted, with a balance of 300")
        .into_inner();
    assert_eq!(deleted.status(), api::InstallationStatus::Deleted);
    let engine = server.server.engine();
    assert!(engine.account("SL-REUSE-1").expect("engine").is_none());
    let closed_balance = org.observer.balance(&first.id).await;
    assert_eq!(
        closed_balance.expect_err("deleted").code(),
        Code::FailedPrecondition
    );
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let second = org
        .technician
        .start("SL-REUSE-1", existing(&baraka.id))
        .await;
    let second = second.expect("the deleted installation freed its unit");
    let second = org
        .technician
        .complete(completion(&second.id, &plan.id))
        .await;
    let second = second.expect("a fresh account opened on the reused unit");
    let fresh = org.observer.balance(&second.id).await.expect("balance");
    assert_eq!(
        (
            fresh.balance.as_str(),
            fresh.total_paid.as_str(),
            fresh.ledger_entries
        ),
        ("0", "0", 0)
    );
    let reused = org.admin.pay(&second.id, "300", "MP-REUSE-1").await;
    assert_eq!(
        reused
            .expect_err("reference used on the closed account")
            .code(),
        Code::AlreadyExists
    );
    let paid = org.admin.pay(&second.id, "100", "MP-REUSE-2").await;
    assert_eq!(paid.expect("paid").entry.expect("entry").sequence, 0);

    let entries = |ledger: Vec<api::LedgerEntry>| -> Vec<(String, String)> {
        ledger
            .into_iter()
            .map(|e| (e.amount, e.reference))
            .collect()
    };
    assert_eq!(
        entries(org.observer.ledger(&first.id).await),
        [("300".to_owned(), "MP-REUSE-1".to_owned())],
        "the deleted installation's ledger is its closed account's"
    );
    assert_eq!(
        entries(org.observer.ledger(&second.id).await),
        [("100".to_owned(), "MP-REUSE-2".to_owned())]
    );
    let (current, history) = org.observer.history("SL-REUSE-1").await;
    assert_eq!(current, baraka.id);
    let owners: Vec<(&str, &str, bool)> = history
        .iter()
        .map(|p| (p.customer_id.as_str(), p.installation_id.as_str(), p.active))
        .collect();
    assert_eq!(
        owners,
        [
            (amani.id.as_str(), first.id.as_str(), false),
            (baraka.id.as_str(), second.id.as_str(), true)
        ]
    );
    let audit = org.admin.audit_events().await;
    let deletion = audit.iter().find(|e| e.action == "installation.deleted");
    let deletion = deletion.expect("deletion audited");
    assert!(
        deletion
            .description
            .contains("account closed at balance 300"),
        "{}",
        deletion.description
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_the_down_payment_to_the_system_cost_completes_the_plan() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Sale terms").await;
    let plan = org.admin.create_plan("Daily", "0", true).await;
    org.admin.register("SL-SALE-1").await;
    let customer = org
        .admin
        .create(consumer("Amani", "amani@example.com"))
        .await;
    let partial = org
        .technician
        .start("SL-SALE-1", existing(&customer.expect("created").id))
        .await
        .expect("started");
    let terms = |down_payment: Option<&str>, total_system_cost: Option<&str>| {
        api::UpdateInstallationRequest {
            installation_id: partial.id.clone(),
            down_payment: down_payment.map(str::to_owned),
            total_system_cost: total_system_cost.map(str::to_owned),
            ..Default::default()
        }
    };
    let mut installations = org.technician.installations();
    let on_partial = installations
        .update_installation(terms(Some("600"), None))
        .await;
    assert_eq!(
        on_partial.expect_err("no account yet").code(),
        Code::FailedPrecondition
    );
    org.technician
        .complete(completion(&partial.id, &plan.id))
        .await
        .expect("completed: down-payment 500 of 15000");

    let audited = org.admin.newest_audit_sequence().await;
    let refusals = [
        (terms(Some("-1"), None), "down_payment"),
        (terms(Some("1e3"), None), "down_payment"),
        (terms(Some(""), None), "down_payment"),
        (terms(None, Some("abc")), "total_system_cost"),
        (terms(Some("15001"), None), "down_payment"),
        (terms(None, Some("499")), "down_payment"),
    ];
    for (request, field) in refusals {
        assert_invalid(installations.update_installation(request).await, field);
    }
    assert_eq!(org.admin.newest_audit_sequence().await, audited);

    let raised_total = installations
        .update_installation(terms(None, Some("20000")))
        .await
        .expect("total raised")
        .into_inner()
        .plan
        .expect("plan");
    assert_eq!(
        (
            raised_total.down_payment.as_str(),
            raised_total.total_system_cost.as_str()
        ),
        ("500", "20000"),
        "the down-payment left out is kept"
    );
    let balance = org.observer.balance(&partial.id).await.expect("balance");
    assert_eq!(
        balance.plan_progress(),
        api::PlanProgress::PendingFirstDeposit
    );
    let raised = installations
        .update_installation(terms(Some("20000"), None))
        .await
        .expect("down-payment raised to the total")
        .into_inner()
        .plan
        .expect("plan");
    assert_eq!(raised.down_payment, "20000");
    let balance = org.observer.balance(&partial.id).await.expect("balance");
    assert_eq!(
        (
            balance.plan_progress(),
            balance.desired_load(),
            balance.desired_reason()
        ),
        (
            api::PlanProgress::Completed,
            api::UnitLoad::On,
            api::LoadReason::PlanCompleted
        )
    );
    assert_eq!(balance.down_payment, "20000");
    let events = org.admin.audit_events().await;
    let terms_changes = events
        .iter()
        .filter(|e| e.action == "installation.updated" && e.description.contains("account terms"))
        .count();
    assert_eq!(terms_changes, 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn details_and_account_terms_stay_editable_and_terms_reach_the_billing_engine() {
    let server = TestServer::start().await;
    let org = Org::start(&server, "Edits").await;
    let technician_id = org.technician.member_id().await;
    org.admin.register("SL-EDIT-1").await;
    let plan = org.admin.create_plan("Daily", "-50", true).await;
    let customer = org
        .admin
        .create(consumer("Amani", "amani@example.com"))
        .await
        .expect("created");
    let partial = org
        .technician
        .start("SL-EDIT-1", existing(&customer.id))
        .await
        .expect("started");
    let mut installations = org.technician.installations();
    let terms_on_partial = installations
        .update_installation(api::UpdateInstallationRequest {
            installation_id: partial.id.clone(),
            negative_charge_limit: Some("-10".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(
        terms_on_partial.expect_err("no account yet").code(),
        Code::FailedPrecondition
    );
    org.technician
        .complete(completion(&partial.id, &plan.id))
        .await
        .expect("completed");

    let edited = installations
        .update_installation(api::UpdateInstallationRequest {
            installation_id: partial.id.clone(),
            location: Some(api::Location {
                latitude: 0.5,
                longitude: 35.0,
            }),
            household: Some(api::HouseholdDetails {
                members: 2,
                children: 0,
                ..Default::default()
            }),
            negative_charge_limit: Some("-10".into()),
            auto_switch_off: Some(false),
            ..Default::default()
        })
        .await
        .expect("edited")
        .into_inner();
    assert_eq!(edited.household.expect("household").members, 2);
    assert_eq!(edited.location.expect("location").latitude, 0.5);
    assert_eq!(
        edited.system.expect("system").battery_type,
        "LiFePO4",
        "unset parts are kept"
    );
    let terms = edited.plan.expect("plan");
    assert_eq!(
        (terms.negative_charge_limit.as_str(), terms.auto_switch_off),
        ("-10", false)
    );
    let account = server
        .server
        .engine()
        .account("SL-EDIT-1")
        .expect("engine")
        .expect("account");
    assert_eq!(account.account.negative_charge_limit().to_string(), "-10");
    assert!(!account.account.auto_switch_off());

    let refused = installations
        .update_installation(api::UpdateInstallationRequest {
            installation_id: partial.id.clone(),
            negative_charge_limit: Some("10".into()),
            ..Default::default()
        })
        .await;
    assert_invalid(refused, "negative_charge_limit");
    let updated = org
        .technician
        .customers()
        .update_customer(api::UpdateCustomerRequest {
            customer_id: customer.id.clone(),
            phone: Some("0722 000000".into()),
            contact_preference: Some(ContactPreference::Phone.into()),
            details: Some(api::UserDetails {
                address: "Kisumu".into(),
                id_number: String::new(),
            }),
            ..Default::default()
        })
        .await
        .expect("customer edited")
        .into_inner();
    assert_eq!(updated.phone, "+254722000000");
    assert_eq!(updated.contact_preference(), ContactPreference::Phone);
    let clear_phone = org
        .technician
        .customers()
        .update_customer(api::UpdateCustomerRequest {
            customer_id: customer.id.clone(),
            phone: Some(String::new()),
            ..Default::default()
        })
        .await;
    assert_invalid(clear_phone, "contact_preference");
    let events = org.admin.audit_events().await;
    let newest = &events[0];
    assert_eq!(
        (newest.action.as_str(), newest.actor_member_id.as_str()),
        ("customer.updated", technician_id.as_str())
    );
    assert!(
        events
            .iter()
            .any(|e| e.action == "installation.updated" && e.description.contains("account terms"))
    );
    server.stop().await;
}
