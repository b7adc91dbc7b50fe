//! The bodies of signgate's fuzz targets, one function per target (`fuzz_targets/NAME.rs`
//! calls `signgate_fuzz::NAME`). The integration tests include this file too
//! (`tests/it/fuzz_seeds.rs`) and run every function over the committed seeds in
//! `fuzz/seeds/NAME/` with the stable toolchain, so CI exercises each target without cargo-fuzz.
//! Every function must return normally on any input: a panic is a finding.

use std::borrow::Cow;
use std::sync::OnceLock;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509Name, X509};
use signgate::verify::revocation::{check, Evidence};
use signgate::verify::{document, Policy, ValidationContext};

/// The names of the targets, as in `fuzz/Cargo.toml` and `fuzz/seeds/`.
pub const TARGETS: [&str; 8] = [
    "pdf_verify",
    "pdf_prepare",
    "cms_tsp",
    "x509_revocation",
    "revocation_signed",
    "xml_c14n",
    "edxml_zip",
    "http_api",
];

/// Runs target `name` on `data`; false for an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "pdf_verify" => pdf_verify(data),
        "pdf_prepare" => pdf_prepare(data),
        "cms_tsp" => cms_tsp(data),
        "x509_revocation" => x509_revocation(data),
        "revocation_signed" => revocation_signed(data),
        "xml_c14n" => xml_c14n(data),
        "edxml_zip" => edxml_zip(data),
        "http_api" => http_api(data),
        _ => return false,
    }
    true
}

fn offline_context() -> ValidationContext {
    ValidationContext {
        at: time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
        trust_lists: Vec::new(),
        fetcher: None,
    }
}

/// The PDF parser and revision analysis as a verifier runs them on an uploaded PDF:
/// signature discovery, /ByteRange checks, CMS of each signature, changes after signing.
pub fn pdf_verify(data: &[u8]) {
    // Anything not starting with %PDF- is routed elsewhere; keep the fuzzer on the PDF path.
    let input: Cow<[u8]> = if data.starts_with(b"%PDF-") {
        data.into()
    } else {
        [b"%PDF-".as_slice(), data].concat().into()
    };
    let _ = document(
        "fuzz.pdf",
        &input,
        None,
        &Policy::default(),
        &offline_context(),
    );
    let _ = signgate::pdf::parse_document(&input);
}

/// The signing side's PDF reader: preparing an incremental update (trailer, xref tables and
/// streams, pages, AcroForm) of an uploaded PDF.
pub fn pdf_prepare(data: &[u8]) {
    let opts = signgate::pdf::PdfSignOptions::new(time::OffsetDateTime::UNIX_EPOCH);
    let _ = signgate::pdf::prepare(data, &opts);
}

/// CMS SignedData (DER and BER) and RFC 3161 time-stamp tokens: the parser, and the whole
/// verifier on a CMS signature (signer, attributes, embedded tokens, certificates, CRLs).
pub fn cms_tsp(data: &[u8]) {
    use der::Decode;
    let _ = signgate::cms::parse_signed_data(data);
    if let Ok(info) = cms::content_info::ContentInfo::from_der(data) {
        let _ = signgate::pki::tsp::token_tst_info(&info);
    }
    if data.first() == Some(&0x30) {
        let _ = document(
            "fuzz.p7s",
            data,
            Some(b"content"),
            &Policy::default(),
            &offline_context(),
        );
    }
}

fn cert(subject: &str, issuer: Option<(&X509, &PKey<Private>)>, key: &PKey<Private>) -> X509 {
    let mut name = X509Name::builder().expect("name");
    name.append_entry_by_text("CN", subject).expect("CN");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("version");
    let serial = BigNum::from_u32(7).and_then(|n| n.to_asn1_integer());
    b.set_serial_number(&serial.expect("serial"))
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))
        .expect("issuer");
    b.set_pubkey(key).expect("key");
    b.set_not_before(&Asn1Time::from_unix(0).expect("time"))
        .expect("notBefore");
    b.set_not_after(&Asn1Time::days_from_now(3650).expect("time"))
        .expect("notAfter");
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256())
        .expect("sign");
    b.build()
}

/// A CA, its key and a certificate it issued (EC P-256 keys: fast to make).
struct Pki {
    ca: X509,
    ca_key: PKey<Private>,
    ee: X509,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
            .expect("P-256");
        let key = || {
            PKey::from_ec_key(openssl::ec::EcKey::generate(&group).expect("EC key")).expect("key")
        };
        let (ca_key, ee_key) = (key(), key());
        let ca = cert("Fuzz CA", None, &ca_key);
        let ee = cert("Fuzz EE", Some((&ca, &ca_key)), &ee_key);
        Pki { ca, ca_key, ee }
    })
}

fn validation_time() -> time::OffsetDateTime {
    time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000)
}

