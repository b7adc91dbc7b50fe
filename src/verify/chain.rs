//! Certification path validation against named trust lists, at a given time, with
//! OpenSSL's X509 store, plus the signer's key-usage and extended-key-usage constraints.

use std::path::Path;

use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509StoreContext, X509VerifyResult, X509};
use time::OffsetDateTime;

use super::report::SubIndication;

/// A named set of trust anchors (e.g. `national`, `government`).
#[derive(Clone)]
pub struct TrustList {
    /// The list's name, reported with each chain that ends in it.
    pub name: String,
    /// Its anchors.
    pub anchors: Vec<X509>,
}

impl TrustList {
    /// Loads every certificate from a PEM file, or from each `.pem`/`.crt`/`.cer` file of a folder.
    pub fn load(name: &str, path: &Path) -> Result<Self, TrustListError> {
        let unreadable = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TrustListError::Unreadable { path, source }
        };
        let mut files = Vec::new();
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(unreadable(path))?;
            for entry in entries.flatten() {
                let p = entry.path();
                if matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("pem" | "crt" | "cer")
                ) {
                    files.push(p);
                }
            }
            files.sort();
        } else {
            files.push(path.to_path_buf());
        }
        let mut anchors = Vec::new();
        for file in files {
            let bytes = std::fs::read(&file).map_err(unreadable(&file))?;
            let certs = X509::stack_from_pem(&bytes)
                .ok()
                .filter(|c| !c.is_empty())
                .or_else(|| X509::from_der(&bytes).ok().map(|c| vec![c]))
                .ok_or_else(|| TrustListError::NoCertificate(file.clone()))?;
            anchors.extend(certs);
        }
        if anchors.is_empty() {
            return Err(TrustListError::NoCertificate(path.to_path_buf()));
        }
        Ok(Self {
            name: name.to_string(),
            anchors,
        })
    }
}

/// The result of path validation.
pub struct ChainOutcome {
    /// The list whose anchor ends the path, when one does.
    pub trust_list: Option<String>,
    /// The path, signer first (as far as it could be built).
    pub chain: Vec<X509>,
    /// Why the path is not acceptable, with an explanation.
    pub failure: Option<(SubIndication, String)>,
}

/// Builds and validates a path from `cert` to an anchor of one of `lists`, at time `at`,
/// using `untrusted` as intermediates. Lists are tried in order; the first success wins.
pub fn validate(
    cert: &X509,
    untrusted: &[X509],
    lists: &[TrustList],
    at: OffsetDateTime,
) -> ChainOutcome {
    let mut best = ChainOutcome {
        trust_list: None,
        chain: vec![cert.clone()],
        failure: Some((
            SubIndication::NoCertificateChainFound,
            "no trust anchor configured".into(),
        )),
    };
    for list in lists {
        match validate_in(cert, untrusted, list, at) {
            Ok(outcome) if outcome.failure.is_none() => return outcome,
            Ok(outcome) => {
                // Prefer a failure that found an anchor over "no chain".
                if best.trust_list.is_none() || outcome.trust_list.is_some() {
                    best = outcome;
                }
            }
            Err(e) => best.failure = Some((SubIndication::NoCertificateChainFound, e.to_string())),
        }
    }
    best
}

