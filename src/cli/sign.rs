//! `signgate sign`: one document, one signature.

use std::path::PathBuf;

use clap::Args;
use time::OffsetDateTime;

use super::CliError;
use crate::fsio;
use crate::pdf::stamp::Stamp;
use crate::pdf::{PageSelector, VisibleSignature};
use crate::sign::{self, Format, Level, PdfDetails, SignRequest};

/// Arguments of `signgate sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    #[command(flatten)]
    key: super::KeyArgs,
    /// Document to sign (`-` for standard input).
    #[arg(long = "in")]
    input: PathBuf,
    /// Output: the signed PDF, or the detached .p7s for CMS (`-` for standard output).
    #[arg(long)]
    out: PathBuf,
    /// Container: pdf (PAdES), cms (detached CAdES .p7s) or xml (XML-DSig); default: PAdES for
    /// a PDF, CMS for an output named *.p7s/*.p7m, XML-DSig for XML; anything else is refused.
    #[arg(long, value_parser = ["pdf", "cms", "xml"])]
    format: Option<String>,
    /// XML signature profile: tax, social-insurance, e-invoice, edxml or enveloped; default from
    /// the root element.
    #[arg(long, value_parser = ["tax", "social-insurance", "e-invoice", "edxml", "enveloped"])]
    profile: Option<String>,
    #[command(flatten)]
    signature: super::SignatureArgs,
    /// The official's handwritten signature (PNG, transparent background) for a visible signature.
    #[arg(long, conflicts_with_all = ["stamp", "attachment_stamp", "copy_stamp"])]
    signature_image: Option<PathBuf>,
    /// The agency's seal (red PNG); placed over the left third of the last signature on the page.
    #[arg(long, conflicts_with_all = ["attachment_stamp", "copy_stamp"])]
    stamp: Option<PathBuf>,
    /// The seal's real diameter in millimetres.
    #[arg(long, default_value_t = 36.0, requires = "stamp")]
    seal_size_mm: f64,
    /// Page of the visible signature or seal: 1-based, -1 for the last page.
    #[arg(long, allow_negative_numbers = true, default_value_t = -1)]
    page: i64,
    /// Rectangle x,y,w,h in points from the bottom-left of the page as displayed.
    #[arg(long)]
    rect: Option<String>,
    /// Text stamp for an attachment (Decree 30/2020), top right of page 1.
    #[arg(long, conflicts_with = "copy_stamp")]
    attachment_stamp: bool,
    /// Document number shown in the attachment stamp, e.g. `123/QĐ-UBND`.
    #[arg(long, requires = "attachment_stamp")]
    doc_number: Option<String>,
    /// Text stamp for an electronic copy (Decree 30/2020), top right of page 1.
    #[arg(long)]
    copy_stamp: bool,
}

