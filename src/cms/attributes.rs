//! CAdES/ESS attribute values (RFC 5035) that the `cms` crate does not define.

use der::asn1::OctetString;
use der::Sequence;
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::name::GeneralNames;
use x509_cert::serial_number::SerialNumber;

/// `IssuerSerial` (RFC 5035 §4).
///
/// ```text
/// IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber CertificateSerialNumber }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct IssuerSerial {
    /// The issuer's name as a directoryName.
    pub issuer: GeneralNames,
    /// The certificate's serial number.
    pub serial_number: SerialNumber,
}

/// `ESSCertIDv2` (RFC 5035 §4).
///
/// ```text
/// ESSCertIDv2 ::= SEQUENCE {
///     hashAlgorithm AlgorithmIdentifier DEFAULT {algorithm id-sha256},
///     certHash Hash, issuerSerial IssuerSerial OPTIONAL }
/// ```
/// `hash_algorithm` is `None` for SHA-256, which DER requires to be omitted.
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct EssCertIdV2 {
    /// Hash algorithm, absent for the SHA-256 default.
    pub hash_algorithm: Option<AlgorithmIdentifierOwned>,
    /// Hash of the whole DER certificate.
    pub cert_hash: OctetString,
    /// The certificate's issuer and serial number.
    pub issuer_serial: Option<IssuerSerial>,
}

/// `SigningCertificateV2` (RFC 5035 §3), without the optional policies.
///
/// ```text
/// SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, policies ... OPTIONAL }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct SigningCertificateV2 {
    /// The signer's certificate first.
    pub certs: Vec<EssCertIdV2>,
}
