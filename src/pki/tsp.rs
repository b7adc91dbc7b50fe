//! RFC 3161 time-stamp client: build a request, send it over HTTP, check the answer.

use std::io::Read;
use std::time::Duration;

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::asn1::{BitString, Int, OctetString};
use der::{Decode, Encode, Sequence};
use x509_tsp::{MessageImprint, TimeStampReq, TspVersion, TstInfo};

use super::alg::DigestAlgorithm;
use super::oid;

use crate::code::ErrorCode;

/// Obtaining a time-stamp token failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TspError {
    /// The TSA could not be reached.
    #[error("time-stamp authority {url} unreachable: {reason}")]
    Unavailable {
        /// The TSA's URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The caller passed an imprint whose length does not fit the digest algorithm.
    #[error("message imprint is {got} bytes, the digest algorithm needs {expected}")]
    InvalidImprint {
        /// Bytes the algorithm produces.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The TSA answered with something other than a granted, matching token.
    #[error("time-stamp authority {url} gave an unusable answer: {reason}")]
    BadResponse {
        /// The TSA's URL.
        url: String,
        /// Why.
        reason: String,
    },
}

impl TspError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unavailable { .. } => ErrorCode::TsaUnavailable,
            Self::BadResponse { .. } => ErrorCode::TsaBadResponse,
            Self::InvalidImprint { .. } => ErrorCode::Internal,
        }
    }
}

/// Largest time-stamp response the client reads (tokens are a few KiB).
const MAX_RESPONSE: u64 = 1024 * 1024;

/// `PKIStatusInfo` (RFC 3161 §2.4.2, from RFC 4210), with the failure bits kept raw.
///
/// ```text
/// PKIStatusInfo ::= SEQUENCE {
///     status        PKIStatus,                 -- INTEGER
///     statusString  PKIFreeText     OPTIONAL,  -- SEQUENCE OF UTF8String
///     failInfo      PKIFailureInfo  OPTIONAL } -- BIT STRING
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct PkiStatusInfo {
    /// 0 granted, 1 grantedWithMods, 2 rejection, 3 waiting, 4/5 revocation warning/notification.
    pub status: u8,
    /// Free text from the TSA.
    pub status_string: Option<Vec<String>>,
    /// PKIFailureInfo named bits.
    pub fail_info: Option<BitString>,
}

/// `PKIStatus` values (RFC 3161 §2.4.2).
pub mod status {
    /// granted
    pub const GRANTED: u8 = 0;
    /// grantedWithMods
    pub const GRANTED_WITH_MODS: u8 = 1;
    /// rejection
    pub const REJECTION: u8 = 2;
}

/// `PKIFailureInfo` bit numbers (RFC 3161 §2.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureInfo {
    /// Unrecognized or unsupported algorithm identifier.
    BadAlg = 0,
    /// Transaction not permitted or supported.
    BadRequest = 2,
    /// The data submitted has the wrong format.
    BadDataFormat = 5,
    /// The TSA's time source is not available.
    TimeNotAvailable = 14,
    /// The requested TSA policy is not supported.
    UnacceptedPolicy = 15,
    /// The requested extension is not supported.
    UnacceptedExtension = 16,
    /// The request cannot be handled due to system failure.
    SystemFailure = 25,
}

impl FailureInfo {
    /// The DER named-bit-list BIT STRING with only this bit set.
    pub fn to_bit_string(self) -> BitString {
        let bit = self as usize;
        let mut bytes = vec![0u8; bit / 8 + 1];
        bytes[bit / 8] = 0x80 >> (bit % 8);
        BitString::new((7 - bit % 8) as u8, bytes).expect("unused bits < 8")
    }

    /// Whether `bits` has this failure bit set.
    pub fn is_set_in(self, bits: &BitString) -> bool {
        let bit = self as usize;
        bits.raw_bytes()
            .get(bit / 8)
            .is_some_and(|b| b & (0x80 >> (bit % 8)) != 0)
    }
}

