//! Bounded inspection of zipped attachments (zip bombs).
//!
//! A zip attachment (declared `application/zip` or starting with a `PK` header, which includes
//! DOCX/ODT files) is walked through its central directory and every entry is inflated into
//! a counter, never into memory, stopping as soon as the entry count, the total decompressed
//! size or the decompression ratio passes [`Limits`](super::Limits). Declared sizes are not
//! trusted: the count is of bytes actually produced. Entries that cannot be bounded that way
//! (encrypted, ZIP64, methods other than stored and deflate) are refused. Nested archives are
//! counted as bytes, not opened.

use std::io::Read;

use super::Limits;
use crate::code::ErrorCode;

/// Why a zipped attachment is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZipRefusal {
    /// The bytes are not a zip archive this reader can walk.
    #[error("not a readable zip archive ({0})")]
    Malformed(&'static str),
    /// ZIP64 archives cannot be bounded here.
    #[error("ZIP64 archives are not inspected; refused")]
    Zip64,
    /// An encrypted entry cannot be inflated to count it.
    #[error("an encrypted entry cannot be inspected; refused")]
    Encrypted,
    /// An entry uses a compression method other than stored or deflate.
    #[error("compression method {0} cannot be inspected; refused")]
    Method(u16),
    /// More entries than [`Limits::max_zip_entries`].
    #[error("{entries} entries exceed the limit of {limit}")]
    TooManyEntries {
        /// Entries in the archive.
        entries: usize,
        /// The limit.
        limit: usize,
    },
    /// The entries decompress to more than the size or ratio limit allows.
    #[error("decompresses to more than {budget} bytes (limits: {max} bytes, ratio {ratio}:1)")]
    TooLarge {
        /// The budget for this archive: the smaller of the two limits.
        budget: u64,
        /// [`Limits::max_zip_uncompressed_bytes`].
        max: u64,
        /// [`Limits::max_zip_ratio`].
        ratio: u64,
    },
}

impl ZipRefusal {
    /// EDXML_LIMIT_EXCEEDED for a limit, EDXML_INVALID for an archive that cannot be read
    /// or bounded.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooManyEntries { .. } | Self::TooLarge { .. } => ErrorCode::EdxmlLimitExceeded,
            Self::Malformed(_) | Self::Zip64 | Self::Encrypted | Self::Method(_) => {
                ErrorCode::EdxmlInvalid
            }
        }
    }
}

/// True when the attachment is to be inspected as a zip archive.
pub fn is_zip(content_type: &str, data: &[u8]) -> bool {
    let ct = content_type.trim();
    ct.eq_ignore_ascii_case("application/zip")
        || ct.eq_ignore_ascii_case("application/x-zip-compressed")
        || data.starts_with(b"PK\x03\x04")
        || data.starts_with(b"PK\x05\x06")
}

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

/// What an archive holds, once bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipSummary {
    /// Number of entries.
    pub entries: usize,
    /// Bytes the entries decompress to.
    pub uncompressed: u64,
}

