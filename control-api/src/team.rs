//! The `sunledger.api.v1.Team` service: members, their API tokens, and the audit log.

use sunledger_proto::api::v1 as wire;
use sunledger_proto::api::v1::team_server::Team;
use tonic::{Request, Response, Status};

use crate::convert::role_from_wire;
use crate::directory::{Directory, NewMember};
use crate::pagination::PageRequest;
use crate::roles::{Caller, Role};
use crate::{auth, blocking};

/// Serves `Team` from the directory.
pub struct TeamService {
    directory: Directory,
}

impl TeamService {
    /// A service reading and writing `directory`.
    pub fn new(directory: Directory) -> TeamService {
        TeamService { directory }
    }
}

/// The member a token request names; empty means the caller.
fn member_or_self(caller: &Caller, member_id: String) -> String {
    match member_id.is_empty() {
        true => caller.member_id.clone(),
        false => member_id,
    }
}

#[tonic::async_trait]
impl Team for TeamService {
    async fn list_members(
        &self,
        request: Request<wire::ListMembersRequest>,
    ) -> Result<Response<wire::ListMembersResponse>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let request = request.into_inner();
        let page = PageRequest::parse(request.page_size, &request.page_token)?;
        let directory = self.directory.clone();
        let page = blocking(move || directory.members(&caller.org_id, &page)).await?;
        Ok(Response::new(wire::ListMembersResponse {
            members: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_member(
        &self,
        request: Request<wire::GetMemberRequest>,
    ) -> Result<Response<wire::Member>, Status> {
        let caller = auth::authorised(&request, Role::Observer)?;
        let member_id = request.into_inner().member_id;
        let directory = self.directory.clone();
        let member = blocking(move || directory.member(&caller.org_id, &member_id)).await?;
        Ok(Response::new(member.into()))
    }

    async fn add_member(
        &self,
        request: Request<wire::AddMemberRequest>,
    ) -> Result<Response<wire::AddMemberResponse>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let request = request.into_inner();
        let new = NewMember {
            name: request.name,
            email: request.email,
            role: role_from_wire("role", request.role)?,
        };
        let directory = self.directory.clone();
        let (member, token) = blocking(move || directory.add_member(&caller, &new)).await?;
        Ok(Response::new(wire::AddMemberResponse {
            member: Some(member.into()),
            token: Some(token.into()),
        }))
    }

    async fn change_role(
        &self,
        request: Request<wire::ChangeRoleRequest>,
    ) -> Result<Response<wire::Member>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let request = request.into_inner();
        let role = role_from_wire("role", request.role)?;
        let directory = self.directory.clone();
        let member =
            blocking(move || directory.change_role(&caller, &request.member_id, role)).await?;
        Ok(Response::new(member.into()))
    }

    async fn remove_member(
        &self,
        request: Request<wire::RemoveMemberRequest>,
    ) -> Result<Response<wire::RemoveMemberResponse>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let member_id = request.into_inner().member_id;
        let directory = self.directory.clone();
        blocking(move || directory.remove_member(&caller, &member_id)).await?;
        Ok(Response::new(wire::RemoveMemberResponse {}))
    }

    async fn list_tokens(
        &self,
        request: Request<wire::ListTokensRequest>,
    ) -> Result<Response<wire::ListTokensResponse>, Status> {
        let caller = auth::caller(&request)?;
        let member_id = member_or_self(&caller, request.into_inner().member_id);
        caller.require_for_member(&member_id, Role::Observer)?;
        let directory = self.directory.clone();
        let tokens = blocking(move || directory.tokens(&caller.org_id, &member_id)).await?;
        Ok(Response::new(wire::ListTokensResponse {
            tokens: tokens.into_iter().map(Into::into).collect(),
        }))
    }

    async fn create_token(
        &self,
        request: Request<wire::CreateTokenRequest>,
    ) -> Result<Response<wire::CreateTokenResponse>, Status> {
        let caller = auth::caller(&request)?;
        let member_id = member_or_self(&caller, request.into_inner().member_id);
        caller.require_for_member(&member_id, Role::Technician)?;
        let directory = self.directory.clone();
        let token = blocking(move || directory.create_token(&caller, &member_id)).await?;
        Ok(Response::new(wire::CreateTokenResponse {
            token: Some(token.into()),
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<wire::RevokeTokenRequest>,
    ) -> Result<Response<wire::RevokeTokenResponse>, Status> {
        let caller = auth::caller(&request)?;
        let request = request.into_inner();
        let member_id = member_or_self(&caller, request.member_id);
        caller.require_for_member(&member_id, Role::Technician)?;
        let directory = self.directory.clone();
        blocking(move || directory.revoke_token(&caller, &member_id, &request.token_id)).await?;
        Ok(Response::new(wire::RevokeTokenResponse {}))
    }

    async fn list_audit_events(
        &self,
        request: Request<wire::ListAuditEventsRequest>,
    ) -> Result<Response<wire::ListAuditEventsResponse>, Status> {
        let caller = auth::authorised(&request, Role::Admin)?;
        let request = request.into_inner();
        let page = PageRequest::parse(request.page_size, &request.page_token)?;
        let directory = self.directory.clone();
        let page = blocking(move || directory.audit_events(&caller.org_id, &page)).await?;
        Ok(Response::new(wire::ListAuditEventsResponse {
            events: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token,
        }))
    }
}
