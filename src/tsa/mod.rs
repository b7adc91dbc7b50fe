//! The RFC 3161 time-stamp server: answers `TimeStampReq`s with tokens signed through a
//! [`KeySource`] (so the TSA key may live in an HSM), and serves them over HTTP.
//!
//! [`TimeStampAuthority::respond`] is synchronous and takes the time as an argument; [`serve`]
//! is the async HTTP edge (`POST /`, `application/timestamp-query` → `application/timestamp-reply`).
//! The token is a CMS SignedData built by [`crate::cms::SignedDataBuilder`] with content-type,
//! message-digest, signing-time and signing-certificate-v2 (RFC 5816).

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use cms::content_info::ContentInfo;
use const_oid::ObjectIdentifier;
use der::asn1::{GeneralizedTime, Int};
use der::{Decode, Encode};
use time::OffsetDateTime;
use x509_cert::ext::pkix::name::GeneralName;
use x509_tsp::{Accuracy, TimeStampReq, TspVersion, TstInfo};

use crate::cms::SignedDataBuilder;
use crate::code::ErrorCode;
use crate::keys::KeySource;
use crate::pki::alg::{DigestAlgorithm, RsaPadding, SignatureScheme};
use crate::pki::oid;
use crate::pki::tsp::{status, FailureInfo, PkiStatusInfo, TimeStampResp};

/// Largest request body accepted over HTTP (a request is ~100 bytes).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The TSA cannot be set up with the given key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TsaError {
    /// The certificate is not a TSA certificate (RFC 3161 §2.3).
    #[error("certificate '{subject}' cannot be a time-stamp authority: {reason}")]
    NotTsaCertificate {
        /// Subject of the certificate.
        subject: String,
        /// What is missing.
        reason: String,
    },
}

impl TsaError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotTsaCertificate { .. } => ErrorCode::KeyInvalid,
        }
    }
}

/// An RFC 3161 time-stamp authority: a key with a timeStamping certificate and a policy.
pub struct TimeStampAuthority {
    key: Arc<dyn KeySource>,
    policy: ObjectIdentifier,
    scheme: SignatureScheme,
    name: GeneralName,
}

