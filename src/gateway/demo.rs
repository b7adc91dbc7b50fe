//! The demo gateway's built-in assets: the demo PKI files it signs and verifies with and the
//! demo seal, compiled into the binary so `signgate serve` works from any folder.
//!
//! At start-up they are written into `DATA/demo/` (the key store and the publication point
//! work on files); the folder is rewritten on every start, so it always matches the binary.

use std::path::{Path, PathBuf};

/// Base URL the demo certificates name for their CRLs, CA certificates and OCSP responder.
pub const PUBLICATION_BASE_URL: &str = crate::pki::demo::DEFAULT_BASE_URL;

/// Address the demo publication point is served on when that port is free.
pub const PUBLICATION_LISTEN: &str = "127.0.0.1:8089";

/// Password of the demo PKCS#12 files (CONTRACTS §2).
pub const PASSWORD: &str = "demo";

/// Name of the demo agency key.
pub const KEY_NAME: &str = "demo-agency";

/// Agency of the demo key and client.
pub const AGENCY: &str = "demo";

/// Diameter of the demo seal in millimetres.
pub const SEAL_SIZE_MM: f64 = 36.0;

/// The embedded files, by name.
const FILES: &[(&str, &[u8])] = &[
    (
        "agency-signer.p12",
        include_bytes!("../../certs/demo/agency-signer.p12"),
    ),
    (
        "root-ca.pem",
        include_bytes!("../../certs/demo/root-ca.pem"),
    ),
    (
        "issuing-ca.pem",
        include_bytes!("../../certs/demo/issuing-ca.pem"),
    ),
    (
        "root-ca.crl",
        include_bytes!("../../certs/demo/root-ca.crl"),
    ),
    (
        "issuing-ca.crl",
        include_bytes!("../../certs/demo/issuing-ca.crl"),
    ),
    ("index.txt", include_bytes!("../../certs/demo/index.txt")),
    ("ocsp.p12", include_bytes!("../../certs/demo/ocsp.p12")),
    ("seal.png", include_bytes!("../../assets/seal.png")),
];

/// Where the demo files were written.
#[derive(Debug, Clone)]
pub struct DemoAssets {
    /// The folder (`DATA/demo`), also the publication point's CA folder.
    pub dir: PathBuf,
}

impl DemoAssets {
    /// Writes the embedded files into `data_dir/demo` (folders 0700, files 0600).
    pub fn write(data_dir: &Path) -> Result<Self, std::io::Error> {
        let dir = data_dir.join("demo");
        crate::fsio::create_private_dir(&dir)?;
        for (name, bytes) in FILES {
            let path = dir.join(name);
            if std::fs::read(&path).ok().as_deref() != Some(*bytes) {
                // Atomic, and 0600 like every file of the data folder.
                crate::fsio::write_output(&path, bytes).map_err(std::io::Error::other)?;
            }
        }
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        Ok(Self { dir })
    }

    /// The agency signing key (PKCS#12, password [`PASSWORD`]).
    pub fn agency_key(&self) -> PathBuf {
        self.dir.join("agency-signer.p12")
    }

    /// The demo seal (PNG).
    pub fn seal(&self) -> PathBuf {
        self.dir.join("seal.png")
    }

    /// The trust anchor.
    pub fn root_ca(&self) -> PathBuf {
        self.dir.join("root-ca.pem")
    }

    /// The OCSP responder's key (PKCS#12, password [`PASSWORD`]).
    pub fn ocsp_key(&self) -> PathBuf {
        self.dir.join("ocsp.p12")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_written_and_usable() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let assets = DemoAssets::write(tmp.path()).expect("write");
        let key = crate::keys::Pkcs12Key::open(&assets.agency_key(), PASSWORD).expect("key");
        assert!(
            crate::pki::subject_common_name(crate::keys::KeySource::certificate(&key)).is_some()
        );
        assert!(std::fs::read(assets.seal())
            .expect("seal")
            .starts_with(b"\x89PNG"));
        // A second write over the same folder is a no-op, not an error.
        DemoAssets::write(tmp.path()).expect("rewrite");
    }
}
