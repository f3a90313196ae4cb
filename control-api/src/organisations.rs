//! The `sunledger.api.v1.Organisations` service: the caller's own organisation.

use sunledger_proto::api::v1 as wire;
use sunledger_proto::api::v1::organisations_server::Organisations;
use tonic::{Request, Response, Status};

use crate::convert::organisation_to_wire;
use crate::directory::{Directory, DirectoryError, Organisation, OrganisationChanges};
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
        let organisation = blocking(move || {
            let organisation = directory.organisation(&caller.org_id)?;
            with_keys(&directory, organisation)
        })
        .await?;
        Ok(Response::new(organisation))
    }

    async fn rotate_command_key(
        &self,
        request: Request<wire::RotateCommandKeyRequest>,
    ) -> Result<Response<wire::Organisation>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let grace_seconds = request.into_inner().grace_seconds;
        let directory = self.directory.clone();
        let organisation = blocking(move || {
            directory.rotate_command_key(&caller, grace_seconds)?;
            let organisation = directory.organisation(&caller.org_id)?;
            with_keys(&directory, organisation)
        })
        .await?;
        Ok(Response::new(organisation))
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
        let organisation = blocking(move || {
            let organisation = directory.update_organisation(&caller, &changes)?;
            with_keys(&directory, organisation)
        })
        .await?;
        Ok(Response::new(organisation))
    }
}

/// `organisation` as replies carry it, with its command keys as they stand now.
fn with_keys(
    directory: &Directory,
    organisation: Organisation,
) -> Result<wire::Organisation, DirectoryError> {
    let (keys, now_ms) = directory.command_keys(&organisation.id)?;
    Ok(organisation_to_wire(organisation, &keys, now_ms))
}
