//! The demo PKI generator (`signgate pki demo`, CONTRACTS.md §2).
//!
//! Builds a two-level RSA hierarchy (root CA → issuing CA) and the leaf certificates that
//! demos and tests sign with, as PKCS#12 files with the password `demo`, plus DER CRLs and an
//! OpenSSL CA database (`index.txt`) so `openssl ocsp -index … -port N` can answer for it.
//!
//! These are **test keys only**. Tests that need deliberately bad certificates (expired,
//! revoked, no signing key usage, RSA-1024, SHA-1, untrusted root) call [`DemoPki::issue_leaf`]
//! with a [`LeafSpec`] on a PKI freshly generated into a temporary folder: the CA private keys
//! are kept in memory only and never written out.
//!
//! Certificates are built with the `openssl` crate; CRLs with the `x509-cert` types (the
//! `openssl` crate cannot build CRLs), signed with the CA's OpenSSL key.

use std::path::{Path, PathBuf};

use der::asn1::{BitString, Ia5String, Null, OctetString, Uint};
use der::{Decode, Encode};
use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time, Asn1Type};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Extension, X509Name, X509NameBuilder, X509VerifyResult, X509};
use time::OffsetDateTime;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, CrlDistributionPoints, CrlNumber, CrlReason,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

use super::oid;
use crate::error::ErrorCode;
use crate::fsio::write_output;

/// The password of every PKCS#12 file in the demo PKI.
pub const DEMO_PASSWORD: &str = "demo";
/// The default base URL for CRL distribution points and AIA (CONTRACTS.md §2).
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8089/";

/// Generating the demo PKI failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// An OpenSSL operation (key generation, certificate signing, PKCS#12) failed.
    #[error("{what} failed: {reason}")]
    Crypto {
        /// What was being done.
        what: &'static str,
        /// OpenSSL's reason.
        reason: String,
    },
    /// A DER structure (CRL, extension) could not be encoded.
    #[error("DER encoding of {what} failed: {reason}")]
    Der {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's reason.
        reason: String,
    },
    /// The options are inconsistent (e.g. a base URL that is not http(s)).
    #[error("{0}")]
    Invalid(String),
    /// An output file could not be written.
    #[error(transparent)]
    Io(#[from] crate::fsio::IoError),
}

impl PkiError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Crypto { .. } | Self::Der { .. } => ErrorCode::Internal,
            Self::Invalid(_) => ErrorCode::Usage,
            Self::Io(e) => e.code(),
        }
    }
}

fn ossl(what: &'static str) -> impl Fn(openssl::error::ErrorStack) -> PkiError {
    move |e| PkiError::Crypto {
        what,
        reason: e.to_string(),
    }
}

fn der_err(what: &'static str) -> impl Fn(der::Error) -> PkiError {
    move |e| PkiError::Der {
        what,
        reason: e.to_string(),
    }
}

/// Options for [`generate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// Base URL for CRL distribution points and AIA, ending in `/` (a missing one is added).
    pub base_url: String,
    /// RSA modulus size of the root CA (default 3072).
    pub root_key_bits: u32,
    /// RSA modulus size of the issuing CA (default 3072).
    pub issuing_key_bits: u32,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.into(),
            root_key_bits: 3072,
            issuing_key_bits: 3072,
        }
    }
}

impl DemoOptions {
    /// Default options with another base URL (e.g. the port a test bound).
    pub fn with_base_url(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            ..Self::default()
        }
    }
}

/// A certificate authority of the demo PKI: its certificate and (in memory only) its key.
pub struct Authority {
    /// The CA certificate.
    pub certificate: X509,
    key: PKey<Private>,
    /// Where its CRL is published (`{base}crl/<name>.crl`).
    pub crl_url: String,
    crl_file: &'static str,
    crl_number: u64,
    revoked: Vec<(Vec<u8>, OffsetDateTime)>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("subject", &self.certificate.subject_name())
            .field("crl_url", &self.crl_url)
            .finish_non_exhaustive()
    }
}

/// Which CA signs a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Issuer {
    /// The issuing CA (the normal case).
    #[default]
    Issuing,
    /// The root CA directly.
    Root,
    /// A throwaway self-signed root that nobody trusts (its key is discarded).
    Untrusted,
}

/// The leaf's key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafKey {
    /// RSA with this modulus size (1024 only for "weak key" tests).
    Rsa(u32),
    /// ECDSA on P-256.
    EcP256,
}

/// The digest a CA signs a certificate with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertDigest {
    /// SHA-256 (normal).
    Sha256,
    /// SHA-1, only to test that weak algorithms are refused.
    Sha1,
}

impl CertDigest {
    fn message_digest(self) -> MessageDigest {
        match self {
            Self::Sha256 => MessageDigest::sha256(),
            Self::Sha1 => MessageDigest::sha1(),
        }
    }
}

