//! Revocation status of the certificates of a path: OCSP (RFC 6960) and CRLs (RFC 5280),
//! from evidence embedded in the signature or document first, then fetched online through
//! a [`Fetcher`] the caller supplies (none means offline).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use openssl::asn1::Asn1TimeRef;
use openssl::hash::MessageDigest;
use openssl::ocsp::{OcspCertId, OcspCertStatus, OcspFlag, OcspResponse, OcspResponseStatus};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{CrlStatus, X509Crl, X509};
use time::OffsetDateTime;

use super::report::RevocationEntry;

/// Why a fetch gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The fetch policy forbids this URL (scheme, or an address outside the public internet
    /// that is not allowed); nothing was sent.
    #[error("{url}: not fetched: {reason}")]
    Refused {
        /// The URL the certificate names.
        url: String,
        /// Why, e.g. "127.0.0.1 is a loopback address".
        reason: String,
    },
    /// The answer is larger than the fetcher accepts.
    #[error("{url}: the answer is larger than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The size limit in bytes.
        limit: u64,
    },
    /// No answer: name resolution, connection, time-out, an HTTP error status, a local
    /// publication point that does not serve the path.
    #[error("{url}: {detail}")]
    Failed {
        /// The URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
}

/// Fetches revocation data and certificates over the network, with bounded time.
pub trait Fetcher: Send + Sync {
    /// POSTs `body` of `content_type` to `url` and returns the answer's body.
    fn post(&self, url: &str, content_type: &str, body: &[u8]) -> Result<Vec<u8>, FetchError>;
    /// GETs `url`.
    fn get(&self, url: &str) -> Result<Vec<u8>, FetchError>;
    /// Whether missing issuer certificates may be fetched from the AIA caIssuers URLs of a
    /// certificate whose path does not yet reach a trust anchor.
    fn chases_issuers(&self) -> bool {
        true
    }
    /// An OCSP response fetched and checked earlier under `key` (responder URL and certificate),
    /// if the fetcher keeps them.
    fn cached_ocsp(&self, _key: &str) -> Option<Vec<u8>> {
        None
    }
    /// Keeps a checked OCSP response under `key`.
    fn remember_ocsp(&self, _key: &str, _response: &[u8]) {}
}

/// A shared fetcher (e.g. one per routing node, reused by every request) is a fetcher too.
impl<F: Fetcher + ?Sized> Fetcher for std::sync::Arc<F> {
    fn post(&self, url: &str, content_type: &str, body: &[u8]) -> Result<Vec<u8>, FetchError> {
        (**self).post(url, content_type, body)
    }
    fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        (**self).get(url)
    }
    fn chases_issuers(&self) -> bool {
        (**self).chases_issuers()
    }
    fn cached_ocsp(&self, key: &str) -> Option<Vec<u8>> {
        (**self).cached_ocsp(key)
    }
    fn remember_ocsp(&self, key: &str, response: &[u8]) {
        (**self).remember_ocsp(key, response)
    }
}

/// Plain HTTP fetcher with a per-request timeout, a response size cap and, for the life of
/// the fetcher, a cache of CRLs, CA certificates and checked OCSP responses, so one run (or
/// one gateway process) does not fetch the same status once per signature. A fetched CRL or
/// certificate is reused for [`GET_REUSE`] at most, so a long-lived fetcher (a routing node
/// keeps one) sees a new CRL soon; OCSP responses are reused for 5 minutes (see [`check`]).
#[derive(Debug)]
pub struct HttpFetcher {
    timeout: Duration,
    cache: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
    fetched: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Vec<u8>)>>,
}

/// How long a fetched CRL or certificate is reused by one [`HttpFetcher`].
pub const GET_REUSE: Duration = Duration::from_secs(300);

impl HttpFetcher {
    /// A fetcher whose every request gives up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            cache: Default::default(),
            fetched: Default::default(),
        }
    }
}

