//! Generated documents for benchmarks and tests: PDFs of a chosen size, small XML filings,
//! and a throwaway RSA or P-256 key with a signing certificate. Deterministic except for the key.

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::KeyUsage;
use openssl::x509::{X509NameBuilder, X509};

use crate::keys::{KeyError, Pkcs12Key};

/// A one-page PDF (classic xref table) of about `approx_len` bytes; `n` varies its text.
pub fn pdf(n: usize, approx_len: usize) -> Vec<u8> {
    let mut content = String::from("BT\n/F1 9 Tf\n11 TL\n40 800 Td\n");
    let mut line = 0usize;
    while content.len() + 600 < approx_len {
        content.push_str(&format!(
            "(Document {n} line {line}: Quyet dinh ve viec phe duyet ket qua giai quyet thu tuc hanh chinh.) Tj T*\n"
        ));
        line += 1;
    }
    content.push_str("ET\n");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>".to_string(),
        format!("<< /Length {} >>\nstream\n{content}endstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A small XML tax declaration (a few KB) numbered `n`, in the layout the tax XML-DSig
/// profile signs (`HSoKhaiThue` with an `id`, an empty `CKyDTu` for the Signature).
pub fn tax_declaration(n: usize) -> Vec<u8> {
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<HSoThueDTu xmlns=\"http://kekhaithue.gdt.gov.vn/TKhaiThue\">\n<HSoKhaiThue id=\"ID_{n}\">\n<TTinChung><MST>0100686209-{:03}</MST><KyKKhai>2026-Q3</KyKKhai></TTinChung>\n<CTieuTKhaiChinh>\n",
        n % 1000
    );
    for i in 0..60 {
        xml.push_str(&format!(
            "<ct{i:02}>{}</ct{i:02}>\n",
            (n * 7919 + i * 104729) % 1_000_000_000
        ));
    }
    // CKyDTu is where the tax profile's XML-DSig Signature goes.
    xml.push_str("</CTieuTKhaiChinh>\n</HSoKhaiThue>\n<CKyDTu></CKyDTu>\n</HSoThueDTu>\n");
    xml.into_bytes()
}

/// PKCS#12 DER, PKCS#8 key PEM and certificate PEM of a throwaway key.
pub type ThrowawayKey = (Vec<u8>, Vec<u8>, Vec<u8>);

/// The kind of a throwaway benchmark key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrowawayKind {
    /// RSA with this many bits.
    Rsa(u32),
    /// ECDSA on NIST P-256 (prime256v1).
    P256,
}

/// A fresh RSA key with a self-signed signing certificate (digitalSignature, nonRepudiation),
/// returned as PKCS#12 DER with password `bench`, plus the key and certificate in PEM.
pub fn throwaway_rsa_pkcs12(bits: u32) -> Result<ThrowawayKey, openssl::error::ErrorStack> {
    throwaway_pkcs12(ThrowawayKind::Rsa(bits))
}

/// A fresh key of `kind` with a self-signed signing certificate (digitalSignature,
/// nonRepudiation), as PKCS#12 DER with password `bench`, plus the key and certificate in PEM.
pub fn throwaway_pkcs12(kind: ThrowawayKind) -> Result<ThrowawayKey, openssl::error::ErrorStack> {
    let key = match kind {
        ThrowawayKind::Rsa(bits) => PKey::from_rsa(Rsa::generate(bits)?)?,
        ThrowawayKind::P256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            PKey::from_ec_key(EcKey::generate(&group)?)?
        }
    };
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "signgate bench")?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = BigNum::from_u32(1)?.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    let (from, to) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(365)?);
    b.set_not_before(&from)?;
    b.set_not_after(&to)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .non_repudiation()
            .build()?,
    )?;
    b.sign(&key, MessageDigest::sha256())?;
    let cert = b.build();
    let p12 = Pkcs12::builder()
        .name("bench")
        .pkey(&key)
        .cert(&cert)
        .build2("bench")?
        .to_der()?;
    Ok((p12, key.private_key_to_pem_pkcs8()?, cert.to_pem()?))
}

/// Loads [`throwaway_rsa_pkcs12`] as a key source.
pub fn throwaway_rsa_key(bits: u32) -> Result<Pkcs12Key, KeyError> {
    let (p12, _, _) =
        throwaway_rsa_pkcs12(bits).map_err(|e| KeyError::SignFailed(e.to_string()))?;
    Pkcs12Key::from_der(&p12, "bench", "throwaway key")
}

/// CPU time this process has used so far, all threads (user and system).
///
/// Benchmarks compare CPU per document with CPU per raw signature: on a shared machine the
/// wall-clock rates move with the neighbours' load, the CPU each operation costs much less.
pub fn process_cpu_time() -> std::time::Duration {
    cpu_clock(rustix::time::ClockId::ProcessCPUTime)
}

/// The calling thread's CPU time so far (user and system).
pub fn thread_cpu_time() -> std::time::Duration {
    cpu_clock(rustix::time::ClockId::ThreadCPUTime)
}

fn cpu_clock(id: rustix::time::ClockId) -> std::time::Duration {
    let t = rustix::time::clock_gettime(id);
    std::time::Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The raw private-key rate: `threads` threads sign distinct 32-byte messages with `key` for
/// about `duration`; returns signatures per second (the ceiling for any batch).
pub fn raw_sign_rate(
    key: &dyn crate::keys::KeySource,
    scheme: crate::pki::alg::SignatureScheme,
    threads: usize,
    duration: std::time::Duration,
) -> Result<f64, KeyError> {
    let started = std::time::Instant::now();
    let counts = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|t| {
                scope.spawn(move || -> Result<u64, KeyError> {
                    let mut n = 0u64;
                    let mut message = [0u8; 32];
                    message[0] = t as u8;
                    while started.elapsed() < duration {
                        message[1..9].copy_from_slice(&n.to_le_bytes());
                        key.sign_message(scheme, &message)?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Ok(0)))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let total: u64 = counts.iter().sum();
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_pdf_has_the_requested_size_and_parses() {
        let pdf = super::pdf(3, 40_000);
        assert!(pdf.len() > 38_000 && pdf.len() < 42_000, "{}", pdf.len());
        let opts = crate::pdf::PdfSignOptions::new(time::OffsetDateTime::UNIX_EPOCH);
        assert!(crate::pdf::prepare(&pdf, &opts).is_ok());
    }
}