/// What the leaf is for: decides key usage and extended key usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafProfile {
    /// Document signer: keyUsage digitalSignature + nonRepudiation (critical).
    Signer,
    /// Like a signer but with only keyEncipherment: must be refused for signing.
    NoSigningUsage,
    /// Time-stamp authority: digitalSignature, EKU timeStamping only (critical).
    Tsa,
    /// Delegated OCSP responder: EKU OCSPSigning and id-pkix-ocsp-nocheck.
    Ocsp,
    /// Gateway node for mutual TLS: serverAuth + clientAuth, SAN 127.0.0.1 and localhost.
    Node,
}

/// Everything that describes one leaf certificate; start from [`LeafSpec::new`].
///
/// Subjects of valid leaves from the issuing CA must be unique: `openssl ocsp -index`
/// refuses a database with two valid entries of the same name.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// Subject attributes in order, e.g. `(Nid::COMMONNAME, "UBND tỉnh Bắc Ninh")`. `C=VN` is
    /// prepended automatically.
    pub subject: Vec<(Nid, String)>,
    /// Key type.
    pub key: LeafKey,
    /// Usage profile.
    pub profile: LeafProfile,
    /// Signing CA.
    pub issuer: Issuer,
    /// Digest of the certificate signature (SHA-256; SHA-1 for weak-algorithm tests).
    pub digest: CertDigest,
    /// Start of validity (default: one hour ago).
    pub not_before: OffsetDateTime,
    /// End of validity (default: ten years from now).
    pub not_after: OffsetDateTime,
    /// Revoke the certificate at this time (index.txt `R` line and a CRL entry).
    pub revoked_at: Option<OffsetDateTime>,
    /// Friendly name in the PKCS#12 file.
    pub friendly_name: String,
}

impl LeafSpec {
    /// A valid RSA-2048 signer issued by the issuing CA, valid from an hour ago for ten years.
    pub fn new(common_name: &str) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            subject: vec![(Nid::COMMONNAME, common_name.to_string())],
            key: LeafKey::Rsa(2048),
            profile: LeafProfile::Signer,
            issuer: Issuer::Issuing,
            digest: CertDigest::Sha256,
            not_before: now - time::Duration::hours(1),
            not_after: years_after(now, 10),
            revoked_at: None,
            friendly_name: common_name.to_string(),
        }
    }

    /// Sets the subject attributes (`C=VN` is still prepended).
    pub fn with_subject(mut self, subject: Vec<(Nid, String)>) -> Self {
        self.subject = subject;
        self
    }

    /// Sets the key type.
    pub fn with_key(mut self, key: LeafKey) -> Self {
        self.key = key;
        self
    }

    /// Sets the usage profile.
    pub fn with_profile(mut self, profile: LeafProfile) -> Self {
        self.profile = profile;
        self
    }

    /// Sets the issuer.
    pub fn with_issuer(mut self, issuer: Issuer) -> Self {
        self.issuer = issuer;
        self
    }

    /// Sets the validity period.
    pub fn with_validity(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    /// An expired certificate: valid from 400 days ago until 30 days ago.
    pub fn expired(self) -> Self {
        let now = OffsetDateTime::now_utc();
        self.with_validity(
            now - time::Duration::days(400),
            now - time::Duration::days(30),
        )
    }

    /// A certificate valid only from 30 days from now.
    pub fn not_yet_valid(self) -> Self {
        let now = OffsetDateTime::now_utc();
        self.with_validity(
            now + time::Duration::days(30),
            now + time::Duration::days(400),
        )
    }

    /// Revoked at `at` (keyCompromise).
    pub fn revoked(mut self, at: OffsetDateTime) -> Self {
        self.revoked_at = Some(at);
        self
    }

    /// Signed by the issuing CA with SHA-1 (for weak-algorithm tests).
    pub fn sha1_issued(mut self) -> Self {
        self.digest = CertDigest::Sha1;
        self
    }
}

/// A leaf issued by [`DemoPki::issue_leaf`].
pub struct IssuedLeaf {
    /// The certificate.
    pub certificate: X509,
    /// Its private key.
    pub key: PKey<Private>,
    /// The PKCS#12 file written (password `demo`).
    pub p12_path: PathBuf,
}

impl std::fmt::Debug for IssuedLeaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedLeaf")
            .field("subject", &self.certificate.subject_name())
            .field("p12_path", &self.p12_path)
            .finish_non_exhaustive()
    }
}

/// One line of the OpenSSL CA database.
#[derive(Debug, Clone)]
struct IndexEntry {
    not_after: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
    serial: Vec<u8>,
    subject: String,
}

/// A generated demo PKI, still able to issue and revoke leaves (the CA keys live in memory).
#[derive(Debug)]
pub struct DemoPki {
    /// The output folder.
    pub dir: PathBuf,
    /// The base URL used in CRL distribution points and AIA (ends in `/`).
    pub base_url: String,
    /// The root CA.
    pub root: Authority,
    /// The issuing CA (signs every leaf except explicit root-issued ones).
    pub issuing: Authority,
    index: Vec<IndexEntry>,
}

