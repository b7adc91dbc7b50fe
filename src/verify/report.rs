//! The validation report (CONTRACTS.md §3, `schemas/validation-report.v1.schema.json`).
//!
//! Indications and sub-indications carry the meanings of ETSI EN 319 102-1 §5.1.3.

use serde::Serialize;

/// The main verdict (ETSI EN 319 102-1 Table 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Indication {
    /// Every check passed.
    TotalPassed,
    /// Not enough information to decide (ordered between passed and failed).
    Indeterminate,
    /// A check failed for certain.
    TotalFailed,
}

/// Why a signature did not pass (ETSI EN 319 102-1 Table 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubIndication {
    /// The signed data's digest does not match.
    HashFailure,
    /// The signature value does not verify with the signer's key.
    SigCryptoFailure,
    /// The certificate was revoked before the best signature time.
    Revoked,
    /// Revoked, and no proof that the signature existed before the revocation.
    RevokedNoPoe,
    /// Outside the certificate's validity and no proof of existence within it.
    OutOfBoundsNoPoe,
    /// No chain to a trust anchor.
    NoCertificateChainFound,
    /// The chain does not satisfy the constraints (e.g. key usage).
    ChainConstraintsFailure,
    /// A weak algorithm with no proof of existence before it became weak.
    CryptoConstraintsFailureNoPoe,
    /// Revocation information could not be obtained now.
    TryLater,
    /// The signature or document format is wrong.
    FormatFailure,
    /// The signer's certificate is not in the signature.
    NoSigningCertificateFound,
    /// Time-stamps are out of order (a later archive/document time-stamp predates the
    /// signature time-stamp it protects).
    TimestampOrderFailure,
    /// A signature attribute fails the constraints (e.g. an invalid signature time-stamp).
    SigConstraintsFailure,
}

/// The report for one file.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Always 1 for this format.
    pub report_version: u32,
    /// The file's name as given.
    pub file: String,
    /// `pdf`, `cms` or `xml`.
    pub format: &'static str,
    /// The worst indication over all signatures.
    pub indication: Indication,
    /// The sub-indication of the worst signature.
    pub sub_indication: Option<SubIndication>,
    /// One entry per signature or document time-stamp.
    pub signatures: Vec<SignatureReport>,
}

impl Report {
    /// Builds the report and its overall verdict (the worst signature decides).
    pub fn new(file: String, format: &'static str, signatures: Vec<SignatureReport>) -> Self {
        let worst = signatures.iter().max_by_key(|s| s.indication);
        let (indication, sub_indication) = match worst {
            Some(s) => (s.indication, s.sub_indication),
            None => (
                Indication::Indeterminate,
                Some(SubIndication::FormatFailure),
            ),
        };
        Self {
            report_version: 1,
            file,
            format,
            indication,
            sub_indication,
            signatures,
        }
    }
}

/// `signature`, `document_timestamp` or `counter_signature`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureKind {
    /// An electronic signature or seal.
    Signature,
    /// A document time-stamp (PAdES ETSI.RFC3161).
    DocumentTimestamp,
    /// A CMS counter-signature (RFC 5652 §11.4) over another signature's value; `parent`
    /// names that signature.
    CounterSignature,
}

/// The verdict on one signature.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureReport {
    /// Field name (PDF) or a positional id.
    pub id: String,
    /// What kind of signature this is.
    pub kind: SignatureKind,
    /// For a counter-signature: the id of the signature it counter-signs.
    pub parent: Option<String>,
    /// The digest and the signature value are valid over what it signs.
    pub intact: bool,
    /// The verdict.
    pub indication: Indication,
    /// Why, when not passed.
    pub sub_indication: Option<SubIndication>,
    /// Who signed, when known.
    pub signer: Option<Signer>,
    /// The time the signer claims (PDF /M or signing-time), RFC 3339 UTC.
    pub claimed_signing_time: Option<String>,
    /// The earliest time the signature is proven to exist, RFC 3339 UTC.
    pub best_signature_time: String,
    /// The signature time-stamp, when present.
    pub timestamp: Option<TimestampReport>,
    /// The trust list whose anchor ends the chain.
    pub trust_list: Option<String>,
    /// The certificate path, signer first.
    pub chain: Vec<ChainEntry>,
    /// Revocation evidence used.
    pub revocation: Vec<RevocationEntry>,
    /// What the signature covers.
    pub coverage: Coverage,
    /// Whether changes after signing are allowed (`none`, `permitted`, `disallowed`).
    pub modification: Option<&'static str>,
    /// What changed after signing.
    pub changes: Vec<String>,
    /// Human-readable notes explaining the verdict.
    pub notes: Vec<String>,
}

/// The signer's identity.
#[derive(Debug, Clone, Serialize)]
pub struct Signer {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    /// Identifiers found in the subject (`CCCD`, `MST`, …).
    pub identifiers: Vec<Identifier>,
}

/// A typed identifier such as a tax code (`MST`) or citizen ID (`CCCD`).
#[derive(Debug, Clone, Serialize)]
pub struct Identifier {
    /// `MST`, `CCCD`, `CMND`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The value.
    pub value: String,
}

/// A time-stamp on the signature.
#[derive(Debug, Clone, Serialize)]
pub struct TimestampReport {
    /// The TSA's genTime, RFC 3339 UTC.
    pub gen_time: String,
    /// The TSA certificate's subject.
    pub tsa: String,
    /// Imprint, signature and TSA chain all valid (`indication` is TOTAL_PASSED).
    pub valid: bool,
    /// The time-stamp's own verdict: TOTAL_FAILED when its imprint or signature fails,
    /// INDETERMINATE when its TSA cannot be trusted or identified.
    pub indication: Indication,
    /// Why the time-stamp did not pass.
    pub sub_indication: Option<SubIndication>,
}

/// One certificate of the path.
#[derive(Debug, Clone, Serialize)]
pub struct ChainEntry {
    /// Subject DN.
    pub subject: String,
    /// Serial, hex.
    pub serial: String,
    /// End of validity, RFC 3339 UTC.
    pub not_after: String,
}

/// Revocation status of one certificate.
#[derive(Debug, Clone, Serialize)]
pub struct RevocationEntry {
    /// Serial of the certificate, hex.
    pub certificate: String,
    /// `ocsp` or `crl`.
    pub source: &'static str,
    /// `embedded` or `fetched`.
    pub origin: &'static str,
    /// `good`, `revoked` or `unknown`.
    pub status: &'static str,
    /// When the evidence was produced, RFC 3339 UTC.
    pub produced_at: Option<String>,
}

/// What part of the file a signature covers.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// The signature covers every byte of the file (except its own value).
    pub whole_file: bool,
    /// The PDF revision the signature covers (1-based), if PDF.
    pub revision: Option<usize>,
    /// The XML element the signature covers, if XML.
    pub element_path: Option<String>,
}
