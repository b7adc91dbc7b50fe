//! Keys held in a PKCS#11 token or HSM, reached through `cryptoki` (RFC 7512 URIs).
//!
//! The private key never leaves the token: signgate sends it a digest (wrapped in a DigestInfo
//! for `CKM_RSA_PKCS`) and gets the signature back. Sessions are pooled, one per concurrent
//! signer, and the user logs in once for the whole application (PKCS#11 §5.6: a login is
//! shared by all sessions of the application). The PIN is kept as a [`SecretString`] and
//! never appears in errors or logs.
//!
//! Keys marked `CKA_ALWAYS_AUTHENTICATE` need a context-specific login between `C_SignInit`
//! and the signature (PKCS#11 §5.6.1). The raw mechanisms (`CKM_RSA_PKCS`, `CKM_ECDSA`) are
//! single-part, and `cryptoki` only offers `C_SignInit`+`C_Sign` as one call, so such keys sign
//! whole messages with the multi-part hash-and-sign mechanisms (`CKM_SHA256_RSA_PKCS`,
//! `CKM_SHA256_RSA_PKCS_PSS`, `CKM_ECDSA_SHA256`, …): init, login, update, final.

use std::path::Path;
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::{Limit, Slot};
use openssl::x509::X509;
use secrecy::SecretString;

use super::{key_algorithm, KeyError, KeySource};
use crate::pki::alg::{digest_info, DigestAlgorithm, KeyAlgorithm, SignatureScheme};

