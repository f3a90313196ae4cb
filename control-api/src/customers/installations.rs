//! The `sunledger.api.v1.Installations` service: registration in steps and a contact's
//! installations. Completing a registration, changing account terms and deleting a complete
//! installation (which closes its account) go through the billing engine, in the order
//! [`crate::directory::registration`] explains.

use sunledger_proto::api::v1 as wire;
use sunledger_proto::api::v1::installations_server::Installations;
use sunledger_proto::api::v1::start_registration_request::Contact;
use tonic::{Request, Response, Status};

use super::convert::{
    household_details, location, new_customer, plan_choice, system_details, user_details,
};
use crate::directory::projects::InstallationChanges;
use crate::directory::registration::{Completion, NewRegistration, RegistrationContact};
use crate::pagination::PageRequest;
use crate::platform::Platform;
use crate::roles::Role;
use crate::{auth, blocking};

/// Serves `Installations` from the directory and the billing engine.
pub struct InstallationsService {
    platform: Platform,
}

impl InstallationsService {
    /// A service over `platform`'s directory and engine.
    pub fn new(platform: Platform) -> InstallationsService {
        InstallationsService { platform }
    }
}

/// The answer of a call returning one installation.
type Answer = Result<Response<wire::Installation>, Status>;

#[tonic::async_trait]
impl Installations for InstallationsService {
    async fn start_registration(&self, request: Request<wire::StartRegistrationRequest>) -> Answer {
        let caller = auth::authorised(&request, Role::Technician)?;
        let request = request.into_inner();
        let contact = match request.contact {
            None => None,
            Some(Contact::CustomerId(customer_id)) => {
                Some(RegistrationContact::Existing(customer_id))
            }
            Some(Contact::NewCustomer(details)) => {
                Some(RegistrationContact::New(new_customer(details)?))
            }
        };
        let new = NewRegistration {
            unit_serial: request.unit_serial,
            contact,
            location: request.location.map(location),
        };
        let directory = self.platform.directory.clone();
        let installation = blocking(move || directory.start_registration(&caller, &new)).await?;
        Ok(Response::new(installation.into()))
    }

    async fn complete_registration(
        &self,
        request: Request<wire::CompleteRegistrationRequest>,
    ) -> Answer {
        let caller = auth::authorised(&request, Role::Technician)?;
        let request = request.into_inner();
        let completion = Completion {
            installation_id: request.installation_id,
            unit_serial: request.unit_serial,
            user: request.user.map(user_details),
            plan: request.plan.map(plan_choice),
            partner_organisation: request.partner_organisation,
            technician_member_id: request.technician_member_id,
            system: request.system.map(system_details).unwrap_or_default(),
            household: request.household.map(household_details).unwrap_or_default(),
        };
        let Platform {
            directory, engine, ..
        } = self.platform.clone();
        let installation = blocking(move || {
            directory.complete_registration(&caller, &completion, |serial, opening| {
                engine.open_account(serial, opening)
            })
        })
        .await?;
        Ok(Response::new(installation.into()))
    }

    async fn list_partial_registrations(
        &self,
        request: Request<wire::ListPartialRegistrationsRequest>,
    ) -> Result<Response<wire::ListInstallationsResponse>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let request = request.into_inner();
        let page = PageRequest::parse(request.page_size, &request.page_token)?;
        let directory = self.platform.directory.clone();
        let page = blocking(move || directory.partial_registrations(&caller.org_id, &page)).await?;
        Ok(Response::new(wire::ListInstallationsResponse {
            installations: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_installation(&self, request: Request<wire::GetInstallationRequest>) -> Answer {
        let caller = auth::authorised(&request, Role::Observer)?;
        let installation_id = request.into_inner().installation_id;
        let directory = self.platform.directory.clone();
        let installation =
            blocking(move || directory.installation(&caller.org_id, &installation_id)).await?;
        Ok(Response::new(installation.into()))
    }

    async fn list_installations(
        &self,
        request: Request<wire::ListInstallationsRequest>,
    ) -> Result<Response<wire::ListInstallationsResponse>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let request = request.into_inner();
        let page = PageRequest::parse(request.page_size, &request.page_token)?;
        let directory = self.platform.directory.clone();
        let page = blocking(move || {
            directory.installations_of(&caller.org_id, &request.customer_id, &page)
        })
        .await?;
        Ok(Response::new(wire::ListInstallationsResponse {
            installations: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_installation(
        &self,
        request: Request<wire::UpdateInstallationRequest>,
    ) -> Answer {
        let caller = auth::authorised(&request, Role::Technician)?;
        let request = request.into_inner();
        let changes = InstallationChanges {
            installation_id: request.installation_id,
            location: request.location.map(location),
            partner_organisation: request.partner_organisation,
            technician_member_id: request.technician_member_id,
            system: request.system.map(system_details),
            household: request.household.map(household_details),
            negative_charge_limit: request.negative_charge_limit,
            auto_switch_off: request.auto_switch_off,
            down_payment: request.down_payment,
            total_system_cost: request.total_system_cost,
        };
        let Platform {
            directory, engine, ..
        } = self.platform.clone();
        let installation = blocking(move || {
            directory.update_installation(&caller, &changes, |serial, change| {
                engine.change_account(serial, change)
            })
        })
        .await?;
        Ok(Response::new(installation.into()))
    }

    async fn assign_installation(
        &self,
        request: Request<wire::AssignInstallationRequest>,
    ) -> Answer {
        let caller = auth::authorised(&request, Role::Technician)?;
        let request = request.into_inner();
        let directory = self.platform.directory.clone();
        let installation = blocking(move || {
            directory.assign_installation(&caller, &request.installation_id, &request.customer_id)
        })
        .await?;
        Ok(Response::new(installation.into()))
    }

    async fn unassign_installation(
        &self,
        request: Request<wire::UnassignInstallationRequest>,
    ) -> Answer {
        let caller = auth::authorised(&request, Role::Technician)?;
        let installation_id = request.into_inner().installation_id;
        let directory = self.platform.directory.clone();
        let installation =
            blocking(move || directory.unassign_installation(&caller, &installation_id)).await?;
        Ok(Response::new(installation.into()))
    }

    async fn delete_installation(
        &self,
        request: Request<wire::DeleteInstallationRequest>,
    ) -> Answer {
        let caller = auth::authorised(&request, Role::Admin)?;
        let installation_id = request.into_inner().installation_id;
        let Platform {
            directory, engine, ..
        } = self.platform.clone();
        let installation = blocking(move || {
            directory.delete_installation(&caller, &installation_id, |serial| {
                engine.close_account(serial)
            })
        })
        .await?;
        Ok(Response::new(installation.into()))
    }
}
