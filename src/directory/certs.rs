//! Which certificates sign for an agency: the directory records, per agency (edXML OrganId),
//! the identities of its signing certificates — the subject organization (`O`), the tax code
//! (subject `UID=MST:…`) or the certificate's SHA-256 fingerprint — and [`Directory::check_signer`]
//! tells whether a certificate may sign an envelope "From" that agency.
//!
//! Rule: when identities are recorded for the agency, the certificate must match one of them;
//! when none are, a certificate recorded for another agency is refused (an envelope from A
//! signed with B's certificate), and any other certificate passes (an agency not yet recorded).
//! Reasons name the organization and the fingerprint, never a tax code.

use openssl::nid::Nid;
use openssl::x509::X509Ref;

use super::{Directory, DirectoryError};
use crate::clock::now_rfc3339;
use crate::store::directory::AgencyCertRow;

/// How a certificate identity is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertIdentityKind {
    /// The subject organization (`O`), compared exactly.
    Organization,
    /// The tax code in the subject (`UID=MST:…`), digits compared.
    TaxCode,
    /// The SHA-256 of the certificate (DER), hex; `:` and case ignored.
    Fingerprint,
}

impl CertIdentityKind {
    /// `organization`, `tax_code` or `fingerprint` (as stored).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Organization => "organization",
            Self::TaxCode => "tax_code",
            Self::Fingerprint => "fingerprint",
        }
    }

    /// The stored form of `value` for this kind.
    pub fn normalize(self, value: &str) -> String {
        match self {
            Self::Organization => value.trim().to_string(),
            Self::TaxCode => value.trim().trim_start_matches("MST:").trim().to_string(),
            Self::Fingerprint => value
                .chars()
                .filter(|c| c.is_ascii_hexdigit())
                .map(|c| c.to_ascii_lowercase())
                .collect(),
        }
    }
}

/// What a signing certificate says about who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerFacts {
    /// Subject organizations (`O`).
    pub organizations: Vec<String>,
    /// Tax codes (`UID=MST:…`); never shown.
    pub tax_codes: Vec<String>,
    /// SHA-256 of the certificate, lowercase hex.
    pub fingerprint: String,
}

impl SignerFacts {
    /// Reads the facts of `cert`.
    pub fn of_certificate(cert: &X509Ref) -> Self {
        let texts = |nid: Nid| -> Vec<String> {
            cert.subject_name()
                .entries_by_nid(nid)
                .map(|e| e.data().to_string().unwrap_or_default())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let tax_codes = texts(Nid::USERID)
            .into_iter()
            .filter_map(|v| {
                let (kind, value) = v.split_once(':')?;
                (kind.trim() == "MST").then(|| CertIdentityKind::TaxCode.normalize(value))
            })
            .collect();
        let fingerprint = cert
            .to_der()
            .map(|der| hex::encode(openssl::sha::sha256(&der)))
            .unwrap_or_default();
        Self {
            organizations: texts(Nid::ORGANIZATIONNAME),
            tax_codes,
            fingerprint,
        }
    }

    /// The (kind, value) pairs a recorded identity can match.
    fn identities(&self) -> Vec<(String, String)> {
        let mut out = vec![(
            CertIdentityKind::Fingerprint.as_str().to_string(),
            self.fingerprint.clone(),
        )];
        for o in &self.organizations {
            out.push((CertIdentityKind::Organization.as_str().into(), o.clone()));
        }
        for t in &self.tax_codes {
            out.push((CertIdentityKind::TaxCode.as_str().into(), t.clone()));
        }
        out
    }

    /// `O=…, SHA-256 abcd…` for reasons (no tax code).
    pub fn describe(&self) -> String {
        let short: String = self.fingerprint.chars().take(16).collect();
        match self.organizations.first() {
            Some(o) => format!("O={o}, SHA-256 {short}…"),
            None => format!("SHA-256 {short}…"),
        }
    }
}

/// The verdict of [`Directory::check_signer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerBinding {
    /// The certificate matches an identity recorded for the agency.
    Matches,
    /// Nothing is recorded for the agency, nor for the certificate.
    Unrecorded,
    /// The certificate is not the agency's: it is recorded for these other agencies (may be
    /// empty when the agency has identities and none matches).
    Mismatch {
        /// The agencies the certificate is recorded for.
        recorded_for: Vec<String>,
    },
}

impl Directory {
    /// Records a certificate identity for `organ_id`.
    pub async fn bind_certificate(
        &self,
        organ_id: &str,
        kind: CertIdentityKind,
        value: &str,
    ) -> Result<(), DirectoryError> {
        let row = row(organ_id, kind, value)?;
        self.store.add_agency_cert(&row, &now_rfc3339()).await?;
        Ok(())
    }

    /// Removes a recorded certificate identity (`NotFound` when it was not recorded).
    pub async fn unbind_certificate(
        &self,
        organ_id: &str,
        kind: CertIdentityKind,
        value: &str,
    ) -> Result<(), DirectoryError> {
        let row = row(organ_id, kind, value)?;
        if self.store.remove_agency_cert(&row).await? {
            Ok(())
        } else {
            Err(DirectoryError::NotFound(format!(
                "no such {} recorded for {organ_id}",
                kind.as_str()
            )))
        }
    }