/// `TimeStampResp` (RFC 3161 §2.4.2).
///
/// ```text
/// TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken TimeStampToken OPTIONAL }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct TimeStampResp {
    /// Whether the request was granted.
    pub status: PkiStatusInfo,
    /// The token (a CMS ContentInfo with SignedData over a TSTInfo) when granted.
    pub time_stamp_token: Option<ContentInfo>,
}

/// A time-stamp response or token that is not what was asked for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// A value cannot be DER-decoded or encoded.
    #[error("{what}: {source}")]
    Der {
        /// Which structure.
        what: &'static str,
        /// The decoder's error.
        source: der::Error,
    },
    /// The token's ContentInfo holds something other than SignedData.
    #[error("token content type is {0}, not signedData")]
    NotSignedData(const_oid::ObjectIdentifier),
    /// The SignedData encapsulates something other than a TSTInfo.
    #[error("token encapsulates {0}, not a TSTInfo")]
    NotTstInfo(const_oid::ObjectIdentifier),
    /// The SignedData has no encapsulated content.
    #[error("token has no encapsulated TSTInfo")]
    NoTstInfo,
    /// The TSA did not grant the request.
    #[error("status {status} (not granted) {text}")]
    NotGranted {
        /// PKIStatus.
        status: u8,
        /// The TSA's free text.
        text: String,
    },
    /// Granted, yet no token.
    #[error("granted but no token")]
    NoToken,
    /// The nonce is not the one sent.
    #[error("nonce in the token does not match the request")]
    NonceMismatch,
    /// The messageImprint is not the one sent.
    #[error("messageImprint in the token does not match the request")]
    ImprintMismatch,
}

fn der_error(what: &'static str) -> impl FnOnce(der::Error) -> TokenError {
    move |source| TokenError::Der { what, source }
}

/// Extracts the `TSTInfo` from a time-stamp token (DER ContentInfo). No signature check.
pub fn token_tst_info(token: &ContentInfo) -> Result<TstInfo, TokenError> {
    if token.content_type != oid::SIGNED_DATA {
        return Err(TokenError::NotSignedData(token.content_type));
    }
    let content = token.content.to_der().map_err(der_error("token"))?;
    let signed = SignedData::from_der(&content).map_err(der_error("token SignedData"))?;
    let encap = signed.encap_content_info;
    if encap.econtent_type != oid::TST_INFO {
        return Err(TokenError::NotTstInfo(encap.econtent_type));
    }
    let content = encap.econtent.ok_or(TokenError::NoTstInfo)?;
    let octets = content
        .decode_as::<OctetString>()
        .map_err(der_error("eContent"))?;
    TstInfo::from_der(octets.as_bytes()).map_err(der_error("TSTInfo"))
}