/// Generates the demo PKI into `out` (created if missing) and returns it for further issuing.
///
/// Writes exactly the files of CONTRACTS.md §2: `root-ca.pem`, `issuing-ca.pem`,
/// `root-ca.crl`, `issuing-ca.crl`, `index.txt`, the PKCS#12 files, and `tsa.pem`/`tsa.key`,
/// `ocsp.pem`/`ocsp.key` (unencrypted PKCS#8 PEM keys, for `openssl ts`/`openssl ocsp`).
pub fn generate(out: &Path, opts: &DemoOptions) -> Result<DemoPki, PkiError> {
    let mut pki = DemoPki::new_cas(out, opts)?;
    pki.write_ca_files()?;

    let agency_subject = || {
        vec![
            (Nid::STATEORPROVINCENAME, "Tỉnh Bắc Ninh".to_string()),
            (
                Nid::ORGANIZATIONNAME,
                "Ủy ban nhân dân tỉnh Bắc Ninh".to_string(),
            ),
        ]
    };
    let with_cn = |mut s: Vec<(Nid, String)>, cn: &str| {
        s.push((Nid::COMMONNAME, cn.to_string()));
        s
    };

    let leaves: Vec<(&str, LeafSpec)> = vec![
        (
            "agency-signer.p12",
            LeafSpec::new("UBND tỉnh Bắc Ninh")
                .with_subject(with_cn(agency_subject(), "UBND tỉnh Bắc Ninh")),
        ),
        (
            "agency-signer-ec.p12",
            LeafSpec::new("UBND tỉnh Bắc Ninh (ECDSA)")
                .with_subject(with_cn(agency_subject(), "UBND tỉnh Bắc Ninh (ECDSA)"))
                .with_key(LeafKey::EcP256),
        ),
        (
            "official.p12",
            LeafSpec::new("Nguyễn Văn An").with_subject({
                let mut s = agency_subject();
                s.push((Nid::ORGANIZATIONALUNITNAME, "Văn phòng UBND tỉnh".into()));
                s.push((Nid::TITLE, "Chánh Văn phòng".into()));
                s.push((Nid::COMMONNAME, "Nguyễn Văn An".into()));
                s
            }),
        ),
        (
            "citizen.p12",
            LeafSpec::new("Trần Thị Bình").with_subject(vec![
                (Nid::STATEORPROVINCENAME, "Thành phố Hà Nội".into()),
                (Nid::USERID, "CCCD:001190012345".into()),
                (Nid::COMMONNAME, "Trần Thị Bình".into()),
            ]),
        ),
        (
            "organization.p12",
            LeafSpec::new("Công ty Cổ phần Dịch vụ Số Việt").with_subject(vec![
                (Nid::STATEORPROVINCENAME, "Thành phố Hà Nội".into()),
                (
                    Nid::ORGANIZATIONNAME,
                    "Công ty Cổ phần Dịch vụ Số Việt".into(),
                ),
                (Nid::USERID, "MST:0100686209".into()),
                (Nid::COMMONNAME, "Công ty Cổ phần Dịch vụ Số Việt".into()),
            ]),
        ),
        (
            "tsa.p12",
            LeafSpec::new("signgate demo TSA")
                .with_subject(vec![
                    (Nid::ORGANIZATIONNAME, "signgate demo".into()),
                    (Nid::COMMONNAME, "signgate demo TSA".into()),
                ])
                .with_profile(LeafProfile::Tsa),
        ),
        (
            "ocsp.p12",
            LeafSpec::new("signgate demo OCSP responder")
                .with_subject(vec![
                    (Nid::ORGANIZATIONNAME, "signgate demo".into()),
                    (Nid::COMMONNAME, "signgate demo OCSP responder".into()),
                ])
                .with_profile(LeafProfile::Ocsp),
        ),
        (
            "node-province.p12",
            node_spec(
                "Cổng signgate tỉnh Bắc Ninh",
                "Ủy ban nhân dân tỉnh Bắc Ninh",
            ),
        ),
        (
            "node-district.p12",
            node_spec(
                "Cổng signgate huyện Tiên Du",
                "Ủy ban nhân dân huyện Tiên Du",
            ),
        ),
        (
            "node-commune.p12",
            node_spec("Cổng signgate xã Phật Tích", "Ủy ban nhân dân xã Phật Tích"),
        ),
    ];

    for (file, spec) in leaves {
        let leaf = pki.issue_leaf(&spec, &out.join(file))?;
        let pem_name = match file {
            "tsa.p12" => Some("tsa"),
            "ocsp.p12" => Some("ocsp"),
            _ => None,
        };
        if let Some(stem) = pem_name {
            let cert_pem = leaf.certificate.to_pem().map_err(ossl("PEM encoding"))?;
            write_output(&out.join(format!("{stem}.pem")), &cert_pem)?;
            let key_pem = leaf
                .key
                .private_key_to_pem_pkcs8()
                .map_err(ossl("PEM encoding"))?;
            write_output(&out.join(format!("{stem}.key")), &key_pem)?;
        }
    }
    Ok(pki)
}

