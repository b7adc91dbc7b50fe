//! The routing desk's services: an officer of an agency lists the agency's inbox and sent
//! documents, reads a document's trace, builds and sends a document, acknowledges or answers
//! one with a status, and downloads a received document and its attachments, each on the
//! routing node, acting for the officer's agency only (another agency's documents are
//! `ROUTE_NOT_FOUND`, as missing ones).
//!
//! The work is the node's ([`crate::routing::Node`]) and the envelope builder's
//! ([`Services::compose_document`], [`Services::routed_envelope`]); this module adds the
//! officer's agency as the scope and records every action (`route.send`, `route.ack`,
//! `route.download`) in the audit chain under the officer's name.

use serde_json::json;

use super::accounts::Officer;
use super::route::{RoutedFile, SigningKey};
use super::{GatewayError, Services};
use crate::directory::{AgencyChoice, Province};
use crate::edxml::{DocumentSpec, FileSpec};
use crate::routing::node::{ListKind, ListParams};
use crate::routing::{Node, Receipt, RoutingError};

fn routing(e: RoutingError) -> GatewayError {
    GatewayError::Domain(crate::Error::Routing(e))
}

/// A page of the inbox or the sent list.
pub type ListedPage = (Vec<crate::store::routing::ListedDocument>, Option<String>);

impl Services {
    /// The officer's agency's inbox or sent list on `node`, filtered as `params` says (the
    /// same filters as `GET /v1/route/inbox`), newest first, with the next page's cursor.
    pub async fn officer_route_list(
        &self,
        node: &Node,
        officer: &Officer,
        kind: ListKind,
        params: &ListParams,
    ) -> Result<ListedPage, GatewayError> {
        let filter = params
            .filter(kind, vec![officer.agency.clone()])
            .map_err(routing)?;
        node.list(filter, params.cursor.as_deref())
            .await
            .map_err(routing)
    }

    /// Everything `node` knows of `document_id` as the officer's agency sees it (rows,
    /// trace and statuses: [`Node::status_view_for`]).
    pub async fn officer_route_status(
        &self,
        node: &Node,
        officer: &Officer,
        document_id: &str,
    ) -> Result<serde_json::Value, GatewayError> {
        node.status_view_for(document_id, Some(&officer.agency))
            .await
            .map_err(routing)
    }

    /// Builds the envelope of `spec` with `files`, signed with the agency's key `key`, from the
    /// officer's agency (a `from` naming another agency is refused), and sends it from `node`;
    /// recorded as `route.send`.
    pub async fn officer_route_send(
        &self,
        node: &Node,
        officer: &Officer,
        key: &str,
        mut spec: DocumentSpec,
        files: Vec<FileSpec>,
    ) -> Result<Receipt, GatewayError> {
        if spec
            .from
            .as_ref()
            .is_some_and(|f| f.organ_id() != officer.agency)
        {
            return Err(GatewayError::Invalid(format!(
                "an officer of {} sends for that agency only",
                officer.agency
            )));
        }
        spec.from = None;
        let recipients: Vec<String> = spec.organ_ids();
        let record = match self.store().key(key).await? {
            Some(r) if r.agency == officer.agency => r,
            _ => return Err(GatewayError::UnknownKey(key.into())),
        };
        let envelope = self
            .compose_document(
                None,
                Some(&officer.agency),
                SigningKey::Registered(record.name.clone()),
                spec,
                files,
            )
            .await?;
        let receipt = node
            .send_as(&officer.agency, envelope)
            .await
            .map_err(routing)?;
        self.audit(
            &officer.actor(),
            "route.send",
            json!({
                "document_id": receipt.document_id,
                "to": recipients,
                "key": record.name,
                "status": receipt.code_text(),
                "officer": officer.name,
            }),
        )
        .await?;
        Ok(receipt)
    }

    /// Answers `document_id`, delivered to the officer's agency on `node`, with status `code`
    /// (03..06, or the update answers) and an optional description; recorded as `route.ack`.
    /// Returns how many rows were answered.
    pub async fn officer_route_ack(
        &self,
        node: &Node,
        officer: &Officer,
        document_id: &str,
        code: &str,
        description: Option<String>,
    ) -> Result<usize, GatewayError> {
        let rows = node
            .acknowledge(document_id, Some(&officer.agency), code, description)
            .await
            .map_err(routing)?;
        self.audit(
            &officer.actor(),
            "route.ack",
            json!({"document_id": document_id, "status": code, "officer": officer.name}),
        )
        .await?;
        Ok(rows.len())
    }

    /// The envelope of `document_id` (`attachment: None`) or its attachment `n`, as the
    /// officer's agency may download it; recorded as `route.download`.
    pub async fn officer_route_file(
        &self,
        node: &Node,
        officer: &Officer,
        document_id: &str,
        attachment: Option<usize>,
    ) -> Result<RoutedFile, GatewayError> {
        let agency = Some(officer.agency.as_str());
        let file = match attachment {
            None => self.routed_envelope(node, document_id, agency).await?,
            Some(n) => self.routed_attachment(node, document_id, n, agency).await?,
        };
        self.audit(
            &officer.actor(),
            "route.download",
            json!({
                "document_id": document_id,
                "attachment": attachment,
                "officer": officer.name,
            }),
        )
        .await?;
        Ok(file)
    }

    /// Agencies of the directory to address a document to: by name and by province
    /// ([`crate::directory::Directory::search`]).
    pub async fn search_agencies(
        &self,
        text: &str,
        province: Option<&str>,
    ) -> Result<Vec<AgencyChoice>, GatewayError> {
        Ok(self
            .directory()
            .search(text, province)
            .await
            .map_err(crate::Error::from)?)
    }

    /// The directory's provinces (the routing desk's filter).
    pub async fn provinces(&self) -> Result<Vec<Province>, GatewayError> {
        Ok(self
            .directory()
            .provinces()
            .await
            .map_err(crate::Error::from)?)
    }
}
