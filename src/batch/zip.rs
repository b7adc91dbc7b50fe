//! The byte layout of a batch's ZIP archive (APPNOTE.TXT 6.3.10, the PKWARE ZIP format): stored
//! entries (method 0; signed PDFs are already compressed) whose CRC-32 and sizes are known
//! before each entry's data, so the archive is written front to back in one pass with no data
//! descriptors, and its length is known before the first byte. No ZIP64: an archive is at most
//! 4 GiB and 65 535 entries ([`ZipLayoutError`] otherwise). This module writes headers only; reading
//! the files and sending the bytes is the caller's job.

/// Local file header signature (APPNOTE 4.3.7).
const LOCAL_HEADER: u32 = 0x0403_4b50;
/// Central directory file header signature (4.3.12).
const CENTRAL_HEADER: u32 = 0x0201_4b50;
/// End of central directory signature (4.3.16).
const END_OF_DIRECTORY: u32 = 0x0605_4b50;
/// Fixed part of a local header.
const LOCAL_FIXED: u64 = 30;
/// Fixed part of a central directory header.
const CENTRAL_FIXED: u64 = 46;
/// The end of central directory record.
const END_FIXED: u64 = 22;
/// Version needed to extract: 2.0 (stored entries, plain names).
const VERSION_NEEDED: u16 = 20;
/// Version made by: UNIX (3) << 8 | 3.0, so `unzip` applies the permission bits below.
const VERSION_MADE_BY: u16 = (3 << 8) | 30;
/// External attributes: a regular file, `rw-r--r--`.
const EXTERNAL_ATTRIBUTES: u32 = 0o100_644 << 16;
/// Longest entry name accepted.
const MAX_NAME: usize = 255;

/// Why an archive cannot be laid out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ZipLayoutError {
    /// Past what a ZIP without ZIP64 holds.
    #[error(
        "the archive would be {bytes} bytes in {entries} entries; at most 4 GiB and 65535 entries"
    )]
    TooLarge {
        /// Its length.
        bytes: u64,
        /// Its entries.
        entries: usize,
    },
}

/// An entry name made safe to extract anywhere: [`safe_file_name`] of at most 255 bytes.
pub fn entry_name(raw: &str) -> String {
    safe_file_name(raw, MAX_NAME)
}

/// The last path segment of `raw`, reduced to `[A-Za-z0-9._-]`, with no leading dot, never
/// empty, at most `max` bytes: a name safe to write into any folder.
pub fn safe_file_name(raw: &str, max: usize) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.is_empty() {
        "document".into()
    } else {
        cleaned.into()
    }
}

/// The whole archive's length for entries of these names and sizes, or why it cannot be
/// written.
pub fn archive_len<'a>(
    entries: impl IntoIterator<Item = (&'a str, u64)>,
) -> Result<u64, ZipLayoutError> {
    let mut total = END_FIXED;
    let mut count = 0;
    for (name, size) in entries {
        let name = name.len() as u64;
        total = total.saturating_add(LOCAL_FIXED + name + size + CENTRAL_FIXED + name);
        count += 1;
    }
    if total > u64::from(u32::MAX) || count > usize::from(u16::MAX) {
        return Err(ZipLayoutError::TooLarge {
            bytes: total,
            entries: count,
        });
    }
    Ok(total)
}

/// A date and time in MS-DOS form (APPNOTE 4.4.6): `(time, date)`, two-second resolution,
/// 1980 to 2107.
pub fn dos_time(at: time::OffsetDateTime) -> (u16, u16) {
    let year = at.year().clamp(1980, 2107) as u16;
    let time =
        (u16::from(at.hour()) << 11) | (u16::from(at.minute()) << 5) | (u16::from(at.second()) / 2);
    let date = ((year - 1980) << 9) | (u16::from(u8::from(at.month())) << 5) | u16::from(at.day());
    (time, date)
}

/// One written entry, for the central directory.
struct Written {
    name: String,
    crc32: u32,
    size: u32,
    offset: u32,
}

/// Writes an archive's headers in order: [`ZipWriter::entry`] before each entry's data (the
/// caller sends exactly `size` bytes after it), then [`ZipWriter::finish`].
pub struct ZipWriter {
    dos: (u16, u16),
    offset: u64,
    written: Vec<Written>,
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

impl ZipWriter {
    /// A writer whose entries are all dated `dos` ([`dos_time`]).
    pub fn new(dos: (u16, u16)) -> Self {
        Self {
            dos,
            offset: 0,
            written: Vec::new(),
        }
    }