fn node_spec(cn: &str, org: &str) -> LeafSpec {
    LeafSpec::new(cn)
        .with_subject(vec![
            (Nid::ORGANIZATIONNAME, org.to_string()),
            (Nid::COMMONNAME, cn.to_string()),
        ])
        .with_profile(LeafProfile::Node)
}

impl DemoPki {
    fn new_cas(out: &Path, opts: &DemoOptions) -> Result<Self, PkiError> {
        let mut base_url = opts.base_url.trim().to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(PkiError::Invalid(format!(
                "base URL '{base_url}' must start with http:// or https://"
            )));
        }
        if !base_url.ends_with('/') {
            base_url.push('/');
        }
        std::fs::create_dir_all(out).map_err(|e| crate::fsio::IoError::Write {
            path: out.to_path_buf(),
            reason: e.to_string(),
        })?;
        let now = OffsetDateTime::now_utc();
        // CAs start two years back so that "expired" test leaves still lie inside them.
        let ca_from = now - time::Duration::days(730);
        let ca_to = years_after(ca_from, 20);

        let root_key = rsa_key(opts.root_key_bits)?;
        let root_name = name(&[
            (Nid::COUNTRYNAME, "VN"),
            (Nid::ORGANIZATIONNAME, "signgate demo"),
            (Nid::COMMONNAME, "signgate Demo Root CA (TEST ONLY)"),
        ])?;
        let root_cert = build_ca(&root_name, &root_key, None, ca_from, ca_to, None)?;

        let issuing_key = rsa_key(opts.issuing_key_bits)?;
        let issuing_name = name(&[
            (Nid::COUNTRYNAME, "VN"),
            (Nid::ORGANIZATIONNAME, "signgate demo"),
            (Nid::COMMONNAME, "signgate Demo Issuing CA (TEST ONLY)"),
        ])?;
        let root_crl_url = format!("{base_url}crl/root-ca.crl");
        let issuing_cert = build_ca(
            &issuing_name,
            &issuing_key,
            Some((&root_cert, &root_key)),
            ca_from,
            ca_to,
            Some(&root_crl_url),
        )?;