/// Asks the RFC 3161 TSA at `url` (plain `http://`) for a time-stamp token over `imprint`
/// (the `digest` of the data) and returns the DER `TimeStampToken` (a ContentInfo).
///
/// Sends a random 64-bit nonce and `certReq = true`; checks that the status is granted, that
/// the nonce is echoed and that the token's messageImprint is the one requested. The token's
/// signature is not verified here; the verifier does that against its trust anchors.
pub fn request_token(
    url: &str,
    digest: DigestAlgorithm,
    imprint: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, TspError> {
    let bad = |reason: String| TspError::BadResponse {
        url: url.to_string(),
        reason,
    };
    if imprint.len() != digest.output_len() {
        return Err(TspError::InvalidImprint {
            expected: digest.output_len(),
            got: imprint.len(),
        });
    }
    let nonce_value: u64 = rand::random::<u64>() >> 1;
    let nonce = Int::from_der(&nonce_value.to_der().map_err(|e| bad(e.to_string()))?)
        .map_err(|e| bad(e.to_string()))?;
    let message_imprint = MessageImprint {
        hash_algorithm: digest.identifier(),
        hashed_message: OctetString::new(imprint).map_err(|e| bad(e.to_string()))?,
    };
    let request = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: message_imprint.clone(),
        req_policy: None,
        nonce: Some(nonce.clone()),
        cert_req: true,
        extensions: None,
    };
    let body = request.to_der().map_err(|e| bad(e.to_string()))?;

    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    let response = match agent
        .post(url)
        .set("Content-Type", "application/timestamp-query")
        .send_bytes(&body)
    {
        Ok(r) => r,
        Err(ureq::Error::Status(code, _)) => return Err(bad(format!("HTTP status {code}"))),
        Err(ureq::Error::Transport(t)) => {
            return Err(TspError::Unavailable {
                url: url.to_string(),
                reason: t.to_string(),
            })
        }
    };
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(MAX_RESPONSE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TspError::Unavailable {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    if bytes.len() as u64 > MAX_RESPONSE {
        return Err(bad(format!("response larger than {MAX_RESPONSE} bytes")));
    }
    check_response(&bytes, &message_imprint, &nonce).map_err(|e| bad(e.to_string()))
}

/// Checks a DER `TimeStampResp` against the request and returns the token's DER.
fn check_response(
    bytes: &[u8],
    imprint: &MessageImprint,
    nonce: &Int,
) -> Result<Vec<u8>, TokenError> {
    let response = TimeStampResp::from_der(bytes).map_err(der_error("TimeStampResp"))?;
    let status = &response.status;
    if status.status != status::GRANTED && status.status != status::GRANTED_WITH_MODS {
        let text = status
            .status_string
            .as_ref()
            .map(|s| s.join("; "))
            .unwrap_or_default();
        return Err(TokenError::NotGranted {
            status: status.status,
            text,
        });
    }
    let token = response.time_stamp_token.ok_or(TokenError::NoToken)?;
    let tst = token_tst_info(&token)?;
    if tst.nonce.as_ref() != Some(nonce) {
        return Err(TokenError::NonceMismatch);
    }
    if tst.message_imprint != *imprint {
        return Err(TokenError::ImprintMismatch);
    }
    token.to_der().map_err(der_error("token"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_bits_encode_as_named_bit_lists() {
        // badDataFormat (5): one byte 0000 0100, 2 unused bits.
        let b = FailureInfo::BadDataFormat.to_bit_string();
        assert_eq!(b.to_der().unwrap(), [0x03, 0x02, 0x02, 0x04]);
        assert!(FailureInfo::BadDataFormat.is_set_in(&b));
        assert!(!FailureInfo::BadAlg.is_set_in(&b));
        let b = FailureInfo::BadAlg.to_bit_string();
        assert_eq!(b.to_der().unwrap(), [0x03, 0x02, 0x07, 0x80]);
    }

    #[test]
    fn wrong_imprint_length_is_refused_before_any_network() {
        let err = request_token(
            "http://127.0.0.1:9/",
            DigestAlgorithm::Sha256,
            &[0; 20],
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            TspError::InvalidImprint {
                expected: 32,
                got: 20
            }
        ));
    }

    #[test]
    fn unreachable_tsa_is_unavailable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}/");
        let err = request_token(
            &url,
            DigestAlgorithm::Sha256,
            &[7; 32],
            Duration::from_secs(2),
        )
        .unwrap_err();
        assert!(matches!(err, TspError::Unavailable { .. }), "{err:?}");
        assert_eq!(err.code(), ErrorCode::TsaUnavailable);
    }

    #[test]
    fn rejection_and_garbage_are_bad_responses() {
        let imprint = MessageImprint {
            hash_algorithm: DigestAlgorithm::Sha256.identifier(),
            hashed_message: OctetString::new(vec![1u8; 32]).unwrap(),
        };
        let nonce = Int::new(&[5]).unwrap();
        assert!(check_response(b"garbage", &imprint, &nonce).is_err());
        let rejected = TimeStampResp {
            status: PkiStatusInfo {
                status: status::REJECTION,
                status_string: Some(vec!["no".into()]),
                fail_info: Some(FailureInfo::BadAlg.to_bit_string()),
            },
            time_stamp_token: None,
        };
        let err = check_response(&rejected.to_der().unwrap(), &imprint, &nonce).unwrap_err();
        assert!(
            matches!(err, TokenError::NotGranted { status: 2, .. }),
            "{err}"
        );
    }
}
