//! The operators' gRPC API as the end-to-end tests drive it: generated tonic clients carrying a
//! bearer token, organisations founded with a member of each role, and the assertions every
//! API test repeats (a refused field, the audit log, walking pages).
//!
//! - [`Api`]: one caller's view; hands out a client of any service over one channel.
//! - [`found`] and [`Org`]: an organisation as `sunledger admin create-org` makes it, plus a
//!   Technician and an Observer.
//! - [`assert_invalid`], [`all_pages`], [`imei`], [`acknowledge_command`]: shared checks and
//!   fixtures.

use std::future::Future;
use std::sync::Arc;

use prost::Message;
use sunledger_billing::clock::SystemClock;
use sunledger_billing::units::DeviceKey;
use sunledger_control_api::{Directory, Founded, NewOrganisation};
use sunledger_proto::api::v1 as api;
use sunledger_proto::api::v1::customers_client::CustomersClient;
use sunledger_proto::api::v1::installations_client::InstallationsClient;
use sunledger_proto::api::v1::organisations_client::OrganisationsClient;
use sunledger_proto::api::v1::payments_client::PaymentsClient;
use sunledger_proto::api::v1::plans_client::PlansClient;
use sunledger_proto::api::v1::reports_client::ReportsClient;
use sunledger_proto::api::v1::team_client::TeamClient;
use sunledger_proto::api::v1::units_client::UnitsClient;
use sunledger_proto::device::{Command, CommandAck, LoadState, Reason};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::{Device, TestServer};

/// Sends the `authorization` metadata given (or none), as a client would.
#[derive(Clone)]
pub struct Authorization(Option<AsciiMetadataValue>);

impl Interceptor for Authorization {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel that authenticates every call, for any generated client.
pub type Authorized = InterceptedService<Channel, Authorization>;

/// The API as one caller sees it. Clients are cheap: each is a clone of one channel.
#[derive(Clone)]
pub struct Api {
    channel: Channel,
    authorization: Authorization,
}

impl Api {
    /// Calls with the `authorization` metadata `value`, or none.
    pub async fn with_authorization(server: &TestServer, value: Option<&str>) -> Api {
        Api::over(server.grpc_channel().await, value)
    }

    /// Calls over `channel` (e.g. a TLS one) with the `authorization` metadata `value`, or none.
    pub fn over(channel: Channel, value: Option<&str>) -> Api {
        let authorization =
            Authorization(value.map(|value| value.parse().expect("ASCII metadata")));
        Api {
            channel,
            authorization,
        }
    }

    /// Calls as the holder of API token `token`.
    pub async fn bearer(server: &TestServer, token: &str) -> Api {
        Api::with_authorization(server, Some(&format!("Bearer {token}"))).await
    }

    /// The authenticated channel, for a client of a service without an accessor here.
    pub fn intercepted(&self) -> Authorized {
        InterceptedService::new(self.channel.clone(), self.authorization.clone())
    }

    /// `sunledger.api.v1.Organisations`.
    pub fn organisations(&self) -> OrganisationsClient<Authorized> {
        OrganisationsClient::new(self.intercepted())
    }

    /// `sunledger.api.v1.Team`.
    pub fn team(&self) -> TeamClient<Authorized> {
        TeamClient::new(self.intercepted())
    }

    /// `sunledger.api.v1.Plans`.
    pub fn plans(&self) -> PlansClient<Authorized> {
        PlansClient::new(self.intercepted())
    }

    /// `sunledger.api.v1.Units`.
    pub fn units(&self) -> UnitsClient<Authorized> {
        UnitsClient::new(self.intercepted())
    }

    /// `sunledger.api.v1.Payments`.
    pub fn payments(&self) -> PaymentsClient<Authorized> {
        PaymentsClient::new(self.intercepted())
    }

    /// `sunledger.api.v1.Customers`.
    pub fn customers(&self) -> CustomersClient<Authorized> {
        CustomersClient::new(self.intercepted())
    }

    /// `sunledger.api.v1.Installations`.
    pub fn installations(&self) -> InstallationsClient<Authorized> {
        InstallationsClient::new(self.intercepted())
    }