    /// The local header of the next entry: `name` (already made safe with [`entry_name`]),
    /// `size` bytes whose CRC-32 is `crc32`.
    pub fn entry(&mut self, name: &str, size: u64, crc32: u32) -> Result<Vec<u8>, ZipLayoutError> {
        let too_large = || ZipLayoutError::TooLarge {
            bytes: self.offset.saturating_add(size),
            entries: self.written.len() + 1,
        };
        let size32 = u32::try_from(size).map_err(|_| too_large())?;
        let offset = u32::try_from(self.offset).map_err(|_| too_large())?;
        let name_len = u16::try_from(name.len()).map_err(|_| too_large())?;
        let mut out = Vec::with_capacity(LOCAL_FIXED as usize + name.len());
        put32(&mut out, LOCAL_HEADER);
        put16(&mut out, VERSION_NEEDED);
        put16(&mut out, 0); // flags
        put16(&mut out, 0); // stored
        put16(&mut out, self.dos.0);
        put16(&mut out, self.dos.1);
        put32(&mut out, crc32);
        put32(&mut out, size32);
        put32(&mut out, size32);
        put16(&mut out, name_len);
        put16(&mut out, 0); // extra field
        out.extend_from_slice(name.as_bytes());
        self.offset += out.len() as u64 + size;
        self.written.push(Written {
            name: name.to_string(),
            crc32,
            size: size32,
            offset,
        });
        Ok(out)
    }

    /// The central directory and its end record, after the last entry's data.
    pub fn finish(self) -> Result<Vec<u8>, ZipLayoutError> {
        let too_large = || ZipLayoutError::TooLarge {
            bytes: self.offset,
            entries: self.written.len(),
        };
        let count = u16::try_from(self.written.len()).map_err(|_| too_large())?;
        let start = u32::try_from(self.offset).map_err(|_| too_large())?;
        let mut out = Vec::new();
        for w in &self.written {
            put32(&mut out, CENTRAL_HEADER);
            put16(&mut out, VERSION_MADE_BY);
            put16(&mut out, VERSION_NEEDED);
            put16(&mut out, 0); // flags
            put16(&mut out, 0); // stored
            put16(&mut out, self.dos.0);
            put16(&mut out, self.dos.1);
            put32(&mut out, w.crc32);
            put32(&mut out, w.size);
            put32(&mut out, w.size);
            put16(&mut out, w.name.len() as u16);
            put16(&mut out, 0); // extra field
            put16(&mut out, 0); // comment
            put16(&mut out, 0); // disk number start
            put16(&mut out, 0); // internal attributes
            put32(&mut out, EXTERNAL_ATTRIBUTES);
            put32(&mut out, w.offset);
            out.extend_from_slice(w.name.as_bytes());
        }
        let directory = u32::try_from(out.len()).map_err(|_| too_large())?;
        start.checked_add(directory).ok_or_else(too_large)?;
        put32(&mut out, END_OF_DIRECTORY);
        put16(&mut out, 0); // this disk
        put16(&mut out, 0); // disk with the directory
        put16(&mut out, count);
        put16(&mut out, count);
        put32(&mut out, directory);
        put32(&mut out, start);
        put16(&mut out, 0); // comment
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crc(data: &[u8]) -> u32 {
        let mut c = flate2::Crc::new();
        c.update(data);
        c.sum()
    }

    #[test]
    fn names_are_one_plain_segment() {
        assert_eq!(entry_name("../../etc/passwd"), "passwd");
        assert_eq!(entry_name("C:\\x\\Quyết định.pdf"), "Quy_t___nh.pdf");
        assert_eq!(entry_name(".."), "document");
        assert_eq!(entry_name(".hidden"), "hidden");
        assert_eq!(entry_name(&"a".repeat(400)).len(), MAX_NAME);
    }

    #[test]
    fn the_length_is_known_before_writing() {
        let files: [(&str, &[u8]); 2] = [("0000-a.pdf", b"hello"), ("0001-b.pdf", b"")];
        let mut zip = ZipWriter::new(dos_time(time::macros::datetime!(2025-07-01 09:30:04 UTC)));
        let mut out = Vec::new();
        for (name, data) in files {
            out.extend(
                zip.entry(name, data.len() as u64, crc(data))
                    .expect("entry"),
            );
            out.extend_from_slice(data);
        }
        out.extend(zip.finish().expect("finish"));
        let expected = archive_len(files.iter().map(|(n, d)| (*n, d.len() as u64)));
        assert_eq!(expected, Ok(out.len() as u64));
        assert!(out.starts_with(&LOCAL_HEADER.to_le_bytes()));
        // The end record points at the central directory.
        let end = &out[out.len() - 22..];
        assert_eq!(end[..4], END_OF_DIRECTORY.to_le_bytes());
        let start = u32::from_le_bytes(end[16..20].try_into().expect("4 bytes")) as usize;
        assert_eq!(out[start..start + 4], CENTRAL_HEADER.to_le_bytes());
    }

    #[test]
    fn dos_time_packs_fields() {
        let (t, d) = dos_time(time::macros::datetime!(2025-07-01 09:30:04 UTC));
        assert_eq!(t, (9 << 11) | (30 << 5) | 2);
        assert_eq!(d, (45 << 9) | (7 << 5) | 1);
    }

    #[test]
    fn too_large_is_refused_not_wrapped() {
        let big = [("a", u64::from(u32::MAX))];
        assert!(matches!(
            archive_len(big.iter().copied()),
            Err(ZipLayoutError::TooLarge { .. })
        ));
        let mut zip = ZipWriter::new((0, 0));
        assert!(zip.entry("a", u64::from(u32::MAX) + 1, 0).is_err());
    }
}