        Ok(Self {
            dir: out.to_path_buf(),
            root: Authority {
                certificate: root_cert,
                key: root_key,
                crl_url: root_crl_url,
                crl_file: "root-ca.crl",
                crl_number: 1,
                revoked: Vec::new(),
            },
            issuing: Authority {
                certificate: issuing_cert,
                key: issuing_key,
                crl_url: format!("{base_url}crl/issuing-ca.crl"),
                crl_file: "issuing-ca.crl",
                crl_number: 1,
                revoked: Vec::new(),
            },
            base_url,
            index: Vec::new(),
        })
    }

    fn write_ca_files(&mut self) -> Result<(), PkiError> {
        let root_pem = self
            .root
            .certificate
            .to_pem()
            .map_err(ossl("PEM encoding"))?;
        write_output(&self.dir.join("root-ca.pem"), &root_pem)?;
        let issuing_pem = self
            .issuing
            .certificate
            .to_pem()
            .map_err(ossl("PEM encoding"))?;
        write_output(&self.dir.join("issuing-ca.pem"), &issuing_pem)?;
        self.write_crl(Issuer::Root)?;
        self.write_crl(Issuer::Issuing)?;
        self.write_index()
    }

    /// Issues a leaf described by `spec`, writes it as PKCS#12 (password `demo`, AES-256-CBC,
    /// with the issuing CA in the chain) to `p12_path`, and records it in `index.txt`
    /// (and the CRL, when revoked).
    pub fn issue_leaf(&mut self, spec: &LeafSpec, p12_path: &Path) -> Result<IssuedLeaf, PkiError> {
        let key = match spec.key {
            LeafKey::Rsa(bits) => rsa_key(bits)?,
            LeafKey::EcP256 => {
                let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)
                    .map_err(ossl("EC key generation"))?;
                let ec = EcKey::generate(&group).map_err(ossl("EC key generation"))?;
                PKey::from_ec_key(ec).map_err(ossl("EC key generation"))?
            }
        };
        let mut subject = vec![(Nid::COUNTRYNAME, "VN")];
        subject.extend(spec.subject.iter().map(|(n, v)| (*n, v.as_str())));
        let subject = name(&subject)?;
        let subject_line = oneline(&subject);
        if spec.issuer == Issuer::Issuing
            && self
                .index
                .iter()
                .any(|e| e.revoked_at.is_none() && e.subject == subject_line)
        {
            return Err(PkiError::Invalid(format!(
                "subject {subject_line} is already issued and valid; `openssl ocsp -index` needs unique subjects"
            )));
        }

        // An untrusted issuer: a throwaway self-signed CA with the same name as our root.
        let throwaway;
        let (ca_cert, ca_key, crl_url) = match spec.issuer {
            Issuer::Issuing => (
                &self.issuing.certificate,
                &self.issuing.key,
                Some(&self.issuing.crl_url),
            ),
            Issuer::Root => (
                &self.root.certificate,
                &self.root.key,
                Some(&self.root.crl_url),
            ),
            Issuer::Untrusted => {
                let key = rsa_key(2048)?;
                let n = name(&[
                    (Nid::ORGANIZATIONNAME, "signgate demo"),
                    (Nid::COMMONNAME, "Untrusted Root CA (TEST ONLY)"),
                ])?;
                let now = OffsetDateTime::now_utc();
                let cert = build_ca(
                    &n,
                    &key,
                    None,
                    now - time::Duration::days(730),
                    years_after(now, 18),
                    None,
                )?;
                throwaway = (cert, key);
                (&throwaway.0, &throwaway.1, None)
            }
        };

        let serial = random_serial()?;
        let mut b = X509::builder().map_err(ossl("certificate building"))?;
        b.set_version(2).map_err(ossl("certificate building"))?;
        b.set_serial_number(&*serial.to_asn1_integer().map_err(ossl("serial"))?)
            .map_err(ossl("certificate building"))?;
        b.set_subject_name(&subject)
            .map_err(ossl("certificate building"))?;
        b.set_issuer_name(ca_cert.subject_name())
            .map_err(ossl("certificate building"))?;
        b.set_pubkey(&key).map_err(ossl("certificate building"))?;
        b.set_not_before(&*asn1_time(spec.not_before)?)
            .map_err(ossl("certificate building"))?;
        b.set_not_after(&*asn1_time(spec.not_after)?)
            .map_err(ossl("certificate building"))?;

        let e = ossl("certificate extension");
        b.append_extension(BasicConstraints::new().critical().build().map_err(&e)?)
            .map_err(&e)?;
        let mut ku = KeyUsage::new();
        ku.critical();
        match spec.profile {
            LeafProfile::Signer => ku.digital_signature().non_repudiation(),
            LeafProfile::NoSigningUsage => ku.key_encipherment(),
            LeafProfile::Tsa | LeafProfile::Ocsp => ku.digital_signature(),
            LeafProfile::Node => match spec.key {
                LeafKey::Rsa(_) => ku.digital_signature().key_encipherment(),
                LeafKey::EcP256 => ku.digital_signature(),
            },
        };
        b.append_extension(ku.build().map_err(&e)?).map_err(&e)?;
        match spec.profile {
            LeafProfile::Tsa => {
                b.append_extension(
                    ExtendedKeyUsage::new()
                        .critical()
                        .time_stamping()
                        .build()
                        .map_err(&e)?,
                )
                .map_err(&e)?;
            }
            LeafProfile::Ocsp => {
                b.append_extension(
                    ExtendedKeyUsage::new()
                        .other("OCSPSigning")
                        .build()
                        .map_err(&e)?,
                )
                .map_err(&e)?;
                let null = Null.to_der().map_err(der_err("ocsp-nocheck"))?;
                b.append_extension(raw_extension(&oid::OCSP_NOCHECK, false, &null)?)
                    .map_err(&e)?;
            }
            LeafProfile::Node => {
                b.append_extension(
                    ExtendedKeyUsage::new()
                        .server_auth()
                        .client_auth()
                        .build()
                        .map_err(&e)?,
                )
                .map_err(&e)?;
                let ctx = b.x509v3_context(Some(ca_cert), None);
                let san = SubjectAlternativeName::new()
                    .ip("127.0.0.1")
                    .dns("localhost")
                    .build(&ctx)
                    .map_err(&e)?;
                b.append_extension(san).map_err(&e)?;
            }
            LeafProfile::Signer | LeafProfile::NoSigningUsage => {}
        }
        let ctx = b.x509v3_context(Some(ca_cert), None);
        let ski = SubjectKeyIdentifier::new().build(&ctx).map_err(&e)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&ctx)
            .map_err(&e)?;
        b.append_extension(ski).map_err(&e)?;
        b.append_extension(aki).map_err(&e)?;
        if let Some(url) = crl_url {
            b.append_extension(crl_dp_extension(url)?).map_err(&e)?;
            b.append_extension(aia_extension(&self.base_url)?)
                .map_err(&e)?;
        }
        b.sign(ca_key, spec.digest.message_digest())
            .map_err(ossl("certificate signing"))?;
        let certificate = b.build();

        // PKCS#12 with the issuing CA (and root, for root-issued leaves) in the chain.
        let mut chain = Stack::new().map_err(ossl("PKCS#12"))?;
        chain.push(ca_cert.clone()).map_err(ossl("PKCS#12"))?;
        let p12 = Pkcs12::builder()
            .name(&spec.friendly_name)
            .pkey(&key)
            .cert(&certificate)
            .ca(chain)
            .build2(DEMO_PASSWORD)
            .map_err(ossl("PKCS#12"))?;
        write_output(p12_path, &p12.to_der().map_err(ossl("PKCS#12"))?)?;

        if spec.issuer != Issuer::Untrusted {
            let serial_bytes = serial.to_vec();
            let ca = if spec.issuer == Issuer::Root {
                &mut self.root
            } else {
                &mut self.issuing
            };
            if let Some(at) = spec.revoked_at {
                ca.revoked.push((serial_bytes.clone(), at));
                self.write_crl(spec.issuer)?;
            }
            if spec.issuer == Issuer::Issuing {
                self.index.push(IndexEntry {
                    not_after: spec.not_after,
                    revoked_at: spec.revoked_at,
                    serial: serial_bytes,
                    subject: subject_line,
                });
                self.write_index()?;
            }
        }
        Ok(IssuedLeaf {
            certificate,
            key,
            p12_path: p12_path.to_path_buf(),
        })
    }

    /// Revokes an already issued leaf (keyCompromise, at `at`): its `index.txt` line becomes
    /// `R` and its CA's CRL is rewritten with it, as `openssl ca -revoke` would. A running
    /// `openssl ocsp -index` reads the index only at start: restart it afterwards.
    pub fn revoke(&mut self, leaf: &X509, at: OffsetDateTime) -> Result<(), PkiError> {
        let issued_by = |ca: &Authority| ca.certificate.issued(leaf) == X509VerifyResult::OK;
        let issuer = if issued_by(&self.issuing) {
            Issuer::Issuing
        } else if issued_by(&self.root) {
            Issuer::Root
        } else {
            return Err(PkiError::Invalid(
                "the certificate was not issued by this PKI".into(),
            ));
        };
        let serial = leaf
            .serial_number()
            .to_bn()
            .map_err(ossl("serial"))?
            .to_vec();
        let ca = match issuer {
            Issuer::Root => &mut self.root,
            _ => &mut self.issuing,
        };
        if !ca.revoked.iter().any(|(s, _)| *s == serial) {
            ca.revoked.push((serial.clone(), at));
        }
        self.write_crl(issuer)?;
        if let Some(entry) = self.index.iter_mut().find(|e| e.serial == serial) {
            entry.revoked_at = Some(at);
            self.write_index()?;
        }
        Ok(())
    }

    /// Rewrites the CRL of `issuer` (Root or Issuing) with its current revocations.
    fn write_crl(&mut self, issuer: Issuer) -> Result<(), PkiError> {
        let ca = match issuer {
            Issuer::Root => &mut self.root,
            Issuer::Issuing => &mut self.issuing,
            Issuer::Untrusted => return Ok(()),
        };
        let now = OffsetDateTime::now_utc();
        let der = build_crl(ca, now, years_after(now, 10))?;
        ca.crl_number += 1;
        write_output(&self.dir.join(ca.crl_file), &der)?;
        Ok(())
    }

    fn write_index(&self) -> Result<(), PkiError> {
        let mut text = String::new();
        for e in &self.index {
            let (flag, rev) = match e.revoked_at {
                Some(at) => ("R", index_time(at)),
                None => ("V", String::new()),
            };
            text.push_str(&format!(
                "{flag}\t{}\t{rev}\t{}\tunknown\t{}\n",
                index_time(e.not_after),
                hex::encode_upper(&e.serial),
                e.subject
            ));
        }
        write_output(&self.dir.join("index.txt"), text.as_bytes())?;
        Ok(())
    }
}