    /// `sunledger.api.v1.Reports`.
    pub fn reports(&self) -> ReportsClient<Authorized> {
        ReportsClient::new(self.intercepted())
    }

    /// The organisation's audit log, newest first, all pages (Admin only).
    pub async fn audit_events(&self) -> Vec<api::AuditEvent> {
        all_pages(|page_token| async move {
            let request = api::ListAuditEventsRequest {
                page_size: 0,
                page_token,
            };
            let page = self
                .team()
                .list_audit_events(request)
                .await
                .expect("listing audit events")
                .into_inner();
            (page.events, page.next_page_token)
        })
        .await
    }

    /// The sequence of the organisation's newest audit event (Admin only): unchanged across
    /// a call means the call wrote nothing.
    pub async fn newest_audit_sequence(&self) -> u64 {
        let request = api::ListAuditEventsRequest {
            page_size: 1,
            page_token: String::new(),
        };
        let page = self
            .team()
            .list_audit_events(request)
            .await
            .expect("listing audit events")
            .into_inner();
        page.events.first().map_or(0, |event| event.sequence)
    }
}

/// Founds an organisation (in Kenya, KES, Africa/Nairobi) as `sunledger admin create-org`
/// does, on the running server's file.
pub async fn found(server: &TestServer, name: &str) -> Founded {
    let directory = Directory::open(server.server.store_handle(), Arc::new(SystemClock))
        .expect("opening the directory");
    let new = NewOrganisation {
        name: name.into(),
        country: "KE".into(),
        currency: "KES".into(),
        time_zone: "Africa/Nairobi".into(),
        accept_terms: true,
        admin_name: format!("Admin of {name}"),
        admin_email: "admin@example.com".into(),
    };
    tokio::task::spawn_blocking(move || directory.create_organisation(&new))
        .await
        .expect("founding task")
        .expect("organisation founded")
}

/// An organisation with one member of each role, each with their own API.
pub struct Org {
    /// The organisation, its first Admin and the Admin's token.
    pub founded: Founded,
    /// As the Admin.
    pub admin: Api,
    /// As a Technician.
    pub technician: Api,
    /// As an Observer.
    pub observer: Api,
}

impl Org {
    /// Founds organisation `name` and adds a Technician and an Observer.
    pub async fn start(server: &TestServer, name: &str) -> Org {
        let founded = found(server, name).await;
        let admin = Api::bearer(server, founded.token.secret.expose()).await;
        let mut members = Vec::new();
        for (role, email) in [
            (api::Role::Technician, "tech@example.com"),
            (api::Role::Observer, "obs@example.com"),
        ] {
            let request = api::AddMemberRequest {
                name: format!("{role:?}"),
                email: email.into(),
                role: role.into(),
            };
            let added = admin
                .team()
                .add_member(request)
                .await
                .expect("member added")
                .into_inner();
            let secret = added.token.expect("first token").secret;
            members.push(Api::bearer(server, &secret).await);
        }
        let observer = members.pop().expect("observer");
        let technician = members.pop().expect("technician");
        Org {
            founded,
            admin,
            technician,
            observer,
        }
    }

    /// The API as the member of `role`.
    pub fn as_role(&self, role: api::Role) -> &Api {
        match role {
            api::Role::Admin => &self.admin,
            api::Role::Technician => &self.technician,
            api::Role::Observer | api::Role::Unspecified => &self.observer,
        }
    }
}

/// Asserts that `result` is INVALID_ARGUMENT naming `field` in its message and in its
/// `BadRequest` detail.
pub fn assert_invalid<T: std::fmt::Debug>(result: Result<T, Status>, field: &str) {
    let status = result.expect_err(&format!("expected {field} to be refused"));
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "{field}: {}",
        status.message()
    );
    assert!(
        status.message().starts_with(&format!("{field}: ")),
        "message {:?} does not name {field}",
        status.message()
    );
    let details = status.get_details_bad_request().expect("BadRequest detail");
    assert_eq!(details.field_violations[0].field, field);
}

/// Every item of a paginated list: `fetch` gets a page token and returns the page's items
/// and the next token; walks until the token is empty.
pub async fn all_pages<T, F, Fut>(mut fetch: F) -> Vec<T>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = (Vec<T>, String)>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let (page, next) = fetch(token).await;
        items.extend(page);
        if next.is_empty() {
            return items;
        }
        token = next;
    }
}