impl std::fmt::Debug for TimeStampAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeStampAuthority")
            .field("subject", &self.key.certificate().subject_name())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl TimeStampAuthority {
    /// Sets up a TSA. Refuses a certificate whose extended key usage is not exactly
    /// id-kp-timeStamping, marked critical (RFC 3161 §2.3).
    pub fn new(key: Arc<dyn KeySource>, policy: ObjectIdentifier) -> Result<Self, TsaError> {
        let der = key
            .certificate()
            .to_der()
            .map_err(|e| TsaError::NotTsaCertificate {
                subject: String::new(),
                reason: e.to_string(),
            })?;
        let cert =
            x509_cert::Certificate::from_der(&der).map_err(|e| TsaError::NotTsaCertificate {
                subject: String::new(),
                reason: e.to_string(),
            })?;
        let subject = cert.tbs_certificate.subject.to_string();
        let refuse = |reason: &str| TsaError::NotTsaCertificate {
            subject: subject.clone(),
            reason: reason.to_string(),
        };
        let eku = cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)
            .ok_or_else(|| refuse("no extended key usage"))?;
        if !eku.critical {
            return Err(refuse("the extended key usage is not critical"));
        }
        let purposes = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(eku.extn_value.as_bytes())
            .map_err(|_| refuse("the extended key usage cannot be parsed"))?;
        if purposes.0 != [oid::KP_TIME_STAMPING] {
            return Err(refuse("the extended key usage is not exactly timeStamping"));
        }
        let scheme =
            SignatureScheme::for_key(key.algorithm(), DigestAlgorithm::Sha256, RsaPadding::Pkcs1);
        let name = GeneralName::DirectoryName(cert.tbs_certificate.subject);
        Ok(Self {
            key,
            policy,
            scheme,
            name,
        })
    }

    /// The TSA policy put in every token.
    pub fn policy(&self) -> ObjectIdentifier {
        self.policy
    }

    /// Answers one DER `TimeStampReq` with a DER `TimeStampResp` stamped at `now`.
    ///
    /// Malformed requests get `rejection` with badDataFormat, unknown digests badAlg, other
    /// policies unacceptedPolicy, any extension unacceptedExtension.
    pub fn respond(&self, request_der: &[u8], now: OffsetDateTime) -> Vec<u8> {
        match self.token(request_der, now) {
            Ok(token) => encode_response(TimeStampResp {
                status: PkiStatusInfo {
                    status: status::GRANTED,
                    status_string: None,
                    fail_info: None,
                },
                time_stamp_token: Some(token),
            }),
            Err((failure, text)) => {
                tracing::info!(?failure, reason = %text, "time-stamp request rejected");
                rejection(failure, text)
            }
        }
    }

    fn token(
        &self,
        request_der: &[u8],
        now: OffsetDateTime,
    ) -> Result<ContentInfo, (FailureInfo, String)> {
        let request = TimeStampReq::from_der(request_der).map_err(|e| {
            (
                FailureInfo::BadDataFormat,
                format!("not a TimeStampReq: {e}"),
            )
        })?;
        let imprint = &request.message_imprint;
        let digest = DigestAlgorithm::from_oid(&imprint.hash_algorithm.oid).ok_or_else(|| {
            (
                FailureInfo::BadAlg,
                format!("unsupported hash {}", imprint.hash_algorithm.oid),
            )
        })?;
        if imprint.hashed_message.as_bytes().len() != digest.output_len() {
            return Err((
                FailureInfo::BadDataFormat,
                "hashedMessage length does not fit its algorithm".into(),
            ));
        }
        if request.req_policy.is_some_and(|p| p != self.policy) {
            return Err((FailureInfo::UnacceptedPolicy, "unsupported policy".into()));
        }
        if request.extensions.as_ref().is_some_and(|e| !e.is_empty()) {
            return Err((
                FailureInfo::UnacceptedExtension,
                "extensions are not supported".into(),
            ));
        }
        let system = |e: String| (FailureInfo::SystemFailure, e);
        let secs = u64::try_from(now.unix_timestamp()).map_err(|_| {
            (
                FailureInfo::TimeNotAvailable,
                "clock before 1970".to_string(),
            )
        })?;
        let gen_time = GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs))
            .map_err(|_| {
                (
                    FailureInfo::TimeNotAvailable,
                    "clock out of range".to_string(),
                )
            })?;
        let tst = TstInfo {
            version: TspVersion::V1,
            policy: self.policy,
            message_imprint: request.message_imprint.clone(),
            serial_number: random_serial().map_err(|e| system(e.to_string()))?,
            gen_time,
            accuracy: Some(Accuracy {
                seconds: Some(1),
                millis: None,
                micros: None,
            }),
            ordering: false,
            nonce: request.nonce.clone(),
            tsa: Some(self.name.clone()),
            extensions: None,
        };
        let tst_der = tst.to_der().map_err(|e| system(e.to_string()))?;
        let signed = SignedDataBuilder::new(&*self.key, self.scheme, Vec::new())
            .with_encapsulated(oid::TST_INFO, tst_der)
            .with_signing_time(now)
            .sign()
            .and_then(|s| s.to_der())
            .map_err(|e| system(e.to_string()))?;
        ContentInfo::from_der(&signed).map_err(|e| system(e.to_string()))
    }
}

/// A positive random 127-bit serial number.
fn random_serial() -> der::Result<Int> {
    let value = rand::random::<u128>() >> 1;
    Int::from_der(&value.to_der()?)
}

fn encode_response(response: TimeStampResp) -> Vec<u8> {
    response
        .to_der()
        .unwrap_or_else(|_| rejection(FailureInfo::SystemFailure, String::new()))
}

/// A `rejection` TimeStampResp with one failure bit.
fn rejection(failure: FailureInfo, text: String) -> Vec<u8> {
    let response = TimeStampResp {
        status: PkiStatusInfo {
            status: status::REJECTION,
            status_string: (!text.is_empty()).then(|| vec![text]),
            fail_info: Some(failure.to_bit_string()),
        },
        time_stamp_token: None,
    };
    // SEQUENCE { SEQUENCE { INTEGER 2, BIT STRING systemFailure(25) } }: the fallback if even
    // the rejection cannot be encoded.
    response.to_der().unwrap_or_else(|_| {
        vec![
            0x30, 0x0b, 0x30, 0x09, 0x02, 0x01, 0x02, 0x03, 0x04, 0x06, 0x00, 0x00, 0x40,
        ]
    })
}

/// The HTTP routes: `POST /` answers a time-stamp query; bodies over 64 KiB get 413.
pub fn router(tsa: Arc<TimeStampAuthority>) -> Router {
    Router::new()
        .route("/", post(handle))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(tsa)
}

async fn handle(State(tsa): State<Arc<TimeStampAuthority>>, body: Bytes) -> Response {
    let now = OffsetDateTime::now_utc();
    let reply = tokio::task::spawn_blocking(move || tsa.respond(&body, now))
        .await
        .unwrap_or_else(|_| rejection(FailureInfo::SystemFailure, "internal error".into()));
    ([(CONTENT_TYPE, "application/timestamp-reply")], reply).into_response()
}

/// Serves the TSA on `listener` until `shutdown` completes, then drains open requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tsa: Arc<TimeStampAuthority>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(tsa))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests;
