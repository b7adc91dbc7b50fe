//! Large request bodies go to disk, and large responses come from it: a body is kept in memory
//! up to `[limits] spool_threshold_kib` and spooled to a temporary file in the data folder
//! beyond that, so `POST /v1/sign` can sign a large PDF through the streaming path
//! ([`crate::sign::sign_pdf_path`]) and stream the result back with [`FileBody`].

use std::io::Write;
use std::path::Path;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

use super::AppError;
use crate::gateway::signing::Document as Input;
use crate::pki::alg::{DigestAlgorithm, Hasher};

/// Reads `body`, refusing more than `limit` bytes; above `threshold` bytes it continues into a
/// temporary file in `dir` (created if missing), hashing as it writes. Returns the body and its
/// length.
pub(super) async fn receive_counted(
    body: Body,
    limit: usize,
    threshold: u64,
    dir: &Path,
) -> Result<(Input, u64), AppError> {
    let mut body = body;
    let mut memory: Vec<u8> = Vec::new();
    let mut spool: Option<(tempfile::NamedTempFile, Hasher)> = None;
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| AppError::BadRequest(body_error(&e)))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > limit as u64 {
            return Err(AppError::PayloadTooLarge(limit));
        }
        match &mut spool {
            Some((file, hash)) => {
                hash.update(&data);
                write_blocking(file, data.to_vec()).await?;
            }
            None if total > threshold => {
                let mut file = new_spool_file(dir).await?;
                let mut hash = DigestAlgorithm::Sha256.hasher();
                memory.extend_from_slice(&data);
                hash.update(&memory);
                write_blocking(&mut file, std::mem::take(&mut memory)).await?;
                spool = Some((file, hash));
            }
            None => memory.extend_from_slice(&data),
        }
    }
    let input = match spool {
        None => Input::Memory(Bytes::from(memory)),
        Some((file, hash)) => Input::File {
            path: file.into_temp_path(),
            sha256: hex::encode(hash.finish()),
        },
    };
    Ok((input, total))
}

/// The bytes of a received body, read back from its spool file if it has one.
pub(super) async fn into_bytes(input: Input) -> Result<Bytes, AppError> {
    match input {
        Input::Memory(bytes) => Ok(bytes),
        Input::File { path, .. } => {
            crate::blocking::run(move || std::fs::read(&path).map(Bytes::from).map_err(spool_error))
                .await
        }
    }
}

/// A received body as a request body again (streamed from its spool file if it has one).
pub(super) async fn into_body(input: Input, len: u64) -> Result<Body, AppError> {
    match input {
        Input::Memory(bytes) => Ok(Body::from(bytes)),
        Input::File { path, .. } => {
            // The open file outlives the temporary path, which unlinks it when dropped.
            let file =
                crate::blocking::run(move || std::fs::File::open(&path).map_err(spool_error))
                    .await?;
            Ok(FileBody::body(file, len))
        }
    }
}

/// The message of a body that could not be read.
fn body_error(e: &axum::Error) -> String {
    format!("cannot read the request body: {e}")
}

fn spool_error(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("spooling a large request body: {e}"))
}

async fn new_spool_file(dir: &Path) -> Result<tempfile::NamedTempFile, AppError> {
    let dir = dir.to_path_buf();
    crate::blocking::run(move || {
        std::fs::create_dir_all(&dir).map_err(spool_error)?;
        tempfile::Builder::new()
            .prefix("in_")
            .suffix(".part")
            .tempfile_in(&dir)
            .map_err(spool_error)
    })
    .await
}

/// Appends `data` to `file` off the runtime (the file stays owned by the caller).
async fn write_blocking(file: &mut tempfile::NamedTempFile, data: Vec<u8>) -> Result<(), AppError> {
    let mut handle = file.as_file().try_clone().map_err(spool_error)?;
    crate::blocking::run(move || handle.write_all(&data).map_err(spool_error)).await
}

/// A response body read from an open file of known length, 256 KiB at a time.
pub(super) struct FileBody {
    file: tokio::fs::File,
    left: u64,
    buf: Box<[u8]>,
}

impl FileBody {
    /// Streams the `len` bytes of `file` from its current position.
    pub(super) fn body(file: std::fs::File, len: u64) -> Body {
        Body::new(FileBody {
            file: tokio::fs::File::from_std(file),
            left: len,
            buf: vec![0u8; 256 << 10].into_boxed_slice(),
        })
    }
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.left)
            .unwrap_or(usize::MAX)
            .min(this.buf.len());
        let mut read = ReadBuf::new(&mut this.buf[..want]);
        ready!(Pin::new(&mut this.file).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        if n == 0 {
            return Poll::Ready(Some(Err(std::io::ErrorKind::UnexpectedEof.into())));
        }
        this.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(read.filled())))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}
