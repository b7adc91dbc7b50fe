//! poppler `pdfsig` as an oracle, with a temporary NSS database of trusted roots.

use std::path::Path;
use std::process::Command;

use super::{run, run_ok, stderr_str, stdout_str, tempdir};

/// A temporary NSS certificate database trusting one root (for `pdfsig -nssdir`).
pub struct NssDb {
    dir: tempfile::TempDir,
}

impl NssDb {
    /// Creates `sql:DIR` with an empty password and imports `root_pem` as trusted CA (`CT,C,C`).
    pub fn new(root_pem: &Path) -> NssDb {
        let db = NssDb::empty();
        db.add_cert("root", root_pem, "CT,C,C");
        db
    }

    /// A database with no trusted certificates (everything reads as untrusted).
    pub fn empty() -> NssDb {
        let dir = tempdir();
        run_ok(
            Command::new("certutil")
                .arg("-N")
                .arg("-d")
                .arg(format!("sql:{}", dir.path().display()))
                .arg("--empty-password"),
        );
        NssDb { dir }
    }

    /// Imports a certificate (PEM or DER) under `nickname` with NSS trust flags (e.g. `CT,C,C`, `,,`).
    pub fn add_cert(&self, nickname: &str, cert: &Path, trust: &str) {
        run_ok(
            Command::new("certutil")
                .args(["-A", "-d", &self.spec(), "-n", nickname, "-t", trust, "-i"])
                .arg(cert),
        );
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `sql:DIR`, the `-nssdir` argument.
    pub fn spec(&self) -> String {
        format!("sql:{}", self.dir.path().display())
    }
}

/// One signature as reported by `pdfsig` (poppler 22.12).
#[derive(Clone, Debug, Default)]
pub struct PdfsigSignature {
    /// `Signature Field Name`.
    pub field_name: Option<String>,
    /// `Signer Certificate Common Name`.
    pub signer_cn: Option<String>,
    /// `Signer full Distinguished Name`.
    pub signer_dn: Option<String>,
    /// `Signing Time` (poppler's text, e.g. `Nov 26 2026 06:10:29`).
    pub signing_time: Option<String>,
    /// `Signing Hash Algorithm` (e.g. `SHA-256`).
    pub hash_algorithm: Option<String>,
    /// `Signature Type` (e.g. `adbe.pkcs7.detached`, `ETSI.CAdES.detached`, `ETSI.RFC3161`).
    pub signature_type: Option<String>,
    /// `Signed Ranges` as (start, end) byte offsets.
    pub signed_ranges: Vec<(u64, u64)>,
    /// `Total document signed` (true) vs `Not total document signed` (false).
    pub total_document_signed: bool,
    /// `Signature Validation` text, e.g. `Signature is Valid.`, `Digest Mismatch.`.
    pub signature_validation: String,
    /// `Certificate Validation` text, e.g. `Certificate is Trusted.`,
    /// `Certificate issuer isn't Trusted.`, `Certificate has been Revoked.`.
    pub certificate_validation: String,
}

impl PdfsigSignature {
    /// `Signature is Valid.`
    pub fn signature_valid(&self) -> bool {
        self.signature_validation == "Signature is Valid."
    }

    /// `Certificate is Trusted.`
    pub fn certificate_trusted(&self) -> bool {
        self.certificate_validation == "Certificate is Trusted."
    }
}

/// Parsed `pdfsig` output.
#[derive(Clone, Debug)]
pub struct PdfsigReport {
    /// pdfsig's exit code (0 ok, 2 no signatures, 1 error reading the file).
    pub exit_code: Option<i32>,
    /// Signatures in document order.
    pub signatures: Vec<PdfsigSignature>,
    /// stdout + stderr, for assertion messages.
    pub raw: String,
}

/// `pdfsig -nssdir sql:DIR PDF` (with OCSP checking via the certificate's AIA, poppler's default).
pub fn pdfsig(nss: &NssDb, pdf: &Path) -> PdfsigReport {
    pdfsig_args(nss, pdf, &[])
}

/// `pdfsig` with extra options, e.g. `["-aia"]`, `["-nocert"]`, `["-dump"]`.
/// Beware `-no-ocsp`: poppler 22.12 then reports "Unknown issue with Certificate or
/// corrupted data." even for trusted chains (measured). Without it, a certificate with an
/// AIA OCSP URL needs a running responder ([`OcspResponder`]), else the same "Unknown issue".
pub fn pdfsig_args(nss: &NssDb, pdf: &Path, extra: &[&str]) -> PdfsigReport {
    let out = run(Command::new("pdfsig")
        .arg("-nssdir")
        .arg(nss.spec())
        .args(extra)
        .arg(pdf));
    let raw = format!("{}{}", stdout_str(&out), stderr_str(&out));
    PdfsigReport {
        exit_code: out.status.code(),
        signatures: parse_pdfsig(&stdout_str(&out)),
        raw,
    }
}

/// Parses pdfsig's text output (`Signature #N:` blocks of `  - Key: value` lines).
pub fn parse_pdfsig(text: &str) -> Vec<PdfsigSignature> {
    let mut sigs: Vec<PdfsigSignature> = Vec::new();
    for line in text.lines() {
        if line.starts_with("Signature #") {
            sigs.push(PdfsigSignature::default());
            continue;
        }
        let Some(sig) = sigs.last_mut() else { continue };
        let Some(item) = line.trim_start().strip_prefix("- ") else {
            continue;
        };
        match item {
            "Total document signed" => sig.total_document_signed = true,
            "Not total document signed" => sig.total_document_signed = false,
            _ => {
                let Some((k, v)) = item.split_once(": ") else {
                    continue;
                };
                let v = v.trim().to_string();
                match k {
                    "Signature Field Name" => sig.field_name = Some(v),
                    "Signer Certificate Common Name" => sig.signer_cn = Some(v),
                    "Signer full Distinguished Name" => sig.signer_dn = Some(v),
                    "Signing Time" => sig.signing_time = Some(v),
                    "Signing Hash Algorithm" => sig.hash_algorithm = Some(v),
                    "Signature Type" => sig.signature_type = Some(v),
                    "Signed Ranges" => sig.signed_ranges = parse_ranges(&v),
                    "Signature Validation" => sig.signature_validation = v,
                    "Certificate Validation" => sig.certificate_validation = v,
                    _ => {}
                }
            }
        }
    }
    sigs
}

fn parse_ranges(v: &str) -> Vec<(u64, u64)> {
    // "[0 - 1446], [9086 - 9755]"
    v.split(']')
        .filter_map(|part| {
            let inner = part.trim_start_matches([',', ' ', '[']);
            let (a, b) = inner.split_once(" - ")?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        })
        .collect()
}
