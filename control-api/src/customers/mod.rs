//! The `sunledger.api.v1.Customers` service (contacts and their credit approval) and, in
//! [`installations`], the `sunledger.api.v1.Installations` service (registration in steps
//! and a contact's installations). [`convert`] moves their values between wire and
//! directory.

pub mod convert;
pub mod installations;

use sunledger_proto::api::v1 as wire;
use sunledger_proto::api::v1::customers_server::Customers;
use tonic::{Request, Response, Status};

use self::convert::{
    approval_status_from_wire, customer_type_from_wire, new_customer, preference_from_wire,
    user_details,
};
use crate::directory::{ApprovalChange, CustomerChanges, CustomerFilter, Directory};
use crate::pagination::PageRequest;
use crate::roles::Role;
use crate::validate::FieldViolation;
use crate::{auth, blocking};

/// Serves `Customers` from the directory.
pub struct CustomersService {
    directory: Directory,
}

impl CustomersService {
    /// A service reading and writing `directory`.
    pub fn new(directory: Directory) -> CustomersService {
        CustomersService { directory }
    }
}

#[tonic::async_trait]
impl Customers for CustomersService {
    async fn create_customer(
        &self,
        request: Request<wire::CreateCustomerRequest>,
    ) -> Result<Response<wire::Customer>, Status> {
        let caller = auth::authorised(&request, Role::Technician)?;
        let details = request
            .into_inner()
            .customer
            .ok_or_else(|| FieldViolation::new("customer", "required"))?;
        let new = new_customer(details)?;
        let directory = self.directory.clone();
        let customer = blocking(move || directory.create_customer(&caller, &new)).await?;
        Ok(Response::new(customer.into()))
    }

    async fn get_customer(
        &self,
        request: Request<wire::GetCustomerRequest>,
    ) -> Result<Response<wire::Customer>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let customer_id = request.into_inner().customer_id;
        let directory = self.directory.clone();
        let customer = blocking(move || directory.customer(&caller.org_id, &customer_id)).await?;
        Ok(Response::new(customer.into()))
    }

    async fn list_customers(
        &self,
        request: Request<wire::ListCustomersRequest>,
    ) -> Result<Response<wire::ListCustomersResponse>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let request = request.into_inner();
        let page = PageRequest::parse(request.page_size, &request.page_token)?;
        let filter = CustomerFilter {
            status: approval_status_from_wire("status", request.status)?,
            customer_type: match request.r#type {
                0 => None,
                value => Some(customer_type_from_wire("type", value)?),
            },
            search: request.search,
        };
        let directory = self.directory.clone();
        let page = blocking(move || directory.customers(&caller.org_id, &filter, &page)).await?;
        Ok(Response::new(wire::ListCustomersResponse {
            customers: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_customer(
        &self,
        request: Request<wire::UpdateCustomerRequest>,
    ) -> Result<Response<wire::Customer>, Status> {
        let caller = auth::authorised(&request, Role::Technician)?;
        let request = request.into_inner();
        let changes = CustomerChanges {
            customer_id: request.customer_id,
            customer_type: request
                .r#type
                .map(|value| customer_type_from_wire("type", value))
                .transpose()?,
            name: request.name,
            category: request.category,
            dealer_code: request.dealer_code,
            estimated_monthly_revenue: request.estimated_monthly_revenue,
            email: request.email,
            phone: request.phone,
            contact_preference: request
                .contact_preference
                .map(|value| preference_from_wire("contact_preference", value))
                .transpose()?,
            details: request.details.map(user_details),
        };
        let directory = self.directory.clone();
        let customer = blocking(move || directory.update_customer(&caller, &changes)).await?;
        Ok(Response::new(customer.into()))
    }

    async fn delete_customer(
        &self,
        request: Request<wire::DeleteCustomerRequest>,
    ) -> Result<Response<wire::DeleteCustomerResponse>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let customer_id = request.into_inner().customer_id;
        let directory = self.directory.clone();
        blocking(move || directory.delete_customer(&caller, &customer_id)).await?;
        Ok(Response::new(wire::DeleteCustomerResponse {}))
    }

    async fn change_approval(
        &self,
        request: Request<wire::ChangeApprovalRequest>,
    ) -> Result<Response<wire::Customer>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let request = request.into_inner();
        let change = ApprovalChange {
            customer_id: request.customer_id,
            status: approval_status_from_wire("status", request.status)?,
            assignee_member_id: request.assignee_member_id,
            credit_reference: request.credit_reference,
            billing_reference: request.billing_reference,
        };
        let directory = self.directory.clone();
        let customer = blocking(move || directory.change_approval(&caller, &change)).await?;
        Ok(Response::new(customer.into()))
    }
}