/// Certificates, OCSP responses and CRLs as they arrive: the input is parsed as a certificate
/// (the shared cache) and offered as embedded OCSP and CRL evidence about a fixed certificate.
pub fn x509_revocation(data: &[u8]) {
    let p = pki();
    let subject = signgate::pki::certs::from_der(data).unwrap_or_else(|| p.ee.clone());
    let evidence = Evidence {
        ocsp: vec![data.to_vec()],
        crls: vec![data.to_vec()],
    };
    let _ = check(
        &subject,
        &p.ca,
        std::slice::from_ref(&p.ca),
        &evidence,
        None,
        validation_time(),
    );
}

/// ECDSA-with-SHA256, no parameters.
fn ecdsa_sha256() -> spki::AlgorithmIdentifierOwned {
    spki::AlgorithmIdentifierOwned {
        oid: const_oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
        parameters: None,
    }
}

fn sign_der(der: &[u8]) -> Option<der::asn1::BitString> {
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &pki().ca_key).ok()?;
    let sig = signer.sign_oneshot_to_vec(der).ok()?;
    der::asn1::BitString::from_bytes(&sig).ok()
}

/// A CRL as the input describes it, re-issued by the fuzz CA (its issuer name and signature
/// replaced), so the checks after the signature (scope, distribution points, freshness,
/// entries) are reached.
fn resigned_crl(data: &[u8]) -> Option<Vec<u8>> {
    use der::{Decode, Encode};
    let p = pki();
    let mut crl = x509_cert::crl::CertificateList::from_der(data).ok()?;
    crl.tbs_cert_list.issuer =
        x509_cert::name::Name::from_der(&p.ca.subject_name().to_der().ok()?).ok()?;
    crl.tbs_cert_list.signature = ecdsa_sha256();
    crl.signature_algorithm = ecdsa_sha256();
    crl.signature = sign_der(&crl.tbs_cert_list.to_der().ok()?)?;
    crl.to_der().ok()
}

/// An OCSP response as the input describes it, re-signed by the fuzz CA (responder ID, the
/// first response's CertID and the signature replaced), so the status reading after the
/// signature check is reached.
fn resigned_ocsp(data: &[u8]) -> Option<Vec<u8>> {
    use der::{Decode, Encode};
    let p = pki();
    let resp = x509_ocsp::OcspResponse::from_der(data).ok()?;
    let bytes = resp.response_bytes?;
    let mut basic = x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes()).ok()?;
    let ca_name = x509_cert::name::Name::from_der(&p.ca.subject_name().to_der().ok()?).ok()?;
    basic.tbs_response_data.responder_id = x509_ocsp::ResponderId::ByName(ca_name.clone());
    if let Some(first) = basic.tbs_response_data.responses.first_mut() {
        let ca_key = p.ca.public_key().ok()?.public_key_to_der().ok()?;
        let spki = spki::SubjectPublicKeyInfoOwned::from_der(&ca_key).ok()?;
        let octets = |b: &[u8]| der::asn1::OctetString::new(b.to_vec()).ok();
        first.cert_id = x509_ocsp::CertId {
            hash_algorithm: spki::AlgorithmIdentifierOwned {
                oid: const_oid::ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
                parameters: Some(der::Any::from(der::asn1::Null)),
            },
            issuer_name_hash: octets(&openssl::sha::sha1(&ca_name.to_der().ok()?))?,
            issuer_key_hash: octets(&openssl::sha::sha1(spki.subject_public_key.raw_bytes()))?,
            serial_number: x509_cert::serial_number::SerialNumber::new(&[7]).ok()?,
        };
    }
    basic.certs = None;
    basic.signature_algorithm = ecdsa_sha256();
    basic.signature = sign_der(&basic.tbs_response_data.to_der().ok()?)?;
    let resp = x509_ocsp::OcspResponse {
        response_status: resp.response_status,
        response_bytes: Some(x509_ocsp::ResponseBytes {
            response_type: bytes.response_type,
            response: der::asn1::OctetString::new(basic.to_der().ok()?).ok()?,
        }),
    };
    resp.to_der().ok()
}

/// OCSP responses and CRLs past their signature: the input, read as a CRL and as an OCSP
/// response, is re-signed by the CA of a fixed certificate and offered as evidence about it.
pub fn revocation_signed(data: &[u8]) {
    let _ = revocation_signed_status(data);
}

/// What [`revocation_signed`] concludes: the status of the fixed certificate, or `None` when
/// the input is neither a CRL nor an OCSP response.
pub fn revocation_signed_status(data: &[u8]) -> Option<signgate::verify::revocation::Status> {
    let p = pki();
    let evidence = Evidence {
        ocsp: resigned_ocsp(data).into_iter().collect(),
        crls: resigned_crl(data).into_iter().collect(),
    };
    if evidence.ocsp.is_empty() && evidence.crls.is_empty() {
        return None;
    }
    let checked = check(
        &p.ee,
        &p.ca,
        std::slice::from_ref(&p.ca),
        &evidence,
        None,
        validation_time(),
    );
    Some(checked.status)
}

