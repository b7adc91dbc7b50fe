//! An OCSP responder (RFC 6960) over an OpenSSL CA database (`index.txt`), signing through a
//! [`KeySource`] so the responder key can live in an HSM. No HTTP here: bytes in, bytes out.

use std::collections::HashMap;
use std::sync::Arc;

use der::asn1::{BitString, GeneralizedTime, OctetString};
use der::{Decode, Encode};
use openssl::x509::X509;
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};

use crate::keys::KeySource;
use crate::pki::alg::{DigestAlgorithm, RsaPadding, SignatureScheme};

/// id-pkix-ocsp-nonce (RFC 6960 §4.4.1).
const NONCE: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// id-sha1, the CertID hash most clients use (RFC 6960 §4.1.1).
const SHA1: const_oid::ObjectIdentifier = const_oid::ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

/// The status of one certificate in the CA database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseStatus {
    /// Valid (`V`).
    Valid,
    /// Revoked (`R`) at that time.
    Revoked(OffsetDateTime),
}

/// Certificate statuses by serial number, read from an OpenSSL `index.txt`.
#[derive(Debug, Clone, Default)]
pub struct CaDatabase {
    by_serial: HashMap<Vec<u8>, DatabaseStatus>,
}

impl CaDatabase {
    /// Parses `index.txt`: tab-separated status, expiry, revocation date, serial (hex), file, subject.
    pub fn parse(text: &str) -> Self {
        let mut by_serial = HashMap::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split('\t').collect();
            if fields.len() < 4 {
                continue;
            }
            let Ok(serial) = hex::decode(pad_even(fields[3])) else {
                continue;
            };
            let serial = strip_leading_zeros(&serial).to_vec();
            let status = match fields[0] {
                "V" => DatabaseStatus::Valid,
                "R" => match parse_index_time(fields[2].split(',').next().unwrap_or("")) {
                    Some(t) => DatabaseStatus::Revoked(t),
                    None => continue,
                },
                _ => continue,
            };
            by_serial.insert(serial, status);
        }
        Self { by_serial }
    }

    /// The status of the certificate with this serial (big-endian bytes), if known.
    pub fn status(&self, serial: &[u8]) -> Option<DatabaseStatus> {
        self.by_serial.get(strip_leading_zeros(serial)).copied()
    }
}