/// The same calendar time `years` later (29 February becomes 28 February).
fn years_after(t: OffsetDateTime, years: i32) -> OffsetDateTime {
    let year = t.year() + years;
    t.replace_year(year)
        .or_else(|_| t.replace_day(28).and_then(|t| t.replace_year(year)))
        .unwrap_or(t + time::Duration::days(365 * i64::from(years)))
}

fn rsa_key(bits: u32) -> Result<PKey<Private>, PkiError> {
    let rsa = Rsa::generate(bits).map_err(ossl("RSA key generation"))?;
    PKey::from_rsa(rsa).map_err(ossl("RSA key generation"))
}

/// A positive random serial of 127 bits (RFC 5280 §4.1.2.2 allows up to 20 octets).
fn random_serial() -> Result<BigNum, PkiError> {
    let mut bn = BigNum::new().map_err(ossl("serial"))?;
    bn.rand(127, MsbOption::ONE, false)
        .map_err(ossl("serial"))?;
    Ok(bn)
}

fn name(attrs: &[(Nid, &str)]) -> Result<X509Name, PkiError> {
    let e = ossl("subject name");
    let mut b = X509NameBuilder::new().map_err(&e)?;
    for (nid, value) in attrs {
        let ty = if *nid == Nid::COUNTRYNAME {
            Asn1Type::PRINTABLESTRING
        } else {
            Asn1Type::UTF8STRING
        };
        b.append_entry_by_nid_with_type(*nid, value, ty)
            .map_err(&e)?;
    }
    Ok(b.build())
}