/// Walks `data` as a zip archive within `limits`; `Err` says why it is refused.
pub fn inspect(data: &[u8], limits: &Limits) -> Result<ZipSummary, ZipRefusal> {
    const EOCD: u32 = 0x0605_4b50;
    const CENTRAL: u32 = 0x0201_4b50;
    const LOCAL: u32 = 0x0403_4b50;
    let malformed = ZipRefusal::Malformed;
    let search_from = data.len().saturating_sub(22 + 65_535);
    let eocd = (search_from..=data.len().saturating_sub(22))
        .rev()
        .find(|&i| u32_at(data, i) == Some(EOCD))
        .ok_or_else(|| malformed("no end of central directory"))?;
    let total = u16_at(data, eocd + 10).ok_or_else(|| malformed("short"))? as usize;
    let cd_size = u32_at(data, eocd + 12).ok_or_else(|| malformed("short"))?;
    let cd_offset = u32_at(data, eocd + 16).ok_or_else(|| malformed("short"))?;
    if total == 0xFFFF || cd_size == u32::MAX || cd_offset == u32::MAX {
        return Err(ZipRefusal::Zip64);
    }
    if total > limits.max_zip_entries {
        return Err(ZipRefusal::TooManyEntries {
            entries: total,
            limit: limits.max_zip_entries,
        });
    }
    let budget = limits
        .max_zip_uncompressed_bytes
        .min((data.len() as u64).saturating_mul(limits.max_zip_ratio));
    let mut uncompressed = 0u64;
    let mut at = cd_offset as usize;
    for _ in 0..total {
        if u32_at(data, at) != Some(CENTRAL) {
            return Err(malformed("bad central directory entry"));
        }
        let field = |off: usize| u16_at(data, at + off).ok_or_else(|| malformed("short entry"));
        let flags = field(8)?;
        let method = field(10)?;
        let compressed = u32_at(data, at + 20).ok_or_else(|| malformed("short entry"))? as usize;
        let (name_len, extra_len, comment_len) = (
            field(28)? as usize,
            field(30)? as usize,
            field(32)? as usize,
        );
        let local = u32_at(data, at + 42).ok_or_else(|| malformed("short entry"))? as usize;
        at += 46 + name_len + extra_len + comment_len;
        if flags & 1 != 0 {
            return Err(ZipRefusal::Encrypted);
        }
        if u32_at(data, local) != Some(LOCAL) {
            return Err(malformed("bad local header"));
        }
        let start = local
            + 30
            + u16_at(data, local + 26).ok_or_else(|| malformed("short"))? as usize
            + u16_at(data, local + 28).ok_or_else(|| malformed("short"))? as usize;
        let body = data
            .get(start..start.saturating_add(compressed))
            .ok_or_else(|| malformed("entry data outside the archive"))?;
        let left = budget.saturating_sub(uncompressed);
        let produced = match method {
            0 => body.len() as u64,
            8 => std::io::copy(
                &mut flate2::read::DeflateDecoder::new(body).take(left + 1),
                &mut std::io::sink(),
            )
            .map_err(|_| malformed("corrupt deflate data"))?,
            other => return Err(ZipRefusal::Method(other)),
        };
        uncompressed += produced;
        if uncompressed > budget {
            return Err(ZipRefusal::TooLarge {
                budget,
                max: limits.max_zip_uncompressed_bytes,
                ratio: limits.max_zip_ratio,
            });
        }
    }
    Ok(ZipSummary {
        entries: total,
        uncompressed,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A zip archive of `entries` (name, bytes), deflated, written by hand (no zip crate).
    pub(crate) fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in entries {
            let mut enc =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(data).unwrap();
            let comp = enc.finish().unwrap();
            let mut crc = flate2::Crc::new();
            crc.update(data);
            let offset = out.len() as u32;
            let common = |v: &mut Vec<u8>| {
                v.extend_from_slice(&20u16.to_le_bytes());
                v.extend_from_slice(&0u16.to_le_bytes());
                v.extend_from_slice(&8u16.to_le_bytes());
                v.extend_from_slice(&[0; 4]);
                v.extend_from_slice(&crc.sum().to_le_bytes());
                v.extend_from_slice(&(comp.len() as u32).to_le_bytes());
                v.extend_from_slice(&(data.len() as u32).to_le_bytes());
                v.extend_from_slice(&(name.len() as u16).to_le_bytes());
                v.extend_from_slice(&0u16.to_le_bytes());
            };
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            common(&mut out);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&comp);
            central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            central.extend_from_slice(&20u16.to_le_bytes());
            common(&mut central);
            // comment length, disk number, internal and external attributes
            central.extend_from_slice(&[0; 10]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    #[test]
    fn ordinary_archives_pass_and_bombs_are_refused() {
        let text = b"bao cao thang 7, du lieu tong hop ".repeat(20);
        let ok = zip(&[("a.txt", &text), ("b.txt", b"xyz")]);
        assert_eq!(
            inspect(&ok, &Limits::default()),
            Ok(ZipSummary {
                entries: 2,
                uncompressed: text.len() as u64 + 3
            })
        );
        // 64 MiB of zeros deflates to ~64 KiB: a ratio of ~1000:1.
        let zeros = vec![0u8; 64 << 20];
        let bomb = zip(&[("zeros.bin", &zeros)]);
        assert!(bomb.len() < 200_000);
        let e = inspect(&bomb, &Limits::default()).unwrap_err();
        assert!(matches!(e, ZipRefusal::TooLarge { .. }), "{e}");
        assert_eq!(e.code(), ErrorCode::EdxmlLimitExceeded);
        let many: Vec<(String, Vec<u8>)> = (0..20).map(|i| (format!("{i}"), vec![1u8])).collect();
        let refs: Vec<(&str, &[u8])> = many
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        let few = Limits {
            max_zip_entries: 10,
            ..Limits::default()
        };
        assert_eq!(
            inspect(&zip(&refs), &few),
            Err(ZipRefusal::TooManyEntries {
                entries: 20,
                limit: 10
            })
        );
        let broken = inspect(b"PK\x03\x04 truncated", &Limits::default()).unwrap_err();
        assert!(matches!(broken, ZipRefusal::Malformed(_)), "{broken}");
        assert_eq!(broken.code(), ErrorCode::EdxmlInvalid);
    }
}