fn validate_in(
    cert: &X509,
    untrusted: &[X509],
    list: &TrustList,
    at: OffsetDateTime,
) -> Result<ChainOutcome, openssl::error::ErrorStack> {
    let store = store_for(list, at)?;
    let mut chain_stack = Stack::new()?;
    for c in untrusted {
        chain_stack.push(c.clone())?;
    }
    let mut ctx = X509StoreContext::new()?;
    let (result, chain) = ctx.init(&store, cert, &chain_stack, |c| {
        let ok = c.verify_cert()?;
        let chain: Vec<X509> = c
            .chain()
            .map(|s| s.iter().map(|x| x.to_owned()).collect())
            .unwrap_or_default();
        Ok((if ok { X509VerifyResult::OK } else { c.error() }, chain))
    })?;
    let chain = if chain.is_empty() {
        vec![cert.clone()]
    } else {
        chain
    };
    if result == X509VerifyResult::OK {
        return Ok(ChainOutcome {
            trust_list: Some(list.name.clone()),
            chain,
            failure: None,
        });
    }
    let reason = result.error_string().to_string();
    let sub = match result.as_raw() {
        // X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED
        9 | 10 => SubIndication::OutOfBoundsNoPoe,
        // EE_KEY_TOO_SMALL, CA_KEY_TOO_SMALL, CA_MD_TOO_WEAK
        66..=68 => SubIndication::CryptoConstraintsFailureNoPoe,
        // unable to get issuer / self-signed in chain / untrusted
        2 | 18 | 19 | 20 | 21 | 27 => SubIndication::NoCertificateChainFound,
        _ => SubIndication::ChainConstraintsFailure,
    };
    let anchored = sub != SubIndication::NoCertificateChainFound;
    Ok(ChainOutcome {
        trust_list: anchored.then(|| list.name.clone()),
        chain,
        failure: Some((sub, reason)),
    })
}

fn store_for(
    list: &TrustList,
    at: OffsetDateTime,
) -> Result<X509Store, openssl::error::ErrorStack> {
    let mut builder = X509StoreBuilder::new()?;
    for anchor in &list.anchors {
        builder.add_cert(anchor.clone())?;
    }
    let mut param = openssl::x509::verify::X509VerifyParam::new()?;
    param.set_time(at.unix_timestamp());
    // Not X509_STRICT: deployed national CA certificates predate some of its pedantic checks.
    param.set_flags(X509VerifyFlags::empty())?;
    builder.set_param(&param)?;
    Ok(builder.build())
}

/// Why a trust list cannot be loaded (the operator named a file that does not serve).
#[derive(Debug, thiserror::Error)]
pub enum TrustListError {
    /// The file or folder cannot be read.
    #[error("{}: {source}", path.display())]
    Unreadable {
        /// The file or folder.
        path: std::path::PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The file (or every file of the folder) holds no certificate.
    #[error("{} holds no certificate", .0.display())]
    NoCertificate(std::path::PathBuf),
}

/// Why a certificate may not serve the purpose it was used for (a chain constraint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsageProblem {
    /// The certificate cannot be decoded to read its extensions.
    #[error("the certificate's extensions cannot be read")]
    Unreadable,
    /// The key usage allows neither digitalSignature nor nonRepudiation.
    #[error("the key usage allows neither digitalSignature nor nonRepudiation")]
    NoSigningKeyUsage,
    /// The extended key usage does not allow document signing.
    #[error("the extended key usage does not allow document signing")]
    NoDocumentSigning,
    /// A TSA certificate without a critical timeStamping extended key usage.
    #[error("the TSA certificate lacks a critical timeStamping extended key usage")]
    NoTimeStamping,
}

/// documentSigning (RFC 9336), Adobe Authentic Documents Trust and Microsoft document signing.
const DOCUMENT_SIGNING_EKUS: [&str; 3] = [
    "1.3.6.1.5.5.7.3.36",
    "1.2.840.113583.1.1.5",
    "1.3.6.1.4.1.311.10.3.12",
];

/// Checks that a signer certificate may sign documents: digitalSignature or nonRepudiation,
/// and an extended key usage (when present) that allows document signing.
pub fn check_signer_usage(cert: &X509) -> Result<(), UsageProblem> {
    let der = cert.to_der().map_err(|_| UsageProblem::Unreadable)?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(&der).map_err(|_| UsageProblem::Unreadable)?;
    if let Ok(Some(ku)) = parsed.key_usage() {
        if !ku.value.digital_signature() && !ku.value.non_repudiation() {
            return Err(UsageProblem::NoSigningKeyUsage);
        }
    }
    if let Ok(Some(eku)) = parsed.extended_key_usage() {
        let e = eku.value;
        let vendor = e
            .other
            .iter()
            .any(|o| DOCUMENT_SIGNING_EKUS.contains(&o.to_id_string().as_str()));
        if !(e.any || e.email_protection || vendor) {
            return Err(UsageProblem::NoDocumentSigning);
        }
    }
    Ok(())
}

