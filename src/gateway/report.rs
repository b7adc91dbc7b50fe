//! Printable verification reports signed by the gateway's own key (`receipt_key`, the key
//! that signs receipts and checkpoints), so the result of a check can be shown to a third
//! party who verifies the report's PAdES signature. The report's text is the adapter's
//! ([`crate::pdf::textdoc::TextDocument`]); this service only lays it out and signs it. Like
//! the public verification itself it keeps nothing: no audit record, no log line with its
//! content.

use crate::pdf::textdoc::TextDocument;
use crate::pki::alg::{DigestAlgorithm, RsaPadding};
use crate::sign::{Format, Level, PdfDetails, SignRequest, TimeStamper};

use super::{blocking, GatewayError, Services};

impl Services {
    /// `report` as a PDF signed (PAdES, invisible; B-T when a time-stamp authority is
    /// configured) by the gateway's key.
    pub async fn signed_report(
        &self,
        report: TextDocument,
        reason: &str,
    ) -> Result<Vec<u8>, GatewayError> {
        let key = self.receipt_key().await?;
        let settings = self.settings().clone();
        let reason = reason.to_string();
        let bytes = blocking(move || {
            let pdf = report.to_pdf().map_err(crate::Error::from)?;
            let timestamper = settings.timestamper();
            let request = SignRequest {
                format: Some(Format::Pdf),
                level: if timestamper.is_some() {
                    Level::BT
                } else {
                    Level::BB
                },
                digest: DigestAlgorithm::Sha256,
                rsa_padding: RsaPadding::Pkcs1,
                signing_time: time::OffsetDateTime::now_utc().to_offset(crate::clock::VIETNAM),
                timestamper: timestamper.as_ref().map(|t| t as &dyn TimeStamper),
                pdf: PdfDetails {
                    reason: Some(reason),
                    ..PdfDetails::default()
                },
                xml_profile: None,
            };
            Ok::<_, crate::Error>(crate::sign::sign_document(&pdf, &*key, &request)?.bytes)
        })
        .await?;
        self.metrics().signature(Format::Pdf.name());
        Ok(bytes)
    }
}