pub fn run(args: SignArgs) -> Result<u8, CliError> {
    let format =
        Format::parse_choice(args.format.as_deref()).map_err(|e| CliError::usage(e.to_string()))?;
    let xml_profile = args
        .profile
        .as_deref()
        .map(str::parse::<crate::xml::Profile>)
        .transpose()
        .map_err(CliError::usage)?;
    if args.signature.level == Level::BT && args.signature.tsa.is_none() {
        return Err(CliError::usage("--level b-t needs --tsa URL"));
    }
    let rect = args.rect.as_deref().map(parse_rect).transpose()?;
    let page = match args.page {
        -1 => PageSelector::Last,
        n if n >= 1 => PageSelector::Number(
            u32::try_from(n).map_err(|_| CliError::usage("--page is too large"))?,
        ),
        _ => {
            return Err(CliError::usage(
                "--page must be 1 or more, or -1 for the last page",
            ))
        }
    };

    let large = large_file_head(&args.input)?;
    let input = match &large {
        Some(head) => head.clone(),
        None => fsio::read_input(&args.input)?,
    };
    let key = super::open_key(&args.key)?;
    let signing_time = OffsetDateTime::now_utc().to_offset(crate::clock::VIETNAM);
    let visible = visible_signature(&args, key.as_ref(), page, rect, signing_time)?;
    let name = |p: &std::path::Path| {
        (p != std::path::Path::new("-")).then(|| p.to_string_lossy().into_owned())
    };
    let (input_name, output_name) = (name(&args.input), name(&args.out));
    let resolved = sign::select_format(
        &input,
        &sign::FormatHints {
            explicit: format.or(xml_profile.map(|_| Format::Xml)),
            input_name: input_name.as_deref(),
            output_name: output_name.as_deref(),
        },
    )
    .map_err(crate::Error::from)?;
    if xml_profile.is_some() && resolved != Format::Xml {
        return Err(CliError::usage("--profile applies to XML input only"));
    }
    if visible.is_some() && resolved != Format::Pdf {
        return Err(CliError::usage(
            "visible signatures and stamps need a PDF input",
        ));
    }
    let timestamper = args.signature.timestamper();
    let request = SignRequest {
        format: Some(resolved),
        level: args.signature.level,
        digest: args.signature.digest,
        rsa_padding: args.signature.rsa_padding,
        signing_time,
        timestamper: timestamper.as_ref().map(|t| t as &dyn sign::TimeStamper),
        pdf: PdfDetails {
            reason: args.signature.reason.clone(),
            location: args.signature.location.clone(),
            contact_info: None,
            visible,
        },
        xml_profile,
    };
    if large.is_some() && resolved == Format::Pdf {
        sign::sign_pdf_path(&args.input, &args.out, key.as_ref(), &request)?;
        return Ok(0);
    }
    let input = match large {
        Some(_) => fsio::read_input(&args.input)?,
        None => input,
    };
    let signed = sign::sign_document(&input, key.as_ref(), &request)?;
    fsio::write_output(&args.out, &signed.bytes)?;
    Ok(0)
}

/// The first bytes of `path` when it is a regular file larger than
/// [`crate::pdf::STREAMING_THRESHOLD`] (enough to tell its format), so a large PDF is signed
/// streaming instead of being read whole; `None` otherwise.
fn large_file_head(path: &std::path::Path) -> Result<Option<Vec<u8>>, CliError> {
    use std::io::Read;
    if path == std::path::Path::new("-") {
        return Ok(None);
    }
    let fail = |e: std::io::Error| fsio::IoError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(fail)?;
    if !meta.is_file() || meta.len() <= crate::pdf::STREAMING_THRESHOLD {
        return Ok(None);
    }
    let mut head = Vec::with_capacity(1024);
    std::fs::File::open(path)
        .map_err(fail)?
        .take(1024)
        .read_to_end(&mut head)
        .map_err(fail)?;
    Ok(Some(head))
}

pub(crate) fn visible_signature(
    args: &SignArgs,
    key: &dyn crate::keys::KeySource,
    page: PageSelector,
    rect: Option<[f64; 4]>,
    at: OffsetDateTime,
) -> Result<Option<VisibleSignature>, CliError> {
    let stamp = if let Some(path) = &args.signature_image {
        Stamp::OfficialSignature {
            image_png: fsio::read_input(path)?,
        }
    } else if let Some(path) = &args.stamp {
        if !(args.seal_size_mm > 0.0 && args.seal_size_mm <= 100.0) {
            return Err(CliError::usage("--seal-size-mm must be between 0 and 100"));
        }
        Stamp::Seal {
            image_png: fsio::read_input(path)?,
            diameter_pt: args.seal_size_mm * 72.0 / 25.4,
        }
    } else if args.copy_stamp {
        Stamp::Copy {
            doc_number: args.doc_number.clone(),
        }
    } else if args.attachment_stamp {
        Stamp::Attachment {
            doc_number: args.doc_number.clone(),
        }
    } else {
        return Ok(None);
    };
    Ok(Some(stamp.visible(key.certificate(), page, rect, at)))
}

fn parse_rect(text: &str) -> Result<[f64; 4], CliError> {
    crate::pdf::parse_rect(text)
        .ok_or_else(|| CliError::usage(format!("--rect '{text}' must be x,y,w,h in points")))
}
