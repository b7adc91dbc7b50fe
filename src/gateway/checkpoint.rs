//! Audit checkpoints: a gateway-signed statement of the chain head (`audit checkpoint`), and
//! the check of the chain against one (`audit verify --checkpoint`).
//!
//! A checkpoint proves that nothing after it was cut off only if this gateway signed it. So
//! its signature must be intact, reach TOTAL_PASSED under the configured trust anchors, and
//! be made by the receipt key's own certificate: a certificate that does not chain to the
//! anchors, or a trusted certificate of another key, is refused. Revocation is not required
//! (the check runs offline, on the evidence the signature carries); a revocation the evidence
//! shows still fails it.

use base64::Engine as _;
use openssl::x509::X509;
use serde_json::json;
use time::OffsetDateTime;

use super::{GatewayError, Services, Settings};
use crate::clock;
use crate::keys::KeySource;
use crate::pki::alg::{DigestAlgorithm, RsaPadding};
use crate::sign::{Format, Level, PdfDetails, SignRequest, TimeStamper};
use crate::store::audit::ChainCheck;
use crate::verify::{Indication, Policy, ValidationContext};

/// Why a checkpoint file is refused.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Not the JSON file `audit checkpoint` writes.
    #[error("checkpoint: not a checkpoint file: {0}")]
    Malformed(String),
    /// The signature is broken, untrusted, or not by the receipt key.
    #[error("checkpoint: its signature does not verify: {0}")]
    Signature(String),
}

/// The chain head a checkpoint vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Sequence number of the head record.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

/// Signs `content` detached (CMS) with `key`, adding a signature time-stamp when a TSA is
/// configured: submission receipts and checkpoints.
pub fn sign_detached(
    key: &dyn KeySource,
    content: &[u8],
    settings: &Settings,
) -> Result<Vec<u8>, crate::Error> {
    let level = if settings.tsa_url.is_some() {
        Level::BT
    } else {
        Level::BB
    };
    let timestamper = settings.timestamper();
    let request = SignRequest {
        format: Some(Format::Cms),
        level,
        digest: DigestAlgorithm::Sha256,
        rsa_padding: RsaPadding::Pkcs1,
        signing_time: OffsetDateTime::now_utc(),
        timestamper: timestamper.as_ref().map(|t| t as &dyn TimeStamper),
        pdf: PdfDetails::default(),
        xml_profile: None,
    };
    Ok(crate::sign::sign_document(content, key, &request)?.bytes)
}

/// Checks a checkpoint `file` (the JSON `audit checkpoint` writes) against `receipt_cert`
/// under `ctx`: see the module documentation. Returns the head it vouches for.
pub fn verify_checkpoint(
    file: &[u8],
    receipt_cert: &X509,
    ctx: &ValidationContext,
) -> Result<Checkpoint, CheckpointError> {
    let malformed = |why: String| CheckpointError::Malformed(why);
    let refused = |why: String| CheckpointError::Signature(why);
    let file: serde_json::Value =
        serde_json::from_slice(file).map_err(|e| malformed(e.to_string()))?;
    let canonical = file["checkpoint"]
        .as_str()
        .ok_or_else(|| malformed("no checkpoint".into()))?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(file["signature"].as_str().unwrap_or_default())
        .map_err(|e| malformed(format!("signature is not base64: {e}")))?;
    let policy = Policy {
        require_revocation: false,
        ..Policy::default()
    };
    let report = crate::verify::document(
        "checkpoint",
        &signature,
        Some(canonical.as_bytes()),
        &policy,
        ctx,
    )
    .map_err(|e| refused(e.to_string()))?;
    let [signature_report] = report.signatures.as_slice() else {
        return Err(refused(format!(
            "{} signatures, expected one",
            report.signatures.len()
        )));
    };
    if !signature_report.intact {
        return Err(refused(
            "the signed content or the signature value is altered".into(),
        ));
    }
    if signature_report.indication != Indication::TotalPassed
        || report.indication != Indication::TotalPassed
    {
        return Err(refused(format!(
            "{:?}/{:?} under the trust anchors",
            signature_report.indication, signature_report.sub_indication
        )));
    }
    if signer_certificate(&signature)? != receipt_cert.to_der().unwrap_or_default() {
        return Err(refused(
            "signed by a certificate other than the receipt key's".into(),
        ));
    }
    let value: serde_json::Value =
        serde_json::from_str(canonical).map_err(|e| malformed(e.to_string()))?;
    Ok(Checkpoint {
        seq: value["seq"]
            .as_i64()
            .ok_or_else(|| malformed("no seq".into()))?,
        hash: value["hash"]
            .as_str()
            .ok_or_else(|| malformed("no hash".into()))?
            .to_string(),
    })
}

/// The DER certificate of the one signer of the CMS `signature` (found among the
/// certificates it embeds by issuer and serial number).
fn signer_certificate(signature: &[u8]) -> Result<Vec<u8>, CheckpointError> {
    use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
    let refused = |why: &str| CheckpointError::Signature(why.into());
    let p7 = Pkcs7::from_der(signature).map_err(|_| refused("not a CMS signature"))?;
    let empty = openssl::stack::Stack::<X509>::new().map_err(|_| refused("no memory"))?;
    let signers = p7
        .signers(&empty, Pkcs7Flags::empty())
        .map_err(|_| refused("its signer certificate is not embedded"))?;
    match signers.iter().collect::<Vec<_>>().as_slice() {
        [one] => one.to_der().map_err(|_| refused("signer certificate")),
        _ => Err(refused("more than one signer")),
    }
}

impl Services {
    /// Signs a checkpoint of the chain head with the receipt key; returns the file to keep
    /// (JSON: the canonical checkpoint and its detached CMS signature) and the head.
    pub async fn create_checkpoint(&self) -> Result<(Vec<u8>, Checkpoint), GatewayError> {
        let (seq, hash) = self.store().audit_head().await?;
        let checkpoint = json!({"seq": seq, "hash": hash, "at": clock::now_rfc3339()});
        let canonical = crate::store::audit::canonical_json(&checkpoint);
        let p7s = self
            .receipt_signature(canonical.clone().into_bytes())
            .await?;
        let file = json!({
            "checkpoint": canonical,
            "signature": base64::engine::general_purpose::STANDARD.encode(p7s),
        });
        Ok((format!("{file:#}\n").into_bytes(), Checkpoint { seq, hash }))
    }

    /// Checks the audit chain, and with `checkpoint` (a file [`Services::create_checkpoint`]
    /// wrote) that it is this gateway's and nothing after it was cut off.
    pub async fn verify_audit(
        &self,
        checkpoint: Option<&[u8]>,
    ) -> Result<ChainCheck, GatewayError> {
        let head = match checkpoint {
            Some(file) => {
                let key = self.receipt_key().await?;
                let mut ctx = self.settings().validation_context()?;
                ctx.fetcher = None;
                let file = file.to_vec();
                let cert = key.certificate().clone();
                let head = crate::blocking::run(move || {
                    verify_checkpoint(&file, &cert, &ctx).map_err(GatewayError::from)
                })
                .await?;
                Some(head)
            }
            None => None,
        };
        Ok(self
            .store()
            .verify_audit(head.as_ref().map(|h| (h.seq, h.hash.as_str())))
            .await?)
    }
}