/// The hardened XML parser, every canonicalization method on the whole document and on the
/// root element, and the XML-DSig verifier on the document.
pub fn xml_c14n(data: &[u8]) {
    use signgate::xml::c14n::{canonicalize, Method, Subset};
    use signgate::xml::parse::{parse, Limits};
    const METHODS: [&str; 4] = [
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
        "http://www.w3.org/2006/12/xml-c14n11",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
    ];
    let Ok(parsed) = parse(data, &Limits::default()) else {
        return;
    };
    for uri in METHODS {
        let Some(method) = Method::from_uri(uri, vec!["#default".into()]) else {
            continue;
        };
        for apex in [parsed.doc.root(), parsed.doc.root_element()] {
            let subset = Subset {
                apex,
                exclude: None,
                comments: true,
            };
            let _ = canonicalize(parsed.text, subset, &method);
        }
    }
    let _ =
        signgate::verify::xml_document("fuzz.xml", &parsed, &Policy::default(), &offline_context());
}

/// edXML packages (envelope, headers, base64 attachments) and zipped attachments under the
/// default limits.
pub fn edxml_zip(data: &[u8]) {
    let limits = signgate::edxml::Limits::default();
    let _ = signgate::edxml::parse(data, &limits);
    let _ = signgate::edxml::zip::inspect(data, &limits);
}

/// An in-process demo gateway (SQLite in a temporary folder, offline verification, 1 MiB
/// body limit) and its client's token.
struct Api {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    token: String,
    _dir: tempfile::TempDir,
}

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        // Kept for the life of the process (a static is never dropped): named so it can be
        // found and removed after a campaign.
        let dir = tempfile::Builder::new()
            .prefix("signgate-fuzz-api-")
            .tempdir()
            .expect("tempdir");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut config =
            signgate::gateway::GatewayConfig::load_with(None, None, Some(dir.path()), |_| None)
                .expect("demo configuration");
        config.settings.offline = true;
        config.settings.max_body_bytes = 1 << 20;
        let (router, token) = runtime.block_on(async {
            let services = signgate::gateway::Services::open(&config)
                .await
                .expect("services");
            let client = services
                .demo_client()
                .await
                .expect("demo client")
                .expect("a fresh database");
            let router = signgate::api::router(signgate::api::AppState::over(services));
            (router, client.token)
        });
        Api {
            runtime,
            router,
            token,
            _dir: dir,
        }
    })
}

/// The multipart boundary of `http_api` inputs.
pub const BOUNDARY: &str = "fuzzbnd";

/// HTTP query and multipart decoding through the gateway's own router, authenticated as the
/// demo client: the first byte picks the route (and whether the body is multipart), the
/// input up to the first newline is the query string (bytes outside URI characters
/// percent-encoded), the rest is the body. Multipart bodies use the boundary [`BOUNDARY`].
pub fn http_api(data: &[u8]) {
    use tower::ServiceExt;
    const ROUTES: [(&str, &str, bool); 8] = [
        ("POST", "/v1/sign", false),
        ("POST", "/v1/verify", false),
        ("POST", "/v1/verify", true),
        ("POST", "/v1/submissions", false),
        ("POST", "/v1/batches", true),
        ("GET", "/v1/audit", false),
        ("GET", "/v1/submissions/", false),
        ("GET", "/v1/batches/", false),
    ];
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (method, path, multipart) = ROUTES[usize::from(pick) % ROUTES.len()];
    let (query, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let mut uri = String::from(path);
    if path.ends_with('/') {
        // The id segment, then no query.
        uri.extend(query.iter().map(|&b| uri_char(b)));
    } else if !query.is_empty() {
        uri.push('?');
        uri.extend(query.iter().map(|&b| uri_char(b)));
    }
    let api = api();
    let mut request = axum::http::Request::builder()
        .method(method)
        .uri(uri.as_str())
        .header("Authorization", format!("Bearer {}", api.token));
    if multipart {
        request = request.header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        );
    }
    if pick & 0x80 != 0 {
        request = request.header("Idempotency-Key", format!("fuzz-{}", pick & 0x0f));
    }
    let Ok(request) = request.body(axum::body::Body::from(body.to_vec())) else {
        return;
    };
    let router = api.router.clone();
    api.runtime.block_on(async move {
        let response = router
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
    });
}

/// `b` as URI text: itself when it may appear in a query, else percent-encoded.
fn uri_char(b: u8) -> String {
    if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
        char::from(b).to_string()
    } else {
        format!("%{b:02X}")
    }
}