/// Reads the body of `resp` (from `url`), refusing one longer than `limit` bytes.
pub fn read_capped(url: &str, resp: ureq::Response, limit: u64) -> Result<Vec<u8>, FetchError> {
    let mut body = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(resp.into_reader(), limit.saturating_add(1)),
        &mut body,
    )
    .map_err(|e| FetchError::Failed {
        url: url.to_string(),
        detail: e.to_string(),
    })?;
    if body.len() as u64 > limit {
        return Err(FetchError::TooLarge {
            url: url.to_string(),
            limit,
        });
    }
    Ok(body)
}

/// The [`FetchError`] of a failed ureq request to `url`.
pub fn request_failed(url: &str, e: ureq::Error) -> FetchError {
    FetchError::Failed {
        url: url.to_string(),
        detail: e.to_string(),
    }
}

/// Largest OCSP response or CRL accepted (a national CA's CRL can be several MB).
pub const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

impl Fetcher for HttpFetcher {
    fn post(&self, url: &str, content_type: &str, body: &[u8]) -> Result<Vec<u8>, FetchError> {
        let resp = ureq::post(url)
            .timeout(self.timeout)
            .set("Content-Type", content_type)
            .send_bytes(body)
            .map_err(|e| request_failed(url, e))?;
        read_capped(url, resp, MAX_RESPONSE_BYTES)
    }

    fn cached_ocsp(&self, key: &str) -> Option<Vec<u8>> {
        self.cache.lock().ok()?.get(key).cloned()
    }

    fn remember_ocsp(&self, key: &str, response: &[u8]) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key.to_string(), response.to_vec());
        }
    }

    fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let hit = self.fetched.lock().ok().and_then(|c| {
            c.get(url)
                .filter(|(at, _)| at.elapsed() <= GET_REUSE)
                .map(|(_, body)| body.clone())
        });
        if let Some(hit) = hit {
            return Ok(hit);
        }
        let resp = ureq::get(url)
            .timeout(self.timeout)
            .call()
            .map_err(|e| request_failed(url, e))?;
        let body = read_capped(url, resp, MAX_RESPONSE_BYTES)?;
        if let Ok(mut cache) = self.fetched.lock() {
            cache.insert(url.to_string(), (std::time::Instant::now(), body.clone()));
        }
        Ok(body)
    }
}

/// Revocation data found inside the signature or document (PAdES DSS, CMS `crls`,
/// Adobe's revocation-info-archival attribute).
#[derive(Debug, Default, Clone)]
pub struct Evidence {
    /// DER OCSPResponse values.
    pub ocsp: Vec<Vec<u8>>,
    /// DER CertificateList values.
    pub crls: Vec<Vec<u8>>,
}

impl Evidence {
    /// Adds everything from `other`.
    pub fn extend(&mut self, other: &Evidence) {
        self.ocsp.extend(other.ocsp.iter().cloned());
        self.crls.extend(other.crls.iter().cloned());
    }
}

/// The conclusion about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Not revoked per fresh evidence.
    Good,
    /// Revoked at that time.
    Revoked(OffsetDateTime),
    /// No usable evidence (why).
    Unknown(String),
}