/// Builds a CA certificate; self-signed when `parent` is `None` (then pathlen is open).
fn build_ca(
    subject: &X509Name,
    key: &PKey<Private>,
    parent: Option<(&X509, &PKey<Private>)>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    crl_url: Option<&str>,
) -> Result<X509, PkiError> {
    let e = ossl("CA certificate");
    let mut b = X509::builder().map_err(&e)?;
    b.set_version(2).map_err(&e)?;
    b.set_serial_number(&*random_serial()?.to_asn1_integer().map_err(&e)?)
        .map_err(&e)?;
    b.set_subject_name(subject).map_err(&e)?;
    b.set_issuer_name(parent.map_or(subject, |(c, _)| c.subject_name()))
        .map_err(&e)?;
    b.set_pubkey(key).map_err(&e)?;
    b.set_not_before(&*asn1_time(not_before)?).map_err(&e)?;
    b.set_not_after(&*asn1_time(not_after)?).map_err(&e)?;
    let mut bc = BasicConstraints::new();
    bc.critical().ca();
    if parent.is_some() {
        bc.pathlen(0);
    }
    b.append_extension(bc.build().map_err(&e)?).map_err(&e)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .map_err(&e)?,
    )
    .map_err(&e)?;
    let ski = {
        let ctx = b.x509v3_context(parent.map(|(c, _)| c.as_ref()), None);
        SubjectKeyIdentifier::new().build(&ctx).map_err(&e)?
    };
    b.append_extension(ski).map_err(&e)?;
    let aki = {
        // Self-signed: the context's issuer is the certificate itself (its SKI was just added).
        let ctx = b.x509v3_context(parent.map(|(c, _)| c.as_ref()), None);
        AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&ctx)
            .map_err(&e)?
    };
    b.append_extension(aki).map_err(&e)?;
    if let Some(url) = crl_url {
        b.append_extension(crl_dp_extension(url)?).map_err(&e)?;
    }
    let signer = parent.map_or(key, |(_, k)| k);
    b.sign(signer, MessageDigest::sha256()).map_err(&e)?;
    Ok(b.build())
}

fn raw_extension(
    id: &const_oid::ObjectIdentifier,
    critical: bool,
    value_der: &[u8],
) -> Result<X509Extension, PkiError> {
    let e = ossl("certificate extension");
    let obj = Asn1Object::from_str(&id.to_string()).map_err(&e)?;
    let value = Asn1OctetString::new_from_bytes(value_der).map_err(&e)?;
    X509Extension::new_from_der(&obj, critical, &value).map_err(&e)
}

fn uri(url: &str) -> Result<GeneralName, PkiError> {
    Ok(GeneralName::UniformResourceIdentifier(
        Ia5String::new(url).map_err(der_err("URI"))?,
    ))
}

/// cRLDistributionPoints with one full-name URI (RFC 5280 §4.2.1.13).
fn crl_dp_extension(url: &str) -> Result<X509Extension, PkiError> {
    let dps = CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![uri(url)?])),
        reasons: None,
        crl_issuer: None,
    }]);
    let der = dps.to_der().map_err(der_err("cRLDistributionPoints"))?;
    raw_extension(
        &const_oid::db::rfc5280::ID_CE_CRL_DISTRIBUTION_POINTS,
        false,
        &der,
    )
}

/// authorityInfoAccess with OCSP and caIssuers (RFC 5280 §4.2.2.1).
fn aia_extension(base_url: &str) -> Result<X509Extension, PkiError> {
    let aia = AuthorityInfoAccessSyntax(vec![
        AccessDescription {
            access_method: const_oid::db::rfc5280::ID_AD_OCSP,
            access_location: uri(&format!("{base_url}ocsp"))?,
        },
        AccessDescription {
            access_method: const_oid::db::rfc5280::ID_AD_CA_ISSUERS,
            access_location: uri(&format!("{base_url}certs/issuing-ca.cer"))?,
        },
    ]);
    let der = aia.to_der().map_err(der_err("authorityInfoAccess"))?;
    raw_extension(
        &const_oid::db::rfc5280::ID_PE_AUTHORITY_INFO_ACCESS,
        false,
        &der,
    )
}

