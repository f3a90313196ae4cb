//! The `sunledger.api.v1.Organisations` service: the caller's own organisation.

use sunledger_proto::api::v1 as wire;
use sunledger_proto::api::v1::organisations_server::Organisations;
use tonic::{Request, Response, Status};

use crate::directory::{Directory, OrganisationChanges};
use crate::roles::Role;
use crate::{auth, blocking};

/// Serves `Organisations` from the directory.
pub struct OrganisationsService {
    directory: Directory,
}

impl OrganisationsService {
    /// A service reading and writing `directory`.
    pub fn new(directory: Directory) -> OrganisationsService {
        OrganisationsService { directory }
    }
}

#[tonic::async_trait]
impl Organisations for OrganisationsService {
    async fn get_organisation(
        &self,
        request: Request<wire::GetOrganisationRequest>,
    ) -> Result<Response<wire::Organisation>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let directory = self.directory.clone();
        let organisation = blocking(move || directory.organisation(&caller.org_id)).await?;
        Ok(Response::new(organisation.into()))
    }

    async fn update_organisation(
        &self,
        request: Request<wire::UpdateOrganisationRequest>,
    ) -> Result<Response<wire::Organisation>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let request = request.into_inner();
        let changes = OrganisationChanges {
            name: request.name,
            time_zone: request.time_zone,
        };
        let directory = self.directory.clone();
        let organisation =
            blocking(move || directory.update_organisation(&caller, &changes)).await?;
        Ok(Response::new(organisation.into()))
    }
}