/// Determines the status of `cert` (issued by `issuer`) at `at`, embedded evidence first.
/// `path` is the validated path above `cert` (issuer up to the anchor).
pub fn check(
    cert: &X509,
    issuer: &X509,
    path: &[X509],
    evidence: &Evidence,
    fetcher: Option<&dyn Fetcher>,
    at: OffsetDateTime,
) -> Checked {
    let serial = serial_hex(cert);
    let mut reasons = Vec::new();
    for der in &evidence.ocsp {
        match ocsp_status(cert, issuer, path, der, at) {
            Ok((status, produced)) => {
                return Checked::found(&serial, "ocsp", "embedded", status, produced, der.clone())
            }
            Err(e) => reasons.push(e.to_string()),
        }
    }
    for der in &evidence.crls {
        match crl_status(cert, issuer, der, at) {
            Ok((status, produced)) => {
                return Checked::found(&serial, "crl", "embedded", status, produced, der.clone())
            }
            Err(e) => reasons.push(e.to_string()),
        }
    }
    let Some(fetcher) = fetcher else {
        reasons.push("offline: no revocation data embedded for this certificate".into());
        return Checked::unknown(reasons);
    };
    for url in ocsp_urls(cert) {
        let key = format!("ocsp {url} {serial} {}", serial_hex(issuer));
        if let Some(der) = fetcher.cached_ocsp(&key) {
            // Reused while the response is valid: until its nextUpdate (ocsp_status refuses it
            // after that), or for OCSP_REUSE_SECS when it names none.
            if let Ok(found) = ocsp_found(cert, issuer, path, &der, at) {
                let produced = found.this_update;
                if found.next_update.is_some() || (at - produced).whole_seconds() <= OCSP_REUSE_SECS
                {
                    return Checked::found(&serial, "ocsp", "fetched", found.status, produced, der);
                }
            }
        }
        let answer = ocsp_request(cert, issuer).and_then(|(req, nonce)| {
            let der = fetcher
                .post(&url, "application/ocsp-request", &req)
                .map_err(EvidenceRejected::Fetch)?;
            // A responder that echoes a nonce must echo ours (replay protection); one that
            // answers from pre-produced responses may omit it (RFC 8954 §4).
            match response_nonce(&der) {
                Some(echoed) if echoed != nonce => Err(EvidenceRejected::NonceMismatch),
                _ => Ok(der),
            }
        });
        match answer {
            Ok(der) => match ocsp_status(cert, issuer, path, &der, at) {
                Ok((status, produced)) => {
                    fetcher.remember_ocsp(&key, &der);
                    return Checked::found(
                        &serial,
                        "ocsp",
                        "fetched",
                        status,
                        produced,
                        der.clone(),
                    );
                }
                Err(e) => reasons.push(format!("OCSP: {e}")),
            },
            Err(e) => reasons.push(format!("OCSP: {e}")),
        }
    }
    for url in crl_urls(cert) {
        match fetcher.get(&url).map_err(EvidenceRejected::Fetch) {
            Ok(der) => match crl_status(cert, issuer, &der, at) {
                Ok((status, produced)) => {
                    return Checked::found(&serial, "crl", "fetched", status, produced, der.clone())
                }
                Err(e) => reasons.push(format!("CRL: {e}")),
            },
            Err(e) => reasons.push(format!("CRL: {e}")),
        }
    }
    if reasons.is_empty() {
        reasons.push("the certificate names no OCSP responder or CRL".into());
    }
    Checked::unknown(reasons)
}

/// The outcome of [`check`]: the status, its report entry, and the evidence that decided it
/// (so `extend` can embed exactly what was used).
pub struct Checked {
    /// The conclusion.
    pub status: Status,
    /// The report entry, when evidence was found.
    pub entry: Option<RevocationEntry>,
    /// The OCSP response or CRL used.
    pub evidence: Evidence,
}

impl Checked {
    fn found(
        serial: &str,
        source: &'static str,
        origin: &'static str,
        status: Status,
        produced: OffsetDateTime,
        der: Vec<u8>,
    ) -> Self {
        let entry = Some(entry(serial, source, origin, &status, produced));
        let evidence = match source {
            "ocsp" => Evidence {
                ocsp: vec![der],
                crls: Vec::new(),
            },
            _ => Evidence {
                ocsp: Vec::new(),
                crls: vec![der],
            },
        };
        Self {
            status,
            entry,
            evidence,
        }
    }

    fn unknown(reasons: Vec<String>) -> Self {
        Self {
            status: Status::Unknown(reasons.join("; ")),
            entry: None,
            evidence: Evidence::default(),
        }
    }
}

