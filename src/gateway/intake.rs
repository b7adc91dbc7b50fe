//! Verification for clients and the intake of signed filings: verify, store, and answer with a
//! receipt signed (detached CAdES over its canonical JSON) by the receipt key.

use axum::body::Bytes;
use base64::Engine as _;
use serde_json::{json, Value};

use super::idempotency::{Checked, Claim, Operation, RequestDigest, Reservation};
use super::{blocking, Actor, GatewayError, Services};
use crate::clock::now_rfc3339;
use crate::pki::alg::sha256_hex;
use crate::store::audit::Companion;
use crate::store::{Client, Submission};
use crate::verify;

/// A verification made for a client.
pub struct Verified {
    /// The validation report.
    pub report: verify::Report,
    /// Sequence number of its `verify` audit record.
    pub audit_seq: i64,
}

/// The answer to a submission.
pub enum Submitted {
    /// The first answer to the same request with the same `Idempotency-Key`, replayed as
    /// stored (JSON text).
    Replayed(String),
    /// A new submission: its receipt and the audit record's sequence number.
    Created {
        /// `{submission_id, receipt, receipt_json, receipt_p7s}`.
        response: Value,
        /// Sequence number of its `submit` audit record.
        audit_seq: i64,
    },
}

/// The report's indication as its JSON name (`TOTAL_PASSED`, …).
pub fn indication_name(i: verify::Indication) -> String {
    serde_json::to_value(i)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

impl Services {
    async fn validate(
        &self,
        document: Bytes,
        content: Option<Bytes>,
    ) -> Result<verify::Report, GatewayError> {
        let ctx = self.settings().validation_context()?;
        let report = blocking(move || {
            verify::document(
                "document",
                &document,
                content.as_deref(),
                &verify::Policy::default(),
                &ctx,
            )
            .map_err(crate::Error::from)
        })
        .await?;
        self.metrics().verdict(&indication_name(report.indication));
        Ok(report)
    }

    /// Verifies `document` (with `content` for a detached CMS signature) for `caller`.
    pub async fn verify(
        &self,
        caller: &Client,
        document: Bytes,
        content: Option<Bytes>,
    ) -> Result<Verified, GatewayError> {
        let sha256 = sha256_hex(&document);
        let report = self.validate(document, content).await?;
        let audit_seq = self
            .audit(
                &Actor::of(caller),
                "verify",
                json!({"sha256": sha256, "indication": indication_name(report.indication)}),
            )
            .await?;
        Ok(Verified { report, audit_seq })
    }

    /// Verifies `document` (with `content` for a detached CMS signature) for an anonymous
    /// visitor of the public verify page: neither the document nor the report is stored,
    /// audited or logged (only the verdict is counted in the metrics).
    pub async fn verify_anonymous(
        &self,
        document: Bytes,
        content: Option<Bytes>,
    ) -> Result<verify::Report, GatewayError> {
        self.validate(document, content).await
    }

    /// Verifies and stores a filing, and answers with a signed receipt; for an
    /// `Idempotency-Key` already answered, the first answer when this is the same request
    /// (`query` and body), else [`GatewayError::IdempotencyKeyReused`]. The submission row,
    /// its `submit` audit record and the key's answer commit in one transaction.
    pub async fn submit(
        &self,
        caller: &Client,
        claim: Option<Claim>,
        query: &str,
        document: Bytes,
        content: Option<Bytes>,
    ) -> Result<Submitted, GatewayError> {
        let sha256 = sha256_hex(&document);
        let mut digest = RequestDigest::new(Operation::Submission, query);
        digest.part("document", None, &sha256);
        if let Some(c) = &content {
            digest.part("content", None, &sha256_hex(c));
        }
        let fingerprint = digest.finish();
        let reservation = match Claim::check(claim, &fingerprint)? {
            Checked::Replay(stored) => return Ok(Submitted::Replayed(stored)),
            Checked::Proceed(r) => r,
        };
        let result = self
            .store_submission(
                caller,
                reservation.as_ref(),
                &fingerprint,
                sha256,
                document,
                content,
            )
            .await;
        if let Some(r) = reservation {
            match &result {
                Ok(_) => r.committed(),
                Err(_) => r.release().await,
            }
        }
        result
    }

    async fn store_submission(
        &self,
        caller: &Client,
        reservation: Option<&Reservation>,
        fingerprint: &str,
        sha256: String,
        document: Bytes,
        content: Option<Bytes>,
    ) -> Result<Submitted, GatewayError> {
        let size = document.len() as i64;
        let stored_document = document.to_vec();
        let report = self.validate(document, content).await?;
        let report_json = serde_json::to_string(&report)
            .map_err(|e| GatewayError::Io(format!("report serialization: {e}")))?;
        let indication = indication_name(report.indication);
        let id = crate::ids::random_id("sub_");
        let received_at = now_rfc3339();
        let receipt = json!({
            "submission_id": id,
            "received_at": received_at,
            "sha256": sha256,
            "size": size,
            "client": caller.id,
            "indication": indication,
            "report_sha256": sha256_hex(report_json.as_bytes()),
        });
        let receipt_json = crate::store::audit::canonical_json(&receipt);
        let receipt_p7s = self
            .receipt_signature(receipt_json.clone().into_bytes())
            .await?;
        let response = json!({
            "submission_id": id,
            "receipt": receipt,
            "receipt_json": receipt_json,
            "receipt_p7s": base64::engine::general_purpose::STANDARD.encode(receipt_p7s),
        });
        let response_text = response.to_string();
        let submission = Submission {
            id: id.clone(),
            client_id: caller.id.clone(),
            agency: caller.agency.clone(),
            // The key lives in the idempotency table, where it expires.
            idempotency_key: None,
            received_at,
            sha256: sha256.clone(),
            size,
            indication: indication.clone(),
            report: report_json,
            document: stored_document,
            response: response_text.clone(),
        };
        let record = self
            .audit_log()
            .append_with(
                &Actor::of(caller),
                "submit",
                json!({"submission_id": id, "sha256": sha256, "indication": indication}),
                Companion::Submission(Box::new(submission)),
                reservation.map(|r| r.completion(fingerprint, &response_text)),
            )
            .await?;
        Ok(Submitted::Created {
            response,
            audit_seq: record.seq,
        })
    }

    /// Submission `id` of the caller's agency, as `GET /v1/submissions/{id}` shows it.
    pub async fn submission(&self, caller: &Client, id: &str) -> Result<Value, GatewayError> {
        let s = self
            .store()
            .submission(&caller.agency, id)
            .await?
            .ok_or(GatewayError::NotFound("submission"))?;
        let report: Value = serde_json::from_str(&s.report)
            .map_err(|e| GatewayError::Io(format!("stored report: {e}")))?;
        Ok(json!({
            "submission_id": s.id,
            "client": s.client_id,
            "received_at": s.received_at,
            "sha256": s.sha256,
            "size": s.size,
            "indication": s.indication,
            "report": report,
        }))
    }

    /// The key that signs receipts and checkpoints (`receipt_key`).
    pub(crate) async fn receipt_key(
        &self,
    ) -> Result<std::sync::Arc<crate::keys::Pkcs12Key>, GatewayError> {
        let name = &self.settings().receipt_key;
        let record = self
            .store()
            .key(name)
            .await?
            .ok_or_else(|| GatewayError::NoReceiptKey(name.clone()))?;
        self.signing_key(&record).await
    }

    /// A detached CAdES signature over `content` by the receipt key (time-stamped when a TSA
    /// is configured): receipts and checkpoints.
    pub(crate) async fn receipt_signature(
        &self,
        content: Vec<u8>,
    ) -> Result<Vec<u8>, GatewayError> {
        let key = self.receipt_key().await?;
        let settings = self.settings().clone();
        blocking(move || super::checkpoint::sign_detached(&*key, &content, &settings)).await
    }
}