/// The module loaded when `SIGNGATE_PKCS11_MODULE` is not set (Debian's SoftHSM2).
pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A parsed RFC 7512 `pkcs11:` URI: which token and which object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token=`: the token label.
    pub token: Option<String>,
    /// `serial=`: the token serial number.
    pub serial: Option<String>,
    /// `slot-id=`: the slot number.
    pub slot_id: Option<u64>,
    /// `object=`: the key's `CKA_LABEL`.
    pub object: Option<String>,
    /// `id=`: the key's `CKA_ID` (percent-encoded bytes in the URI).
    pub id: Option<Vec<u8>>,
    /// `?module-path=`: overrides the configured module.
    pub module_path: Option<String>,
}

impl Pkcs11Uri {
    /// True when `spec` is a PKCS#11 URI rather than a file name.
    pub fn is_uri(spec: &str) -> bool {
        spec.len() >= 7 && spec[..7].eq_ignore_ascii_case("pkcs11:")
    }

    /// Parses `pkcs11:token=…;object=…;id=%01?module-path=…` (RFC 7512 §2.3).
    ///
    /// `pin-value` is refused: a PIN in a URI ends up in shell history and process lists.
    pub fn parse(spec: &str) -> Result<Self, KeyError> {
        let bad = |why: String| KeyError::Unsupported(format!("invalid PKCS#11 URI: {why}"));
        if !Self::is_uri(spec) {
            return Err(bad("it must start with 'pkcs11:'".into()));
        }
        let rest = &spec[7..];
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut uri = Self::default();
        for part in path.split(';').filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("attribute '{part}' has no '='")))?;
            let value = percent_decode(value)
                .ok_or_else(|| bad(format!("bad percent-encoding in '{value}'")))?;
            let text = || {
                String::from_utf8(value.clone()).map_err(|_| bad(format!("{name} is not UTF-8")))
            };
            match name {
                "token" => uri.token = Some(text()?),
                "serial" => uri.serial = Some(text()?),
                "object" => uri.object = Some(text()?),
                "id" => uri.id = Some(value),
                "slot-id" => {
                    uri.slot_id = Some(
                        text()?
                            .parse()
                            .map_err(|_| bad("slot-id is not a number".into()))?,
                    )
                }
                "type" => {
                    let t = text()?;
                    if t != "private" {
                        return Err(bad(format!("type={t}: signgate signs with private keys")));
                    }
                }
                // Other path attributes (manufacturer, model, library-*) do not narrow our search.
                _ => {}
            }
        }
        for part in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            match name {
                "pin-value" | "pin-source" => {
                    return Err(bad(
                        "a PIN cannot be given in the URI; use SIGNGATE_PKCS11_PIN or --pin-file"
                            .into(),
                    ))
                }
                "module-path" => {
                    let v = percent_decode(value)
                        .ok_or_else(|| bad(format!("bad percent-encoding in '{value}'")))?;
                    uri.module_path = Some(
                        String::from_utf8(v).map_err(|_| bad("module-path is not UTF-8".into()))?,
                    );
                }
                _ => {}
            }
        }
        if uri.object.is_none() && uri.id.is_none() {
            return Err(bad("name the key with object=LABEL or id=%xx".into()));
        }
        Ok(uri)
    }
}

impl std::fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pkcs11:")?;
        let mut parts = Vec::new();
        if let Some(t) = &self.token {
            parts.push(format!("token={t}"));
        }
        if let Some(o) = &self.object {
            parts.push(format!("object={o}"));
        }
        if let Some(id) = &self.id {
            parts.push(format!(
                "id={}",
                id.iter().map(|b| format!("%{b:02x}")).collect::<String>()
            ));
        }
        write!(f, "{}", parts.join(";"))
    }
}

/// `text` with `%XX` escapes decoded; `None` for a malformed escape.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Where the certificate of a token key comes from, and what else to load.
#[derive(Debug, Default, Clone)]
pub struct Pkcs11Options {
    /// The PKCS#11 module (shared library) to load.
    pub module: Option<std::path::PathBuf>,
    /// A certificate file (PEM or DER) to use instead of the token's certificate object.
    pub certificate: Option<std::path::PathBuf>,
    /// Intermediate certificates (PEM) to embed in signatures.
    pub chain: Option<std::path::PathBuf>,
}

/// A private key on a PKCS#11 token, with its certificate.
pub struct Pkcs11Key {
    // Field order matters for drop: sessions close before the context is finalized.
    sessions: Mutex<Vec<(Session, ObjectHandle)>>,
    ctx: Pkcs11,
    slot: Slot,
    pin: SecretString,
    uri: Pkcs11Uri,
    certificate: X509,
    chain: Vec<X509>,
    algorithm: KeyAlgorithm,
    always_authenticate: bool,
    session_cap: Option<usize>,
}

impl std::fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Key")
            .field("uri", &self.uri.to_string())
            .field("algorithm", &self.algorithm)
            .field("always_authenticate", &self.always_authenticate)
            .field("session_cap", &self.session_cap)
            .finish_non_exhaustive()
    }
}

fn token_error(uri: &Pkcs11Uri, what: &str, e: CkError) -> KeyError {
    match e {
        CkError::Pkcs11(RvError::PinIncorrect, _) => KeyError::WrongPassword {
            path: uri.to_string(),
        },
        CkError::Pkcs11(RvError::PinLocked, _) => KeyError::Token {
            uri: uri.to_string(),
            reason: "the PIN is locked".into(),
        },
        CkError::Pkcs11(RvError::MechanismInvalid, _) => KeyError::Token {
            uri: uri.to_string(),
            reason: format!("{what}: the token does not offer this mechanism"),
        },
        other => KeyError::Token {
            uri: uri.to_string(),
            reason: format!("{what}: {other}"),
        },
    }
}

impl Pkcs11Key {
    /// Opens the key named by `uri`, logging in with `pin`.
    pub fn open(
        uri: &Pkcs11Uri,
        pin: SecretString,
        opts: &Pkcs11Options,
    ) -> Result<Self, KeyError> {
        let module = uri
            .module_path
            .as_ref()
            .map(std::path::PathBuf::from)
            .or_else(|| opts.module.clone())
            .unwrap_or_else(|| DEFAULT_MODULE.into());
        let ctx = Pkcs11::new(&module).map_err(|e| KeyError::Token {
            uri: uri.to_string(),
            reason: format!("cannot load PKCS#11 module {}: {e}", module.display()),
        })?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(token_error(uri, "C_Initialize", e)),
        }
        let slot = find_slot(&ctx, uri)?;
        let session = ctx
            .open_ro_session(slot)
            .map_err(|e| token_error(uri, "C_OpenSession", e))?;
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(token_error(uri, "C_Login", e)),
        }
        let handle = find_private_key(&session, uri)?;
        let attrs = session
            .get_attributes(
                handle,
                &[
                    AttributeType::Id,
                    AttributeType::KeyType,
                    AttributeType::AlwaysAuthenticate,
                ],
            )
            .map_err(|e| token_error(uri, "C_GetAttributeValue", e))?;
        let mut key_id = None;
        let mut key_type = None;
        let mut always_authenticate = false;
        for a in attrs {
            match a {
                Attribute::Id(id) => key_id = Some(id),
                Attribute::KeyType(t) => key_type = Some(t),
                Attribute::AlwaysAuthenticate(b) => always_authenticate = b,
                _ => {}
            }
        }
        let certificate = match &opts.certificate {
            Some(path) => read_certificate(path)?,
            None => certificate_from_token(&session, uri, key_id.as_deref())?,
        };
        let public = certificate
            .public_key()
            .map_err(|e| KeyError::Unsupported(format!("certificate public key: {e}")))?;
        let algorithm = key_algorithm(&public)?;
        let matches = matches!(
            (key_type, algorithm),
            (Some(KeyType::RSA), KeyAlgorithm::Rsa { .. })
                | (Some(KeyType::EC), KeyAlgorithm::Ec { .. })
        );
        if !matches {
            return Err(KeyError::Unsupported(format!(
                "the key {uri} is {key_type:?} but its certificate holds a {algorithm:?} key"
            )));
        }
        let chain = match &opts.chain {
            Some(path) => read_chain(path)?,
            None => Vec::new(),
        };
        let session_cap = ctx
            .get_token_info(slot)
            .ok()
            .and_then(|info| session_cap(info.max_session_count()));
        Ok(Self {
            sessions: Mutex::new(vec![(session, handle)]),
            ctx,
            slot,
            pin,
            uri: uri.clone(),
            certificate,
            chain,
            algorithm,
            always_authenticate,
            session_cap,
        })
    }

    /// Whether each signature needs its own context-specific login (`CKA_ALWAYS_AUTHENTICATE`).
    pub fn always_authenticate(&self) -> bool {
        self.always_authenticate
    }

    /// Takes a pooled session or opens a new one (already logged in: the login is per application).
    fn checkout(&self) -> Result<(Session, ObjectHandle), KeyError> {
        if let Some(s) = self.sessions.lock().map_err(|_| poisoned())?.pop() {
            return Ok(s);
        }
        let session = self
            .ctx
            .open_ro_session(self.slot)
            .map_err(|e| token_error(&self.uri, "C_OpenSession", e))?;
        let handle = find_private_key(&session, &self.uri)?;
        Ok((session, handle))
    }

    fn checkin(&self, session: (Session, ObjectHandle)) {
        if let Ok(mut pool) = self.sessions.lock() {
            pool.push(session);
        }
    }

    /// Runs one private-key operation on a pooled session; a session whose operation failed is
    /// dropped (closed), not returned to the pool. ECDSA results become DER.
    fn with_session(
        &self,
        what: &str,
        op: impl FnOnce(&Session, ObjectHandle) -> Result<Vec<u8>, CkError>,
    ) -> Result<Vec<u8>, KeyError> {
        let (session, handle) = self.checkout()?;
        let signature = match op(&session, handle) {
            Ok(sig) => {
                self.checkin((session, handle));
                sig
            }
            Err(e) => return Err(token_error(&self.uri, what, e)),
        };
        match self.algorithm {
            KeyAlgorithm::Ec { .. } => ecdsa_raw_to_der(&signature),
            KeyAlgorithm::Rsa { .. } => Ok(signature),
        }
    }

    /// Signs `message` with a hash-and-sign mechanism, logging in for this one signature
    /// between `C_SignInit` and `C_SignUpdate` (`CKA_ALWAYS_AUTHENTICATE` keys).
    fn sign_message_authenticated(
        &self,
        scheme: SignatureScheme,
        message: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let mechanism = hash_and_sign_mechanism(self.algorithm, scheme)?;
        let what = format!(
            "{} with a PIN for each signature (CKA_ALWAYS_AUTHENTICATE)",
            mechanism.mechanism_type()
        );
        self.with_session(&what, |session, key| {
            session.sign_init(&mechanism, key)?;
            session.login(UserType::ContextSpecific, Some(&self.pin))?;
            session.sign_update(message)?;
            session.sign_final()
        })
    }
}

/// The single-part mechanism signing a precomputed digest, and the bytes it takes.
fn digest_mechanism(
    algorithm: KeyAlgorithm,
    scheme: SignatureScheme,
    digest: &[u8],
) -> Result<(Mechanism<'static>, Vec<u8>), KeyError> {
    let d = scheme.digest();
    Ok(match (algorithm, scheme) {
        (KeyAlgorithm::Rsa { .. }, SignatureScheme::RsaPkcs1(_)) => {
            (Mechanism::RsaPkcs, digest_info(d, digest))
        }
        (KeyAlgorithm::Rsa { .. }, SignatureScheme::RsaPss(_)) => {
            (Mechanism::RsaPkcsPss(pss_params(d)), digest.to_vec())
        }
        (KeyAlgorithm::Ec { .. }, SignatureScheme::Ecdsa(_)) => (Mechanism::Ecdsa, digest.to_vec()),
        (algorithm, scheme) => return Err(mismatch(algorithm, scheme)),
    })
}

/// The multi-part mechanism that hashes a message with `scheme.digest()` and signs it.
fn hash_and_sign_mechanism(
    algorithm: KeyAlgorithm,
    scheme: SignatureScheme,
) -> Result<Mechanism<'static>, KeyError> {
    use DigestAlgorithm::{Sha256, Sha384, Sha512};
    let d = scheme.digest();
    Ok(match (algorithm, scheme) {
        (KeyAlgorithm::Rsa { .. }, SignatureScheme::RsaPkcs1(_)) => match d {
            Sha256 => Mechanism::Sha256RsaPkcs,
            Sha384 => Mechanism::Sha384RsaPkcs,
            Sha512 => Mechanism::Sha512RsaPkcs,
        },
        (KeyAlgorithm::Rsa { .. }, SignatureScheme::RsaPss(_)) => match d {
            Sha256 => Mechanism::Sha256RsaPkcsPss(pss_params(d)),
            Sha384 => Mechanism::Sha384RsaPkcsPss(pss_params(d)),
            Sha512 => Mechanism::Sha512RsaPkcsPss(pss_params(d)),
        },
        (KeyAlgorithm::Ec { .. }, SignatureScheme::Ecdsa(_)) => match d {
            Sha256 => Mechanism::EcdsaSha256,
            Sha384 => Mechanism::EcdsaSha384,
            Sha512 => Mechanism::EcdsaSha512,
        },
        (algorithm, scheme) => return Err(mismatch(algorithm, scheme)),
    })
}

/// RSASSA-PSS with MGF1 over the same hash and a salt as long as the hash (RFC 8017 §9.1).
fn pss_params(d: DigestAlgorithm) -> PkcsPssParams {
    let (hash_alg, mgf) = match d {
        DigestAlgorithm::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
        DigestAlgorithm::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
        DigestAlgorithm::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
    };
    PkcsPssParams {
        hash_alg,
        mgf,
        s_len: (d.output_len() as u64).into(),
    }
}

fn mismatch(algorithm: KeyAlgorithm, scheme: SignatureScheme) -> KeyError {
    KeyError::Unsupported(format!(
        "a {algorithm:?} key cannot make {scheme:?} signatures"
    ))
}

/// How many sessions the token lets this application open (`CK_TOKEN_INFO.ulMaxSessionCount`;
/// signgate's sessions are read-only, so `ulMaxRwSessionCount` does not bind), or `None` when
/// the token states no limit (`CK_UNAVAILABLE_INFORMATION`, `CK_EFFECTIVELY_INFINITE`).
fn session_cap(max_sessions: Limit) -> Option<usize> {
    match max_sessions {
        Limit::Max(n) => Some(usize::try_from(n).unwrap_or(usize::MAX).max(1)),
        Limit::Unavailable | Limit::Infinite => None,
    }
}

fn poisoned() -> KeyError {
    KeyError::SignFailed("session pool lock poisoned".into())
}

impl KeySource for Pkcs11Key {
    fn certificate(&self) -> &X509 {
        &self.certificate
    }

    fn chain(&self) -> &[X509] {
        &self.chain
    }

    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn max_concurrent_signatures(&self) -> Option<usize> {
        self.session_cap
    }

    /// Signs a digest with a single-part raw mechanism. A `CKA_ALWAYS_AUTHENTICATE` key
    /// refuses: its login must come between `C_SignInit` and `C_Sign`, which `cryptoki`
    /// cannot do for single-part mechanisms; [`KeySource::sign_message`] signs with it.
    fn sign_digest(&self, scheme: SignatureScheme, digest: &[u8]) -> Result<Vec<u8>, KeyError> {
        let d = scheme.digest();
        if digest.len() != d.output_len() {
            return Err(KeyError::SignFailed(format!(
                "digest is {} bytes, {d:?} needs {}",
                digest.len(),
                d.output_len()
            )));
        }
        if self.always_authenticate {
            return Err(KeyError::Unsupported(format!(
                "the key {} needs a PIN for each signature (CKA_ALWAYS_AUTHENTICATE) and signs \
                 whole messages only, not precomputed digests",
                self.uri
            )));
        }
        let (mechanism, data) = digest_mechanism(self.algorithm, scheme, digest)?;
        self.with_session("C_Sign", |session, key| {
            session.sign(&mechanism, key, &data)
        })
    }

    fn sign_message(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        if self.always_authenticate {
            self.sign_message_authenticated(scheme, message)
        } else {
            self.sign_digest(scheme, &scheme.digest().digest(message))
        }
    }
}

/// Converts a PKCS#11 ECDSA signature (`r ‖ s`, each the field size) to DER `ECDSA-Sig-Value`.
pub(crate) fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, KeyError> {
    if raw.is_empty() || raw.len() % 2 != 0 {
        return Err(KeyError::SignFailed(format!(
            "token returned a {}-byte ECDSA signature",
            raw.len()
        )));
    }
    let half = raw.len() / 2;
    let fail = |e: openssl::error::ErrorStack| KeyError::SignFailed(e.to_string());
    let r = openssl::bn::BigNum::from_slice(&raw[..half]).map_err(fail)?;
    let s = openssl::bn::BigNum::from_slice(&raw[half..]).map_err(fail)?;
    openssl::ecdsa::EcdsaSig::from_private_components(r, s)
        .and_then(|sig| sig.to_der())
        .map_err(fail)
}

fn find_slot(ctx: &Pkcs11, uri: &Pkcs11Uri) -> Result<Slot, KeyError> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| token_error(uri, "C_GetSlotList", e))?;
    let mut found = Vec::new();
    for slot in slots {
        if uri.slot_id.is_some_and(|id| id != slot.id()) {
            continue;
        }
        let info = ctx
            .get_token_info(slot)
            .map_err(|e| token_error(uri, "C_GetTokenInfo", e))?;
        if uri
            .token
            .as_deref()
            .is_some_and(|t| info.label().trim_end() != t)
        {
            continue;
        }
        if uri
            .serial
            .as_deref()
            .is_some_and(|s| info.serial_number().trim_end() != s)
        {
            continue;
        }
        found.push(slot);
    }
    match found.len() {
        1 => Ok(found[0]),
        0 => Err(KeyError::NotFound {
            what: format!("no token matches {uri}"),
        }),
        n => Err(KeyError::NotFound {
            what: format!("{n} tokens match {uri}; add token= or serial= to choose one"),
        }),
    }
}

fn find_private_key(session: &Session, uri: &Pkcs11Uri) -> Result<ObjectHandle, KeyError> {
    let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
    if let Some(label) = &uri.object {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    let handles = session
        .find_objects(&template)
        .map_err(|e| token_error(uri, "C_FindObjects", e))?;
    match handles.len() {
        1 => Ok(handles[0]),
        0 => Err(KeyError::NotFound {
            what: format!("no private key matches {uri}"),
        }),
        n => Err(KeyError::NotFound {
            what: format!("{n} private keys match {uri}; add id= to choose one"),
        }),
    }
}

fn certificate_from_token(
    session: &Session,
    uri: &Pkcs11Uri,
    id: Option<&[u8]>,
) -> Result<X509, KeyError> {
    let missing = || KeyError::NotFound {
        what: format!(
            "no certificate with the key's CKA_ID on the token of {uri}; pass --cert FILE"
        ),
    };
    let id = id.filter(|i| !i.is_empty()).ok_or_else(missing)?;
    let handles = session
        .find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Id(id.to_vec()),
        ])
        .map_err(|e| token_error(uri, "C_FindObjects", e))?;
    let handle = *handles.first().ok_or_else(missing)?;
    let value = session
        .get_attributes(handle, &[AttributeType::Value])
        .map_err(|e| token_error(uri, "C_GetAttributeValue", e))?;
    for a in value {
        if let Attribute::Value(der) = a {
            return X509::from_der(&der).map_err(|_| {
                KeyError::Unsupported(format!(
                    "the certificate object of {uri} is not a DER X.509 certificate"
                ))
            });
        }
    }
    Err(missing())
}

fn read_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|e| KeyError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Reads one certificate, PEM or DER.
pub(crate) fn read_certificate(path: &Path) -> Result<X509, KeyError> {
    let bytes = read_file(path)?;
    X509::from_pem(&bytes)
        .or_else(|_| X509::from_der(&bytes))
        .map_err(|_| {
            KeyError::Unsupported(format!(
                "{} is not a PEM or DER certificate",
                path.display()
            ))
        })
}

/// Reads intermediate certificates (PEM), dropping self-signed roots.
pub(crate) fn read_chain(path: &Path) -> Result<Vec<X509>, KeyError> {
    let bytes = read_file(path)?;
    let mut certs = X509::stack_from_pem(&bytes).map_err(|_| {
        KeyError::Unsupported(format!("{} is not a PEM certificate list", path.display()))
    })?;
    certs.retain(|c| c.issued(c) != openssl::x509::X509VerifyResult::OK);
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::alg::RsaPadding;

    #[test]
    fn parses_token_object_and_id() {
        let uri = Pkcs11Uri::parse("pkcs11:token=My%20Token;object=agency;id=%01%ab;type=private")
            .unwrap();
        assert_eq!(uri.token.as_deref(), Some("My Token"));
        assert_eq!(uri.object.as_deref(), Some("agency"));
        assert_eq!(uri.id.as_deref(), Some(&[0x01, 0xab][..]));
    }

    #[test]
    fn refuses_pin_in_uri_and_missing_object() {
        let err = Pkcs11Uri::parse("pkcs11:token=T;object=k?pin-value=1234").unwrap_err();
        assert!(!err.to_string().contains("1234"), "{err}");
        assert!(Pkcs11Uri::parse("pkcs11:token=T").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:token=T;object=%zz").is_err());
        assert!(Pkcs11Uri::parse("file.p12").is_err());
    }

    #[test]
    fn session_limit_caps_only_when_the_token_states_one() {
        assert_eq!(session_cap(Limit::Max(4)), Some(4));
        assert_eq!(session_cap(Limit::Max(0)), Some(1));
        assert_eq!(session_cap(Limit::Infinite), None);
        assert_eq!(session_cap(Limit::Unavailable), None);
    }

    #[test]
    fn always_authenticate_keys_use_the_hash_and_sign_mechanism_of_the_scheme() {
        let rsa = KeyAlgorithm::Rsa { bits: 2048 };
        let ec = KeyAlgorithm::Ec { bits: 256 };
        let cases = [
            (
                rsa,
                DigestAlgorithm::Sha384,
                RsaPadding::Pkcs1,
                MechanismType::SHA384_RSA_PKCS,
            ),
            (
                rsa,
                DigestAlgorithm::Sha512,
                RsaPadding::Pss,
                MechanismType::SHA512_RSA_PKCS_PSS,
            ),
            (
                ec,
                DigestAlgorithm::Sha256,
                RsaPadding::Pkcs1,
                MechanismType::ECDSA_SHA256,
            ),
        ];
        for (key, digest, padding, expected) in cases {
            let scheme = SignatureScheme::for_key(key, digest, padding);
            let mechanism = hash_and_sign_mechanism(key, scheme).unwrap();
            assert_eq!(mechanism.mechanism_type(), expected, "{scheme:?}");
        }
        let ecdsa = SignatureScheme::for_key(ec, DigestAlgorithm::Sha256, RsaPadding::Pkcs1);
        assert!(matches!(
            hash_and_sign_mechanism(rsa, ecdsa),
            Err(KeyError::Unsupported(_))
        ));
    }

    #[test]
    fn raw_ecdsa_becomes_der() {
        let mut raw = vec![0u8; 64];
        raw[31] = 5;
        raw[63] = 7;
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(der, vec![0x30, 6, 2, 1, 5, 2, 1, 7]);
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_err());
    }
}