fn entry(
    serial: &str,
    source: &'static str,
    origin: &'static str,
    status: &Status,
    produced: OffsetDateTime,
) -> RevocationEntry {
    RevocationEntry {
        certificate: serial.to_string(),
        source,
        origin,
        status: match status {
            Status::Good => "good",
            Status::Revoked(_) => "revoked",
            Status::Unknown(_) => "unknown",
        },
        produced_at: Some(crate::clock::rfc3339(produced)),
    }
}

/// Why an OCSP response or CRL does not decide a certificate's status (the texts are the
/// report's reasons).
#[derive(Debug, Clone, thiserror::Error)]
pub enum EvidenceRejected {
    /// The bytes are not an OCSPResponse.
    #[error("not an OCSP response")]
    NotOcsp,
    /// The responder answered an error status (RFC 6960 §4.2.1).
    #[error("responder answered status {0}")]
    ResponderStatus(i32),
    /// The response has no SingleResponse for this certificate.
    #[error("the response does not cover this certificate")]
    NotCovered,
    /// The response's signature or its responder does not verify.
    #[error("the OCSP response's signature or responder is not valid")]
    OcspSignature,
    /// The echoed nonce is not the request's.
    #[error("the OCSP response's nonce does not match the request")]
    NonceMismatch,
    /// A time field cannot be read.
    #[error("{0} unreadable")]
    TimeUnreadable(&'static str),
    /// The OCSP response's or CRL's nextUpdate is before the validation time.
    #[error("the {0} is stale (nextUpdate passed)")]
    Stale(&'static str),
    /// The bytes are not a CRL.
    #[error("not a CRL")]
    NotCrl,
    /// The CRL's issuer is not the certificate's issuer.
    #[error("the CRL is from another issuer")]
    CrlIssuer,
    /// The CRL's signature does not verify with the issuer's key.
    #[error("the CRL's signature is not valid")]
    CrlSignature,
    /// A structure cannot be re-read to check the CRL's scope.
    #[error("the {0} cannot be read for the CRL's scope")]
    ScopeUnreadable(&'static str),
    /// The CRL's issuer may not sign CRLs.
    #[error("the CRL issuer's key usage does not allow cRLSign")]
    NoCrlSign,
    /// The CRL does not cover this kind of certificate or every reason.
    #[error("the CRL covers {0}")]
    Partial(&'static str),
    /// Indirect CRLs are not used.
    #[error("indirect CRLs are not used")]
    Indirect,
    /// A distribution point named relative to the CRL issuer is not used.
    #[error("a distribution point relative to the CRL issuer is not used")]
    RelativeName,
    /// The CRL's distribution point is not the certificate's.
    #[error("the CRL is for another distribution point than the certificate's")]
    OtherPoint,
    /// Delta CRLs are not used.
    #[error("delta CRLs are not used")]
    Delta,
    /// The CRL has a critical extension that is not processed.
    #[error("the CRL has an unrecognised critical extension")]
    CriticalExtension,
    /// OpenSSL failed while reading or checking.
    #[error("{0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    /// The OCSP request cannot be encoded.
    #[error("{0}")]
    Encoding(#[from] der::Error),
    /// The fetch gave no answer.
    #[error("{0}")]
    Fetch(FetchError),
}

/// How long a fetched OCSP response is reused for the same certificate (seconds).
const OCSP_REUSE_SECS: i64 = 300;

/// Clock skew tolerated between responders and the validation time.
const SKEW_SECS: i64 = 300;

/// id-pkix-ocsp-nonce (RFC 6960 §4.4.1, RFC 8954).
const OCSP_NONCE: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

/// A DER OCSP request for `cert` (SHA-1 CertID, as RFC 6960 §4.1.1 responders expect) with a
/// random 32-byte nonce (RFC 8954), and the DER of that nonce extension's value.
pub fn ocsp_request(cert: &X509, issuer: &X509) -> Result<(Vec<u8>, Vec<u8>), EvidenceRejected> {
    use der::{Decode, Encode};
    let issuer_cert = x509_cert::Certificate::from_der(&issuer.to_der()?)?;
    let subject = x509_cert::Certificate::from_der(&cert.to_der()?)?;
    let name = issuer_cert.tbs_certificate.subject.to_der()?;
    let key = issuer_cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let octets = |b: Vec<u8>| der::asn1::OctetString::new(b);
    let cert_id = x509_ocsp::CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned {
            oid: const_oid::ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
            parameters: Some(der::Any::from(der::asn1::Null)),
        },
        issuer_name_hash: octets(openssl::sha::sha1(&name).to_vec())?,
        issuer_key_hash: octets(openssl::sha::sha1(key).to_vec())?,
        serial_number: subject.tbs_certificate.serial_number.clone(),
    };
    let mut nonce = [0u8; 32];
    openssl::rand::rand_bytes(&mut nonce)?;
    let nonce_value = octets(nonce.to_vec())?.to_der()?;
    let request = x509_ocsp::OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: vec![x509_ocsp::Request {
                req_cert: cert_id,
                single_request_extensions: None,
            }],
            request_extensions: Some(vec![x509_cert::ext::Extension {
                extn_id: OCSP_NONCE,
                critical: false,
                extn_value: octets(nonce_value.clone())?,
            }]),
        },
        optional_signature: None,
    };
    Ok((request.to_der()?, nonce_value))
}

/// The nonce extension value a response carries, if any.
fn response_nonce(response: &[u8]) -> Option<Vec<u8>> {
    use der::Decode;
    let resp = x509_ocsp::OcspResponse::from_der(response).ok()?;
    let basic =
        x509_ocsp::BasicOcspResponse::from_der(resp.response_bytes?.response.as_bytes()).ok()?;
    basic
        .tbs_response_data
        .response_extensions?
        .into_iter()
        .find(|e| e.extn_id == OCSP_NONCE)
        .map(|e| e.extn_value.as_bytes().to_vec())
}

/// What a checked OCSP response says about one certificate, before the validation time is
/// applied: its status, thisUpdate and nextUpdate.
#[derive(Debug, Clone)]
struct OcspFinding {
    status: Status,
    this_update: OffsetDateTime,
    next_update: Option<OffsetDateTime>,
}

/// Findings kept before the memo is emptied and starts again.
const OCSP_MEMO_CAPACITY: usize = 4096;

/// Responses already parsed and verified, by [`ocsp_memo_key`], with when they were: a node
/// reuses one OCSP response for every envelope of a signer for minutes, and parsing it (its
/// responder certificate included) and checking its signature again each time cost more than
/// the envelope's own signature check. A finding is reused for [`OCSP_REUSE_SECS`] of wall
/// time at most (the responder's certificate is checked at the time of the check).
type OcspMemo = HashMap<[u8; 32], (std::time::Instant, OcspFinding)>;

fn ocsp_memo() -> &'static Mutex<OcspMemo> {
    static MEMO: OnceLock<Mutex<OcspMemo>> = OnceLock::new();
    MEMO.get_or_init(Default::default)
}

/// SHA-256 over the response and the DER of the certificate, its issuer and the path the
/// responder must chain to: every input of [`ocsp_finding`].
fn ocsp_memo_key(cert: &X509, issuer: &X509, path: &[X509], der: &[u8]) -> Option<[u8; 32]> {
    let mut h = openssl::sha::Sha256::new();
    h.update(&(der.len() as u64).to_be_bytes());
    h.update(der);
    for c in [cert, issuer].into_iter().chain(path) {
        h.update(&c.digest(MessageDigest::sha256()).ok()?);
    }
    Some(h.finish())
}

/// The status of `cert` in the OCSP response `der` at `at`, with the response's thisUpdate.
fn ocsp_status(
    cert: &X509,
    issuer: &X509,
    path: &[X509],
    der: &[u8],
    at: OffsetDateTime,
) -> Result<(Status, OffsetDateTime), EvidenceRejected> {
    ocsp_found(cert, issuer, path, der, at).map(|f| (f.status, f.this_update))
}

/// [`ocsp_status`] with the response's nextUpdate.
fn ocsp_found(
    cert: &X509,
    issuer: &X509,
    path: &[X509],
    der: &[u8],
    at: OffsetDateTime,
) -> Result<OcspFinding, EvidenceRejected> {
    let key = ocsp_memo_key(cert, issuer, path, der);
    let reuse = Duration::from_secs(OCSP_REUSE_SECS as u64);
    let memo = key.and_then(|k| {
        let memo = ocsp_memo().lock().ok()?;
        memo.get(&k)
            .filter(|(when, _)| when.elapsed() <= reuse)
            .map(|(_, f)| f.clone())
    });
    let finding = match memo {
        Some(f) => f,
        None => {
            let f = ocsp_finding(cert, issuer, path, der)?;
            if let (Some(k), Ok(mut memo)) = (key, ocsp_memo().lock()) {
                if memo.len() >= OCSP_MEMO_CAPACITY {
                    memo.clear();
                }
                memo.insert(k, (std::time::Instant::now(), f.clone()));
            }
            f
        }
    };
    if let Some(next) = finding.next_update {
        if next.unix_timestamp() + SKEW_SECS < at.unix_timestamp() {
            return Err(EvidenceRejected::Stale("OCSP response"));
        }
    }
    Ok(finding)
}

/// Parses the OCSP response `der` and checks it is a valid answer about `cert` (issued by
/// `issuer`) from a responder chaining to `path`.
fn ocsp_finding(
    cert: &X509,
    issuer: &X509,
    path: &[X509],
    der: &[u8],
) -> Result<OcspFinding, EvidenceRejected> {
    let resp = OcspResponse::from_der(der).map_err(|_| EvidenceRejected::NotOcsp)?;
    if resp.status() != OcspResponseStatus::SUCCESSFUL {
        return Err(EvidenceRejected::ResponderStatus(resp.status().as_raw()));
    }
    let basic = resp.basic()?;
    let id = OcspCertId::from_cert(MessageDigest::sha1(), cert, issuer)?;
    let status = basic.find_status(&id).ok_or(EvidenceRejected::NotCovered)?;
    // OpenSSL's default checks: the signer is the issuer, or a delegate the issuer certified
    // with id-kp-OCSPSigning (RFC 6960 §4.2.2.2), chaining to the already validated path.
    let mut store = X509StoreBuilder::new()?;
    for c in path {
        store.add_cert(c.clone())?;
    }
    let store = store.build();
    let mut certs = Stack::new()?;
    certs.push(issuer.clone())?;
    basic
        .verify(&certs, &store, OcspFlag::empty())
        .map_err(|_| EvidenceRejected::OcspSignature)?;
    let this_update =
        generalized(status.this_update).ok_or(EvidenceRejected::TimeUnreadable("thisUpdate"))?;
    let next_update = status.next_update().and_then(generalized);
    let result = match status.status {
        s if s == OcspCertStatus::GOOD => Status::Good,
        s if s == OcspCertStatus::REVOKED => {
            let when = status
                .revocation_time
                .and_then(generalized)
                .ok_or(EvidenceRejected::TimeUnreadable("revocationTime"))?;
            Status::Revoked(when)
        }
        _ => Status::Unknown("the responder does not know the certificate".into()),
    };
    Ok(OcspFinding {
        status: result,
        this_update,
        next_update,
    })
}

fn crl_status(
    cert: &X509,
    issuer: &X509,
    der: &[u8],
    at: OffsetDateTime,
) -> Result<(Status, OffsetDateTime), EvidenceRejected> {
    let crl = X509Crl::from_der(der)
        .or_else(|_| X509Crl::from_pem(der))
        .map_err(|_| EvidenceRejected::NotCrl)?;
    // Names compare after RFC 5280 §7.1 normalisation (string type, case, spaces), as OpenSSL
    // compares them when it chains certificates.
    if crl.issuer_name().try_cmp(issuer.subject_name()).ok() != Some(std::cmp::Ordering::Equal) {
        return Err(EvidenceRejected::CrlIssuer);
    }
    let key = issuer.public_key()?;
    if !crl.verify(&key).unwrap_or(false) {
        return Err(EvidenceRejected::CrlSignature);
    }
    crl_scope(cert, issuer, &crl)?;
    let this_update =
        asn1_time(crl.last_update()).ok_or(EvidenceRejected::TimeUnreadable("thisUpdate"))?;
    if let Some(next) = crl.next_update().and_then(asn1_time) {
        if next.unix_timestamp() + SKEW_SECS < at.unix_timestamp() {
            return Err(EvidenceRejected::Stale("CRL"));
        }
    }
    let status = match crl.get_by_cert(cert) {
        CrlStatus::NotRevoked => Status::Good,
        CrlStatus::Revoked(r) | CrlStatus::RemoveFromCrl(r) => Status::Revoked(
            asn1_time(r.revocation_date())
                .ok_or(EvidenceRejected::TimeUnreadable("revocation date"))?,
        ),
    };
    Ok((status, this_update))
}

/// Checks that `crl` may decide the status of `cert` (RFC 5280 §6.3.3): its issuer may sign
/// CRLs (keyUsage cRLSign), it is a complete CRL (not a delta), its issuing distribution point
/// covers `cert` (kind of certificate, every reason, the certificate's distribution point) and
/// it has no critical extension left unprocessed. A CRL outside these is not used, so the
/// status stays unknown rather than "good" on the word of a CRL that does not cover the
/// certificate.
fn crl_scope(cert: &X509, issuer: &X509, crl: &X509Crl) -> Result<(), EvidenceRejected> {
    use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
    let unreadable = EvidenceRejected::ScopeUnreadable;
    let (cert_der, issuer_der, crl_der) = (
        cert.to_der().map_err(|_| unreadable("certificate"))?,
        issuer.to_der().map_err(|_| unreadable("issuer"))?,
        crl.to_der().map_err(|_| unreadable("CRL"))?,
    );
    let (_, cert) =
        x509_parser::parse_x509_certificate(&cert_der).map_err(|_| unreadable("certificate"))?;
    let (_, issuer) =
        x509_parser::parse_x509_certificate(&issuer_der).map_err(|_| unreadable("issuer"))?;
    let (_, crl) = x509_parser::parse_x509_crl(&crl_der).map_err(|_| unreadable("CRL"))?;
    if let Ok(Some(ku)) = issuer.key_usage() {
        if !ku.value.crl_sign() {
            return Err(EvidenceRejected::NoCrlSign);
        }
    }
    // The names of the certificate's distribution points; without the extension, the CRL
    // issuer is the certificate's issuer (RFC 5280 §6.3.3).
    let cert_points: Vec<GeneralName> =
        match cert
            .tbs_certificate
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::CRLDistributionPoints(points) => Some(points),
                _ => None,
            }) {
            Some(points) => points
                .points
                .iter()
                .flat_map(|p| match &p.distribution_point {
                    Some(DistributionPointName::FullName(names)) => names.clone(),
                    _ => p.crl_issuer.clone().unwrap_or_default(),
                })
                .collect(),
            None => vec![GeneralName::DirectoryName(cert.issuer().clone())],
        };
    for ext in crl.tbs_cert_list.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::IssuingDistributionPoint(idp) => {
                if idp.only_contains_attribute_certs {
                    return Err(EvidenceRejected::Partial("attribute certificates only"));
                }
                if idp.only_contains_user_certs && cert.is_ca() {
                    return Err(EvidenceRejected::Partial("end-entity certificates only"));
                }
                if idp.only_contains_ca_certs && !cert.is_ca() {
                    return Err(EvidenceRejected::Partial("CA certificates only"));
                }
                if idp.only_some_reasons.is_some() {
                    return Err(EvidenceRejected::Partial("only some revocation reasons"));
                }
                if idp.indirect_crl {
                    return Err(EvidenceRejected::Indirect);
                }
                match &idp.distribution_point {
                    // x509-parser 0.16 reads a nameRelativeToCRLIssuer as no name at all.
                    None if idp_names_a_point(ext.value) => {
                        return Err(EvidenceRejected::RelativeName);
                    }
                    None => {}
                    Some(DistributionPointName::FullName(names))
                        if !names.iter().any(|n| cert_points.contains(n)) =>
                    {
                        return Err(EvidenceRejected::OtherPoint);
                    }
                    Some(DistributionPointName::FullName(_)) => {}
                    Some(DistributionPointName::NameRelativeToCRLIssuer(_)) => {
                        return Err(EvidenceRejected::RelativeName);
                    }
                }
            }
            _ if ext.oid.to_id_string() == "2.5.29.27" => {
                return Err(EvidenceRejected::Delta);
            }
            ParsedExtension::CRLNumber(_) | ParsedExtension::AuthorityKeyIdentifier(_) => {}
            _ if ext.critical => {
                return Err(EvidenceRejected::CriticalExtension);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether the DER IssuingDistributionPoint `value` starts with a distributionPoint ([0]).
fn idp_names_a_point(value: &[u8]) -> bool {
    let content = match value {
        [0x30, len, rest @ ..] if *len < 0x80 => rest,
        [0x30, len, rest @ ..] => rest.get(usize::from(len & 0x7f)..).unwrap_or_default(),
        _ => return false,
    };
    content.first() == Some(&0xa0)
}

fn ocsp_urls(cert: &X509) -> Vec<String> {
    cert.ocsp_responders()
        .map(|s| s.iter().map(|u| u.to_string()).collect())
        .unwrap_or_default()
}

fn crl_urls(cert: &X509) -> Vec<String> {
    let Some(points) = cert.crl_distribution_points() else {
        return Vec::new();
    };
    points
        .iter()
        .filter_map(|p| p.distpoint())
        .filter_map(|d| d.fullname())
        .flat_map(|names| {
            names
                .iter()
                .filter_map(|n| n.uri().map(String::from))
                .collect::<Vec<_>>()
        })
        .filter(|u| u.starts_with("http://"))
        .collect()
}

fn serial_hex(cert: &X509) -> String {
    cert.serial_number()
        .to_bn()
        .and_then(|b| b.to_hex_str().map(|s| s.to_lowercase()))
        .unwrap_or_default()
}

/// Converts an ASN.1 time to `OffsetDateTime`.
pub(crate) fn asn1_time(t: &Asn1TimeRef) -> Option<OffsetDateTime> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(t).ok()?;
    OffsetDateTime::from_unix_timestamp(d.days as i64 * 86_400 + d.secs as i64).ok()
}