    /// The certificate identities recorded for `organ_id`.
    pub async fn certificate_identities(
        &self,
        organ_id: &str,
    ) -> Result<Vec<AgencyCertRow>, DirectoryError> {
        Ok(self.store.agency_certs(organ_id).await?)
    }

    /// Whether a certificate with `facts` may sign for `organ_id` (see the module doc).
    pub async fn check_signer(
        &self,
        organ_id: &str,
        facts: &SignerFacts,
    ) -> Result<SignerBinding, DirectoryError> {
        let ids = facts.identities();
        // one statement: the agency's identities and the other agencies' that match
        let rows = self.store.agency_certs_and_matches(organ_id, &ids).await?;
        let (recorded, matching): (Vec<_>, Vec<_>) =
            rows.into_iter().partition(|r| r.organ_id == organ_id);
        if recorded
            .iter()
            .any(|r| ids.iter().any(|(k, v)| *k == r.kind && *v == r.value))
        {
            return Ok(SignerBinding::Matches);
        }
        // in the order of the certificate's identities, each identity's agencies by id
        let mut others: Vec<String> = Vec::new();
        for (kind, value) in &ids {
            for r in matching
                .iter()
                .filter(|r| r.kind == *kind && r.value == *value)
            {
                if !others.contains(&r.organ_id) {
                    others.push(r.organ_id.clone());
                }
            }
        }
        if recorded.is_empty() && others.is_empty() {
            Ok(SignerBinding::Unrecorded)
        } else {
            Ok(SignerBinding::Mismatch {
                recorded_for: others,
            })
        }
    }
}

fn row(
    organ_id: &str,
    kind: CertIdentityKind,
    value: &str,
) -> Result<AgencyCertRow, DirectoryError> {
    let value = kind.normalize(value);
    let valid = match kind {
        CertIdentityKind::Fingerprint => value.len() == 64,
        CertIdentityKind::TaxCode => {
            !value.is_empty() && value.chars().all(|c| c.is_ascii_digit() || c == '-')
        }
        CertIdentityKind::Organization => !value.is_empty(),
    };
    if organ_id.trim().is_empty() || !valid {
        return Err(DirectoryError::Invalid(format!(
            "a {} for agency '{organ_id}' must be {}",
            kind.as_str(),
            match kind {
                CertIdentityKind::Fingerprint => "a SHA-256 (64 hex digits)",
                CertIdentityKind::TaxCode => "digits (and '-')",
                CertIdentityKind::Organization => "a non-empty name",
            }
        )));
    }
    Ok(AgencyCertRow {
        organ_id: organ_id.to_string(),
        kind: kind.as_str().into(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn facts(org: &str, fp: char) -> SignerFacts {
        SignerFacts {
            organizations: vec![org.into()],
            tax_codes: vec!["0100000001".into()],
            fingerprint: fp.to_string().repeat(64),
        }
    }

    #[tokio::test]
    async fn a_certificate_signs_only_for_its_agency() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&Store::sqlite_url(dir.path()))
            .await
            .expect("open");
        let d = Directory::new(store);
        let a = facts("UBND A", 'a');
        let b = facts("UBND B", 'b');
        assert_eq!(
            d.check_signer("A", &a).await.expect("check"),
            SignerBinding::Unrecorded
        );
        d.bind_certificate("A", CertIdentityKind::Organization, "UBND A")
            .await
            .expect("bind");
        d.bind_certificate("B", CertIdentityKind::Fingerprint, &"B".repeat(64))
            .await
            .expect("bind");
        assert_eq!(
            d.check_signer("A", &a).await.expect("check"),
            SignerBinding::Matches
        );
        assert_eq!(
            d.check_signer("B", &b).await.expect("check"),
            SignerBinding::Matches
        );
        // from A, signed with B's certificate; from C (unrecorded), signed with B's
        assert_eq!(
            d.check_signer("A", &b).await.expect("check"),
            SignerBinding::Mismatch {
                recorded_for: vec!["B".into()]
            }
        );
        assert_eq!(
            d.check_signer("C", &b).await.expect("check"),
            SignerBinding::Mismatch {
                recorded_for: vec!["B".into()]
            }
        );
        // a tax code binds by its digits; a bad fingerprint is refused
        d.bind_certificate("T", CertIdentityKind::TaxCode, "MST:0100000001")
            .await
            .expect("bind");
        let t = SignerFacts {
            organizations: vec![],
            tax_codes: vec!["0100000001".into()],
            fingerprint: "c".repeat(64),
        };
        assert_eq!(
            d.check_signer("T", &t).await.expect("check"),
            SignerBinding::Matches
        );
        assert!(d
            .bind_certificate("A", CertIdentityKind::Fingerprint, "abcd")
            .await
            .is_err());
        assert!(
            !b.describe().contains("0100000001"),
            "no tax code in reasons"
        );
        d.unbind_certificate("A", CertIdentityKind::Organization, "UBND A")
            .await
            .expect("unbind");
        assert!(d
            .certificate_identities("A")
            .await
            .expect("list")
            .is_empty());
    }
}