/// Checks that a TSA certificate has the timeStamping extended key usage, marked critical
/// (RFC 3161 §2.3).
pub fn check_tsa_usage(cert: &X509) -> Result<(), UsageProblem> {
    let der = cert.to_der().map_err(|_| UsageProblem::Unreadable)?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(&der).map_err(|_| UsageProblem::Unreadable)?;
    match parsed.extended_key_usage() {
        Ok(Some(eku)) if eku.critical && eku.value.time_stamping => Ok(()),
        _ => Err(UsageProblem::NoTimeStamping),
    }
}

/// Weak algorithms in a path (signer first): certificates signed with MD5 or SHA-1 and RSA
/// keys under `min_rsa_bits`. A self-signed anchor's own signature is exempt (it is trusted
/// as is).
pub fn weak_algorithms(path: &[X509], min_rsa_bits: u32) -> Vec<String> {
    use openssl::nid::Nid;
    let mut weak = Vec::new();
    for (i, cert) in path.iter().enumerate() {
        let self_signed = cert.issued(cert) == X509VerifyResult::OK;
        let is_anchor = i + 1 == path.len() && self_signed;
        let subject = cert
            .subject_name()
            .entries_by_nid(Nid::COMMONNAME)
            .next()
            .and_then(|e| e.data().to_string().ok())
            .unwrap_or_default();
        if !is_anchor {
            let alg = cert.signature_algorithm().object().nid();
            if [
                Nid::SHA1WITHRSAENCRYPTION,
                Nid::MD5WITHRSAENCRYPTION,
                Nid::ECDSA_WITH_SHA1,
                Nid::DSAWITHSHA1,
            ]
            .contains(&alg)
            {
                weak.push(format!(
                    "certificate '{subject}' is signed with {}",
                    alg.long_name().unwrap_or("?")
                ));
            }
        }
        if let Ok(key) = cert.public_key() {
            if key.id() == openssl::pkey::Id::RSA && key.bits() < min_rsa_bits {
                weak.push(format!(
                    "certificate '{subject}' has an RSA key of {} bits",
                    key.bits()
                ));
            }
        }
    }
    weak
}

/// Fetches missing issuer certificates from the AIA caIssuers URLs of `cert` and of what
/// it finds, up to a few levels (DER or PEM answers), when the fetcher chases issuers.
pub fn fetch_issuers(cert: &X509, fetcher: &dyn super::Fetcher) -> Vec<X509> {
    let mut found: Vec<X509> = Vec::new();
    if !fetcher.chases_issuers() {
        return found;
    }
    let mut current = cert.clone();
    for _ in 0..4 {
        let urls: Vec<String> = current
            .authority_info()
            .map(|ads| {
                ads.iter()
                    .filter(|ad| ad.method().nid() == openssl::nid::Nid::AD_CA_ISSUERS)
                    .filter_map(|ad| ad.location().uri().map(String::from))
                    .filter(|u| u.starts_with("http://"))
                    .collect()
            })
            .unwrap_or_default();
        let next = urls.iter().find_map(|url| {
            let bytes = fetcher.get(url).ok()?;
            X509::from_der(&bytes)
                .or_else(|_| X509::from_pem(&bytes))
                .ok()
        });
        match next {
            Some(issuer) if issuer.issued(&issuer) != X509VerifyResult::OK => {
                found.push(issuer.clone());
                current = issuer;
            }
            Some(root) => {
                found.push(root);
                break;
            }
            None => break,
        }
    }
    found
}
