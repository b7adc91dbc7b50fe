//! Test PKIs, all from the library's generator `signgate::pki::demo` (also behind `signgate pki
//! demo`): a fresh one per test or a live one served by `signgate pki serve`. Certificates the
//! demo PKI does not ship (expired, revoked, no signing usage, weak keys, untrusted roots) are
//! issued with [`signgate::pki::demo::LeafSpec`] and revoked later with `DemoPki::revoke`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{free_port, tempdir, SigngateServer};

/// Generates a demo PKI (CONTRACTS §2, CA keys RSA-2048 for speed) into a fresh temp dir,
/// with `base_url` in its CRL DP / AIA URLs.
pub fn generate_demo_pki(base_url: &str) -> (tempfile::TempDir, signgate::pki::demo::DemoPki) {
    use signgate::pki::demo::{generate, DemoOptions};
    let tmp = tempdir();
    let opts = DemoOptions {
        root_key_bits: 2048,
        issuing_key_bits: 2048,
        ..DemoOptions::with_base_url(base_url)
    };
    let pki = generate(tmp.path(), &opts).expect("generate demo PKI");
    (tmp, pki)
}

/// A generated demo PKI served live by `signgate pki serve` on its base-url port (OCSP, CRLs,
/// CA certificates), so signatures by its leaves can reach TOTAL_PASSED. Keep one per test
/// module in a `static OnceLock` (generation takes 1-3 s).
pub struct LivePki {
    /// The PKI, able to issue more leaves ([`LivePki::issue`]).
    pub pki: Mutex<signgate::pki::demo::DemoPki>,
    /// Its folder (`root-ca.pem`, `issuing-ca.pem`, `tsa.p12`, `agency-signer.p12`, …).
    pub dir: PathBuf,
    /// The publication server.
    pub server: SigngateServer,
    _tmp: tempfile::TempDir,
}

impl LivePki {
    /// Generates the PKI for a free port and starts `signgate pki serve` on it.
    pub fn start() -> LivePki {
        let port = free_port();
        let (tmp, pki) = generate_demo_pki(&format!("http://127.0.0.1:{port}/"));
        let dir = tmp.path().to_path_buf();
        let server = SigngateServer::pki_serve(&dir, port);
        LivePki {
            pki: Mutex::new(pki),
            dir,
            server,
            _tmp: tmp,
        }
    }

    /// A file of the PKI folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `root-ca.pem`, the trust anchor.
    pub fn root(&self) -> PathBuf {
        self.path("root-ca.pem")
    }

    /// Issues a leaf per `spec` into `DIR/FILE.p12` (password `demo`); subjects must be unique.
    pub fn issue(
        &self,
        spec: &signgate::pki::demo::LeafSpec,
        file: &str,
    ) -> signgate::pki::demo::IssuedLeaf {
        let p12 = self.path(&format!("{file}.p12"));
        self.pki
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .issue_leaf(spec, &p12)
            .unwrap_or_else(|e| panic!("issue {file}: {e}"))
    }
}

/// Writes `leaf`'s key and certificate as PEM files `DIR/FILE.key` / `DIR/FILE.pem`
/// (for `openssl cms -sign` and pyHanko); returns (key, cert).
pub fn leaf_pem_files(
    leaf: &signgate::pki::demo::IssuedLeaf,
    dir: &Path,
    file: &str,
) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{file}.key"));
    let cert = dir.join(format!("{file}.pem"));
    std::fs::write(&key, leaf.key.private_key_to_pem_pkcs8().expect("key PEM")).unwrap();
    std::fs::write(&cert, leaf.certificate.to_pem().expect("cert PEM")).unwrap();
    (key, cert)
}
