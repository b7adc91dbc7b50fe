//! A finished batch's signed outputs as one ZIP ([`crate::batch::zip`]), streamed: a blocking
//! worker reads each output twice (its CRC-32, then its bytes, 256 KiB at a time) and hands
//! the bytes over a channel of four chunks, so memory stays flat whatever the batch's size;
//! the length is known up front (`Content-Length`). A client that goes away stops the worker
//! at its next chunk.

use std::io::{Read, Seek};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use hyper::body::{Frame, SizeHint};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::super::accounts::Officer;
use super::super::{GatewayError, Services};
use crate::batch::zip::{archive_len, dos_time, entry_name, ZipWriter};
use crate::store::{BatchRecord, Client};

/// Bytes read and sent at a time.
const CHUNK: usize = 256 << 10;
/// Chunks waiting in the channel at most.
const QUEUED: usize = 4;

/// A batch's ZIP, ready to stream.
pub struct BatchArchive {
    /// A download name: `<batch id>.zip`.
    pub file_name: String,
    /// Its exact length in bytes.
    pub len: u64,
    /// Its bytes, as they are read.
    pub body: ArchiveBody,
}

/// A ZIP download of exact length (`application/zip`, an attachment named
/// [`BatchArchive::file_name`]), as the API and the console answer it.
impl axum::response::IntoResponse for BatchArchive {
    fn into_response(self) -> axum::response::Response {
        use axum::http::{header, HeaderValue};
        let disposition =
            HeaderValue::from_str(&format!("attachment; filename=\"{}\"", self.file_name))
                .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/zip"),
                ),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            axum::body::Body::new(self.body),
        )
            .into_response()
    }
}

/// The archive's bytes as an HTTP body of exact length.
pub struct ArchiveBody {
    chunks: mpsc::Receiver<std::io::Result<Bytes>>,
    left: u64,
}

impl hyper::body::Body for ArchiveBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        match this.chunks.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(bytes))) => {
                this.left = this.left.saturating_sub(bytes.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) if this.left == 0 => Poll::Ready(None),
            Poll::Ready(None) => Poll::Ready(Some(Err(std::io::ErrorKind::UnexpectedEof.into()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// One output going into the archive.
struct Entry {
    name: String,
    path: PathBuf,
    size: u64,
}

impl Services {
    /// The ZIP of batch `id`'s signed outputs, for a client of its agency (another agency's
    /// batch is not found). A batch still being signed is [`GatewayError::NotSigned`].
    pub async fn batch_archive(
        &self,
        caller: &Client,
        id: &str,
    ) -> Result<BatchArchive, GatewayError> {
        let batch = self.own_batch(caller, id).await?;
        self.archive_of(batch).await
    }

    /// [`Services::batch_archive`] for an officer of the batch's agency.
    pub async fn officer_batch_archive(
        &self,
        officer: &Officer,
        id: &str,
    ) -> Result<BatchArchive, GatewayError> {
        let batch = self.officer_batch(officer, id).await?;
        self.archive_of(batch).await
    }

    async fn archive_of(&self, batch: BatchRecord) -> Result<BatchArchive, GatewayError> {
        if matches!(batch.state.as_str(), "queued" | "running") {
            return Err(GatewayError::NotSigned(format!(
                "batch {} is still being signed",
                batch.id
            )));
        }
        let dir = self.batch_dir(&batch.id).join("out");
        let mut entries = Vec::new();
        for doc in self.store().batch_documents(&batch.id).await? {
            let (Some(output), "signed") = (&doc.output, doc.state.as_str()) else {
                continue;
            };
            let path = dir.join(output);
            let size = tokio::fs::metadata(&path)
                .await
                .map_err(|e| GatewayError::Io(format!("cannot read {}: {e}", path.display())))?
                .len();
            entries.push(Entry {
                name: entry_name(output),
                path,
                size,
            });
        }
        let len = archive_len(entries.iter().map(|e| (e.name.as_str(), e.size)))
            .map_err(|e| GatewayError::Invalid(e.to_string()))?;
        let at = batch
            .finished_at
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .unwrap_or_else(OffsetDateTime::now_utc)
            .to_offset(crate::clock::VIETNAM);
        let (tx, rx) = mpsc::channel(QUEUED);
        let id = batch.id.clone();
        tokio::task::spawn_blocking(move || match write_archive(&entries, dos_time(at), &tx) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                tracing::error!(batch = %id, error = %e, "batch archive stopped");
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(BatchArchive {
            file_name: format!("{}.zip", entry_name(&batch.id)),
            len,
            body: ArchiveBody {
                chunks: rx,
                left: len,
            },
        })
    }
}

/// Sends the archive of `entries` down `tx`; stops quietly when the receiver is gone.
fn write_archive(
    entries: &[Entry],
    dos: (u16, u16),
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
) -> std::io::Result<()> {
    let gone = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away");
    let send = |bytes: Vec<u8>| tx.blocking_send(Ok(Bytes::from(bytes))).map_err(|_| gone());
    let mut zip = ZipWriter::new(dos);
    let mut buf = vec![0u8; CHUNK];
    for entry in entries {
        let mut file = std::fs::File::open(&entry.path)?;
        let mut crc = flate2::Crc::new();
        let mut seen = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            crc.update(&buf[..n]);
            seen += n as u64;
        }
        if seen != entry.size {
            return Err(std::io::Error::other(format!(
                "{} changed while archived",
                entry.path.display()
            )));
        }
        let header = zip
            .entry(&entry.name, entry.size, crc.sum())
            .map_err(std::io::Error::other)?;
        send(header)?;
        file.rewind()?;
        let mut left = entry.size;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
            file.read_exact(&mut buf[..want])?;
            send(buf[..want].to_vec())?;
            left -= want as u64;
        }
    }
    send(zip.finish().map_err(std::io::Error::other)?)?;
    Ok(())
}