fn asn1_time(t: OffsetDateTime) -> Result<Asn1Time, PkiError> {
    Asn1Time::from_unix(t.unix_timestamp() as _).map_err(ossl("time"))
}

/// X.509 `Time`: UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5).
fn x509_time(t: OffsetDateTime) -> Result<Time, PkiError> {
    let secs = u64::try_from(t.unix_timestamp())
        .map_err(|_| PkiError::Invalid("time before 1970".into()))?;
    let d = std::time::Duration::from_secs(secs);
    match der::asn1::UtcTime::from_unix_duration(d) {
        Ok(u) => Ok(Time::UtcTime(u)),
        Err(_) => Ok(Time::GeneralTime(
            der::asn1::GeneralizedTime::from_unix_duration(d).map_err(der_err("time"))?,
        )),
    }
}

/// Builds and signs a v2 CRL (RFC 5280 §5) with AKI and CRL number, sha256WithRSAEncryption.
fn build_crl(
    ca: &Authority,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<Vec<u8>, PkiError> {
    let cert_der = ca.certificate.to_der().map_err(ossl("CA certificate"))?;
    let cert = x509_cert::Certificate::from_der(&cert_der).map_err(der_err("CA certificate"))?;
    let issuer: Name = cert.tbs_certificate.subject.clone();
    let ski = ca
        .certificate
        .subject_key_id()
        .map(|id| id.as_slice().to_vec())
        .ok_or_else(|| PkiError::Invalid("CA certificate has no subject key identifier".into()))?;
    let aki = x509_cert::ext::pkix::AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(ski).map_err(der_err("AKI"))?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    let number = CrlNumber(Uint::new(&ca.crl_number.to_be_bytes()).map_err(der_err("CRL number"))?);
    let ext = |id, value: Vec<u8>| -> Result<Extension, PkiError> {
        Ok(Extension {
            extn_id: id,
            critical: false,
            extn_value: OctetString::new(value).map_err(der_err("CRL extension"))?,
        })
    };
    let mut revoked = Vec::new();
    for (serial, at) in &ca.revoked {
        let reason = CrlReason::KeyCompromise
            .to_der()
            .map_err(der_err("CRL reason"))?;
        revoked.push(RevokedCert {
            serial_number: SerialNumber::new(serial).map_err(der_err("serial"))?,
            revocation_date: x509_time(*at)?,
            crl_entry_extensions: Some(vec![ext(
                const_oid::db::rfc5280::ID_CE_CRL_REASONS,
                reason,
            )?]),
        });
    }
    let sig_alg = spki::AlgorithmIdentifierOwned {
        oid: oid::SHA256_WITH_RSA,
        parameters: Some(der::Any::encode_from(&Null).map_err(der_err("NULL"))?),
    };
    let tbs = TbsCertList {
        version: x509_cert::Version::V2,
        signature: sig_alg.clone(),
        issuer,
        this_update: x509_time(this_update)?,
        next_update: Some(x509_time(next_update)?),
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: Some(vec![
            ext(
                const_oid::db::rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
                aki.to_der().map_err(der_err("AKI"))?,
            )?,
            ext(
                const_oid::db::rfc5280::ID_CE_CRL_NUMBER,
                number.to_der().map_err(der_err("CRL number"))?,
            )?,
        ]),
    };
    let tbs_der = tbs.to_der().map_err(der_err("TBSCertList"))?;
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &ca.key)
        .map_err(ossl("CRL signing"))?;
    signer.update(&tbs_der).map_err(ossl("CRL signing"))?;
    let signature = signer.sign_to_vec().map_err(ossl("CRL signing"))?;
    let crl = CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: sig_alg,
        signature: BitString::from_bytes(&signature).map_err(der_err("CRL signature"))?,
    };
    crl.to_der().map_err(der_err("CRL"))
}

/// `index.txt` time: `YYMMDDHHMMSSZ` through 2049, `YYYYMMDDHHMMSSZ` after (as OpenSSL writes).
fn index_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let year = t.year();
    let rest = format!(
        "{:02}{:02}{:02}{:02}{:02}Z",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if year < 2050 {
        format!("{:02}{rest}", year % 100)
    } else {
        format!("{year:04}{rest}")
    }
}

/// The `X509_NAME_oneline` form OpenSSL writes into `index.txt` (`/C=VN/O=…/CN=…`), with
/// non-ASCII bytes escaped as `\xHH`.
fn oneline(n: &openssl::x509::X509NameRef) -> String {
    let mut out = String::new();
    for entry in n.entries() {
        let short = entry.object().nid().short_name().unwrap_or("UNDEF");
        out.push('/');
        out.push_str(short);
        out.push('=');
        for &byte in entry.data().as_slice() {
            if byte.is_ascii_graphic() || byte == b' ' {
                if byte == b'/' {
                    out.push('\\');
                }
                out.push(byte as char);
            } else {
                out.push_str(&format!("\\x{byte:02X}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