/// A valid IMEI for test unit `n`.
pub fn imei(n: u64) -> String {
    sunledger_sim::enrol::imei_with_check_digit(35_000_000_000_000 + n)
}

/// Waits for `device`'s next command, asserts its load and reason, and acknowledges it as a
/// real device does.
pub async fn acknowledge_command(device: &mut Device, load: LoadState, reason: Reason) -> Command {
    let (_, payload, _) = device.next_message().await;
    let command = Command::decode(payload.as_slice()).expect("a protobuf Command");
    assert_eq!(
        (command.load(), command.reason()),
        (load, reason),
        "command {command:?}"
    );
    let ack = CommandAck {
        cmd_id: command.cmd_id,
        load: command.load,
        ..CommandAck::default()
    };
    device.send_ack(ack).await;
    command
}

/// Registers a new Consumer customer `name` on unit `serial` and plan `plan_id` in both
/// registration steps, as a Technician would, and returns the complete installation: from
/// then on the unit has a billing account.
pub async fn install(api: &Api, serial: &str, plan_id: &str, name: &str) -> api::Installation {
    let customer = api::CustomerDetails {
        r#type: api::CustomerType::Consumer.into(),
        name: name.into(),
        email: format!("{}@example.com", name.to_lowercase().replace(' ', ".")),
        contact_preference: api::ContactPreference::Email.into(),
        ..Default::default()
    };
    let plan = api::PlanChoice {
        plan_id: plan_id.into(),
        ..Default::default()
    };
    install_with(api, serial, customer, plan).await
}

/// Registers `customer` on unit `serial` with the plan `plan` chooses (and its terms), in both
/// registration steps, and returns the complete installation.
pub async fn install_with(
    api: &Api,
    serial: &str,
    customer: api::CustomerDetails,
    plan: api::PlanChoice,
) -> api::Installation {
    let start = api::StartRegistrationRequest {
        unit_serial: serial.into(),
        contact: Some(api::start_registration_request::Contact::NewCustomer(
            customer,
        )),
        location: Some(api::Location {
            latitude: -1.2921,
            longitude: 36.8219,
        }),
    };
    let partial = api
        .installations()
        .start_registration(start)
        .await
        .expect("initial registration")
        .into_inner();
    let complete = api::CompleteRegistrationRequest {
        installation_id: partial.id,
        plan: Some(plan),
        ..Default::default()
    };
    api.installations()
        .complete_registration(complete)
        .await
        .expect("registration completed")
        .into_inner()
}

/// Creates a usage plan at `price_per_kwh` with automatic switch-off, as an Admin would.
pub async fn usage_plan(admin: &Api, price_per_kwh: &str) -> api::Plan {
    let request = api::CreatePlanRequest {
        name: format!("Usage {price_per_kwh}"),
        tariff: Some(api::create_plan_request::Tariff::Usage(api::UsageTariff {
            price_per_kwh: price_per_kwh.into(),
        })),
        auto_switch_off: true,
        ..Default::default()
    };
    admin
        .plans()
        .create_plan(request)
        .await
        .expect("plan created")
        .into_inner()
}

/// Registers unit `serial` (IMEI from `n`) as `api`'s caller and returns its device key.
pub async fn register_unit(api: &Api, serial: &str, n: u64) -> DeviceKey {
    let request = api::RegisterUnitRequest {
        serial: serial.into(),
        imei: imei(n),
        entity_id: String::new(),
        ..Default::default()
    };
    let response = api
        .units()
        .register_unit(request)
        .await
        .expect("unit registered")
        .into_inner();
    DeviceKey::from_hex(&response.device_key).expect("the device key is 32 hex digits")
}

/// A mobile-money payment of `amount` on `installation_id` with provider reference
/// `reference`, as a provider's callback records it.
pub fn payment(installation_id: &str, amount: &str, reference: &str) -> api::RecordPaymentRequest {
    api::RecordPaymentRequest {
        installation_id: installation_id.into(),
        amount: amount.into(),
        reference: reference.into(),
        channel: api::PaymentChannel::MobileMoney.into(),
    }
}