fn pad_even(s: &str) -> String {
    if s.len() % 2 == 1 {
        format!("0{s}")
    } else {
        s.to_string()
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b
        .iter()
        .position(|&x| x != 0)
        .unwrap_or(b.len().saturating_sub(1));
    &b[first..]
}

/// `YYMMDDHHMMSSZ` (or `YYYYMMDDHHMMSSZ`) as in `index.txt`.
fn parse_index_time(s: &str) -> Option<OffsetDateTime> {
    let digits = s.strip_suffix('Z')?;
    let (year, rest) = match digits.len() {
        12 => {
            let yy: i32 = digits[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        14 => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let n = |r: std::ops::Range<usize>| rest.get(r).and_then(|v| v.parse::<u8>().ok());
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(n(0..2)?).ok()?, n(2..4)?)
            .ok()?;
    let clock = time::Time::from_hms(n(4..6)?, n(6..8)?, n(8..10)?).ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_utc())
}

/// Answers OCSP requests for the certificates one CA issued.
pub struct OcspResponder {
    ca_name_hashes: Vec<(const_oid::ObjectIdentifier, Vec<u8>)>,
    ca_key_hashes: Vec<(const_oid::ObjectIdentifier, Vec<u8>)>,
    key: Arc<dyn KeySource>,
    responder_cert: Certificate,
    database: CaDatabase,
}

/// Setting up the responder failed.
#[derive(Debug, thiserror::Error)]
#[error("OCSP responder: {0}")]
pub struct ResponderError(String);

impl OcspResponder {
    /// A responder for certificates issued by `ca`, signing with `key` (the CA itself or a
    /// delegated responder with id-kp-OCSPSigning), answering from `database`.
    pub fn new(
        ca: &X509,
        key: Arc<dyn KeySource>,
        database: CaDatabase,
    ) -> Result<Self, ResponderError> {
        let fail = |e: &dyn std::fmt::Display| ResponderError(e.to_string());
        let ca_der = ca.to_der().map_err(|e| fail(&e))?;
        let ca = Certificate::from_der(&ca_der).map_err(|e| fail(&e))?;
        let responder_cert =
            Certificate::from_der(&key.certificate().to_der().map_err(|e| fail(&e))?)
                .map_err(|e| fail(&e))?;
        let name = ca.tbs_certificate.subject.to_der().map_err(|e| fail(&e))?;
        let spk = ca
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec();
        let hashes = |data: &[u8]| {
            vec![
                (SHA1, openssl::sha::sha1(data).to_vec()),
                (
                    DigestAlgorithm::Sha256.oid(),
                    DigestAlgorithm::Sha256.digest(data),
                ),
            ]
        };
        Ok(Self {
            ca_name_hashes: hashes(&name),
            ca_key_hashes: hashes(&spk),
            key,
            responder_cert,
            database,
        })
    }

    /// Answers one DER `OCSPRequest` with a DER `OCSPResponse` produced at `now`.
    /// Malformed requests get `malformedRequest`; it never fails.
    pub fn respond(&self, request: &[u8], now: OffsetDateTime) -> Vec<u8> {
        let Ok(req) = OcspRequest::from_der(request) else {
            return OcspResponse::malformed_request()
                .to_der()
                .unwrap_or_default();
        };
        match self.build(&req, now) {
            Ok(der) => der,
            Err(_) => OcspResponse::internal_error().to_der().unwrap_or_default(),
        }
    }

    fn build(&self, req: &OcspRequest, now: OffsetDateTime) -> Result<Vec<u8>, der::Error> {
        let produced = ocsp_time(now)?;
        let responses = req
            .tbs_request
            .request_list
            .iter()
            .take(32)
            .map(|r| self.single(&r.req_cert, produced))
            .collect();
        let nonce = req
            .tbs_request
            .request_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == NONCE)
            .cloned();
        let spk = self
            .responder_cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        let data = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(OctetString::new(openssl::sha::sha1(spk).to_vec())?),
            produced_at: produced,
            responses,
            response_extensions: nonce.map(|n| vec![n]),
        };
        let tbs = data.to_der()?;
        let scheme = SignatureScheme::for_key(
            self.key.algorithm(),
            DigestAlgorithm::Sha256,
            RsaPadding::Pkcs1,
        );
        let signature = self
            .key
            .sign_message(scheme, &tbs)
            .map_err(|_| der::Error::from(der::ErrorKind::Failed))?;
        let basic = BasicOcspResponse {
            tbs_response_data: data,
            signature_algorithm: scheme.identifier(),
            signature: BitString::from_bytes(&signature)?,
            certs: Some(vec![self.responder_cert.clone()]),
        };
        OcspResponse::successful(basic)?.to_der()
    }

    fn single(&self, id: &CertId, now: OcspGeneralizedTime) -> SingleResponse {
        let ours = self.ca_name_hashes.iter().any(|(alg, h)| {
            *alg == id.hash_algorithm.oid && h.as_slice() == id.issuer_name_hash.as_bytes()
        }) && self.ca_key_hashes.iter().any(|(alg, h)| {
            *alg == id.hash_algorithm.oid && h.as_slice() == id.issuer_key_hash.as_bytes()
        });
        let status = match ours
            .then(|| self.database.status(id.serial_number.as_bytes()))
            .flatten()
        {
            Some(DatabaseStatus::Valid) => CertStatus::good(),
            Some(DatabaseStatus::Revoked(at)) => match ocsp_time(at) {
                Ok(t) => CertStatus::revoked(RevokedInfo {
                    revocation_time: t,
                    revocation_reason: None,
                }),
                Err(_) => CertStatus::unknown(),
            },
            None => CertStatus::unknown(),
        };
        SingleResponse {
            cert_id: id.clone(),
            cert_status: status,
            this_update: now,
            next_update: None,
            single_extensions: None,
        }
    }
}

fn ocsp_time(t: OffsetDateTime) -> Result<OcspGeneralizedTime, der::Error> {
    let secs = u64::try_from(t.unix_timestamp())
        .map_err(|_| der::Error::from(der::ErrorKind::DateTime))?;
    Ok(OcspGeneralizedTime(GeneralizedTime::from_unix_duration(
        std::time::Duration::from_secs(secs),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lines_parse() {
        let db = CaDatabase::parse(
            "V\t360101000000Z\t\t0A1B\tunknown\t/CN=a\nR\t360101000000Z\t250701093000Z,keyCompromise\t00FF\tunknown\t/CN=b\n",
        );
        assert_eq!(db.status(&[0x0a, 0x1b]), Some(DatabaseStatus::Valid));
        let revoked = db.status(&[0x00, 0xff]).unwrap();
        assert_eq!(
            revoked,
            DatabaseStatus::Revoked(time::macros::datetime!(2025-07-01 09:30:00 UTC))
        );
        assert_eq!(db.status(&[0x01]), None);
    }
}
