//! Long-term validation (`signgate extend`): PAdES B-LT adds the validation data of every
//! signature to the Document Security Store; B-LTA then adds a document time-stamp over it
//! (ETSI EN 319 142-1 §5.4), so the signatures can be validated offline years later.

use crate::error::Error;
use crate::pdf::{self, PdfSignOptions};
use crate::pki::alg::DigestAlgorithm;
use crate::sign::TimeStamper;
use crate::verify::{self, ValidationContext};

/// The level to extend to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LtvLevel {
    /// B-LT: validation data in the DSS.
    BLt,
    /// B-LTA: B-LT plus a document time-stamp.
    BLta,
}

impl std::str::FromStr for LtvLevel {
    type Err = crate::code::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "b-lt" | "blt" => Ok(Self::BLt),
            "b-lta" | "blta" => Ok(Self::BLta),
            _ => Err(crate::code::UnknownName::new("level", s, "b-lt or b-lta")),
        }
    }
}

/// Bytes reserved for a document time-stamp token.
const DOC_TIMESTAMP_SIZE: usize = 16 * 1024;

/// Extends the signed PDF `input` to `level`. Validation data is gathered through `ctx`
/// (trust lists to build paths, a fetcher for OCSP/CRLs); B-LTA needs `timestamper`.
///
/// Fails when some certificate's status cannot be established: embedding incomplete data
/// would produce a file that looks long-term verifiable but is not.
pub fn extend(
    input: &[u8],
    level: LtvLevel,
    ctx: &ValidationContext,
    timestamper: Option<&dyn TimeStamper>,
) -> Result<Vec<u8>, Error> {
    if level == LtvLevel::BLta && timestamper.is_none() {
        return Err(Error::Usage(
            "level b-lta needs a time-stamp authority (--tsa URL)".into(),
        ));
    }
    let data = verify::validation_data(input, ctx)?;
    if !data.missing.is_empty() {
        return Err(Error::Validation(data.missing.join("; ")));
    }
    let mut out = pdf::append_dss(
        input,
        &data.certificates,
        &data.evidence.ocsp,
        &data.evidence.crls,
    )?;
    if let Some(tsa) = timestamper.filter(|_| level == LtvLevel::BLta) {
        let mut opts = PdfSignOptions::new(ctx.at);
        opts.contents_size = DOC_TIMESTAMP_SIZE;
        let prepared = pdf::prepare_document_timestamp(&out, &opts)?;
        let digest = DigestAlgorithm::Sha256;
        let token = tsa.timestamp(digest, &prepared.digest(digest))?;
        out = prepared.finish(&token)?;
    }
    Ok(out)
}