fn generalized(t: &openssl::asn1::Asn1GeneralizedTimeRef) -> Option<OffsetDateTime> {
    // Printed as "Nov 26 06:02:02 2026 GMT" by OpenSSL.
    let text = t.to_string();
    let format = time::macros::format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
    );
    time::PrimitiveDateTime::parse(&text, &format)
        .ok()
        .map(|p| p.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::idp_names_a_point;

    #[test]
    fn idp_distribution_point_is_seen_in_either_form() {
        // IDP { distributionPoint [0] { nameRelativeToCRLIssuer [1] { CN=x } } }
        let relative = [
            0x30, 0x13, 0xa0, 0x11, 0xa1, 0x0f, 0x30, 0x0d, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c,
            0x01, b'x', 0, 0, 0, 0, 0,
        ];
        assert!(idp_names_a_point(&relative));
        // IDP { onlyContainsUserCerts [1] TRUE }
        assert!(!idp_names_a_point(&[0x30, 0x03, 0x81, 0x01, 0xff]));
        // Long-form length.
        let mut long = vec![0x30, 0x81, 0x80, 0xa0, 0x7e];
        long.resize(0x83, 0);
        assert!(idp_names_a_point(&long));
        assert!(!idp_names_a_point(&[]));
        assert!(!idp_names_a_point(&[0x30, 0x82]));
    }
}
