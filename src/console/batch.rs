//! The stamp desk's batches: an officer uploads many documents at once (streamed to the new
//! batch's folder, never held in memory), they are signed in the background by the gateway's
//! batch runner with one of the agency's keys (invisible PAdES for PDFs, as `POST /v1/batches`
//! signs), the page shows live progress (the script polls a JSON answer; without it, a link
//! reloads the page) and offers the ZIP of the results.

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::io::AsyncWriteExt;

use super::desk::signing_session;
use super::page::{alert, esc, shell, Lang, Section};
use super::{html, ConsoleState, Failure};
use crate::gateway::accounts::ConsoleSession;
use crate::gateway::batches::{BatchSpec, BatchView};

/// Longest stored upload name.
const MAX_NAME: usize = 120;

fn title(l: Lang) -> &'static str {
    l.pick("Ký theo lô", "Batch signing")
}

/// `GET /desk/batch`: the batch form.
pub(super) async fn form(
    State(state): State<ConsoleState>,
    lang: Lang,
    headers: HeaderMap,
) -> Response {
    let session = match signing_session(&state, lang, &headers).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    match form_page(&state, lang, &session, None, StatusCode::OK).await {
        Ok(r) => r,
        Err(f) => f.into_response(),
    }
}

async fn form_page(
    state: &ConsoleState,
    lang: Lang,
    session: &ConsoleSession,
    notice: Option<String>,
    status: StatusCode,
) -> Result<Response, Failure> {
    let l = lang;
    let keys = state
        .services
        .officer_keys(&session.officer)
        .await
        .map_err(|e| Failure::gateway(l, e))?;
    let options: String = keys
        .iter()
        .map(|k| {
            format!(
                "<option value=\"{name}\">{name}</option>",
                name = esc(&k.name)
            )
        })
        .collect();
    let body = format!(
        "{notice}<p>{intro}</p>\
         <form method=\"post\" action=\"/desk/batch\" enctype=\"multipart/form-data\" class=\"stack\" id=\"batch-form\" data-progress>\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <div class=\"field\"><label for=\"key\">{key}</label><select id=\"key\" name=\"key\" required>{options}</select></div>\
         <div class=\"field\"><label for=\"reason\">{reason}</label>\
         <input id=\"reason\" name=\"reason\" maxlength=\"200\"></div>\
         <div class=\"field\"><label for=\"documents\">{docs}</label>\
         <input type=\"file\" id=\"documents\" name=\"documents\" multiple required aria-describedby=\"documents-help\">\
         <p id=\"documents-help\" class=\"help\">{docs_help}</p></div>\
         <progress hidden max=\"100\" value=\"0\" aria-label=\"{progress}\"></progress>\
         <p><button type=\"submit\" id=\"batch-sign\">{submit}</button></p></form>",
        notice = notice.unwrap_or_default(),
        intro = l.pick(
            "Chọn nhiều văn bản cùng lúc để ký số bằng khóa của cơ quan. Văn bản PDF được ký PAdES (chữ ký không hiển thị), tệp XML được ký XML-DSig, tệp khác nhận chữ ký rời .p7s. Khi xong, tải về tệp ZIP chứa các văn bản đã ký.",
            "Pick many documents at once to sign them with your agency's key. PDFs get a PAdES signature (not drawn on the page), XML files an XML-DSig signature, other files a detached .p7s. When it is done, download a ZIP of the signed documents."
        ),
        csrf = esc(&session.csrf),
        key = l.pick("Khóa ký của cơ quan", "Agency signing key"),
        reason = l.pick("Lý do ký (không bắt buộc)", "Reason for signing (optional)"),
        docs = l.pick("Các văn bản", "Documents"),
        docs_help = l.pick(
            "Có thể chọn nhiều tệp (giữ Ctrl hoặc Shift khi chọn).",
            "You can pick several files (hold Ctrl or Shift while picking)."
        ),
        progress = l.pick("Tiến độ tải lên", "Upload progress"),
        submit = l.pick("Tải lên và ký cả lô", "Upload and sign the batch"),
    );
    Ok(html(
        status,
        shell(l, Section::Batch, title(l), Some(session), &body),
    ))
}

/// Streams the form's documents into a new batch and records it; returns its id.
async fn receive(
    state: &ConsoleState,
    lang: Lang,
    session: &ConsoleSession,
    req: Request,
) -> Result<String, Failure> {
    let l = lang;
    let unreadable = || {
        Failure::form(
            l,
            l.pick(
                "Biểu mẫu gửi lên không đọc được.",
                "The form sent cannot be read.",
            ),
        )
    };
    let limit = state.services.settings().max_body_bytes;
    let field_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Failure::new(
                l,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{} {} MiB.",
                    l.pick(
                        "Các tệp quá lớn; tổng giới hạn là",
                        "The files are too large; the total limit is"
                    ),
                    limit / (1024 * 1024)
                ),
            )
        } else {
            unreadable()
        }
    };
    let mut multipart = Multipart::from_request(req, state)
        .await
        .map_err(|_| unreadable())?;
    let batch = state.services.new_batch();
    let mut csrf_ok = false;
    let mut key = String::new();
    let mut reason = None;
    let mut names = Vec::new();
    let read = async {
        while let Some(mut field) = multipart.next_field().await.map_err(field_error)? {
            let name = field.name().unwrap_or_default().to_string();
            if name == "documents" {
                // The token comes first in the form: nothing is written without it.
                if !csrf_ok {
                    return Err(Failure::csrf(l));
                }
                let file_name = field.file_name().unwrap_or_default().to_string();
                if file_name.is_empty() {
                    continue;
                }
                let safe = crate::batch::zip::safe_file_name(&file_name, MAX_NAME);
                let (mut file, _) = batch
                    .input_file(names.len(), &safe)
                    .await
                    .map_err(|e| Failure::gateway(l, e))?;
                let mut size = 0usize;
                while let Some(chunk) = field.chunk().await.map_err(field_error)? {
                    size += chunk.len();
                    file.write_all(&chunk).await.map_err(|e| {
                        Failure::gateway(l, crate::gateway::GatewayError::Io(e.to_string()))
                    })?;
                }
                file.sync_all().await.map_err(|e| {
                    Failure::gateway(l, crate::gateway::GatewayError::Io(e.to_string()))
                })?;
                if size == 0 {
                    return Err(Failure::form(
                        l,
                        l.pick("Có một tệp rỗng.", "One of the files is empty."),
                    ));
                }
                names.push(safe);
                continue;
            }
            let text = field.text().await.map_err(field_error)?;
            match name.as_str() {
                "csrf" => {
                    csrf_ok = !session.csrf.is_empty()
                        && bool::from(text.as_bytes().ct_eq(session.csrf.as_bytes()));
                    if !csrf_ok {
                        return Err(Failure::csrf(l));
                    }
                }
                "key" => key = text.trim().to_string(),
                "reason" => {
                    reason = Some(text.trim().chars().take(200).collect::<String>())
                        .filter(|r| !r.is_empty())
                }
                _ => {}
            }
        }
        if !csrf_ok {
            return Err(Failure::csrf(l));
        }
        if names.is_empty() {
            return Err(Failure::form(
                l,
                l.pick(
                    "Hãy chọn ít nhất một văn bản.",
                    "Pick at least one document.",
                ),
            ));
        }
        batch
            .sync_inputs()
            .await
            .map_err(|e| Failure::gateway(l, e))?;
        Ok(())
    }
    .await;
    if let Err(f) = read {
        let _ = tokio::fs::remove_dir_all(&batch.dir).await;
        return Err(f);
    }
    let spec = BatchSpec {
        key,
        format: None,
        profile: None,
        level: None,
        reason,
        location: None,
    };
    state
        .services
        .officer_submit_batch(&session.officer, batch, names, spec)
        .await
        .map_err(|e| Failure::gateway(l, e))
}

/// `POST /desk/batch`: receives the documents, starts the batch and shows its progress.
pub(super) async fn create(
    State(state): State<ConsoleState>,
    lang: Lang,
    req: Request,
) -> Response {
    let headers = req.headers().clone();
    let session = match signing_session(&state, lang, &headers).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    match receive(&state, lang, &session, req).await {
        Ok(id) => Redirect::to(&format!("/desk/batch/{id}")).into_response(),
        Err(failure) if failure.status == StatusCode::FORBIDDEN => failure.into_response(),
        Err(failure) => {
            let notice = alert(&failure.message);
            match form_page(&state, lang, &session, Some(notice), failure.status).await {
                Ok(r) => r,
                Err(f) => f.into_response(),
            }
        }
    }
}

/// What the progress page and its JSON tell.
struct Progress {
    state: String,
    total: usize,
    signed: usize,
    failed: usize,
    finished: bool,
}

impl Progress {
    fn of(view: &BatchView) -> Self {
        let count = |s: &str| view.documents.iter().filter(|d| d.state == s).count();
        Self {
            state: view.batch.state.clone(),
            total: view.documents.len(),
            signed: count("signed"),
            failed: count("failed"),
            finished: !matches!(view.batch.state.as_str(), "queued" | "running"),
        }
    }

    fn sentence(&self, l: Lang) -> String {
        let base = match l {
            Lang::Vi => format!(
                "Đã ký {} trên {} văn bản; {} lỗi.",
                self.signed, self.total, self.failed
            ),
            Lang::En => format!(
                "{} of {} documents signed; {} failed.",
                self.signed, self.total, self.failed
            ),
        };
        let tail = match (self.finished, self.state.as_str()) {
            (false, _) => l.pick("Đang ký…", "Signing…"),
            (true, "done") => l.pick("Đã xong.", "Finished."),
            (true, _) => l.pick("Lô dừng vì lỗi.", "The batch stopped on an error."),
        };
        format!("{base} {tail}")
    }
}

/// `GET /desk/batch/{id}`: the batch's progress, its documents and, once finished, the ZIP.
pub(super) async fn show(
    State(state): State<ConsoleState>,
    lang: Lang,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let l = lang;
    let session = match signing_session(&state, lang, &headers).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let view = match state
        .services
        .officer_batch_status(&session.officer, &id)
        .await
    {
        Ok(v) => v,
        Err(e) => return Failure::gateway(l, e).into_response(),
    };
    let p = Progress::of(&view);
    let rows: String = view
        .documents
        .iter()
        .map(|d| {
            let state = match d.state.as_str() {
                "signed" => l.pick("đã ký", "signed"),
                "failed" => l.pick("lỗi", "failed"),
                _ => l.pick("đang chờ", "waiting"),
            };
            let why = match (&d.code, &d.message) {
                (Some(code), Some(message)) => format!(" ({code}: {})", esc(message)),
                _ => String::new(),
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td data-state=\"{}\">{state}{why}</td></tr>",
                d.index + 1,
                esc(&d.name),
                esc(&d.state)
            )
        })
        .collect();
    let id = esc(&view.batch.id);
    let body = format!(
        "<section class=\"result\" id=\"batch\" aria-labelledby=\"batch-title\" data-progress-url=\"/desk/batch/{id}/progress\" data-finished=\"{finished}\">\
         <h2 id=\"batch-title\">{heading} <span class=\"masked\">{id}</span></h2>\
         <progress id=\"batch-progress\" max=\"{total}\" value=\"{done}\" aria-label=\"{progress}\"></progress>\
         <p id=\"batch-status\" role=\"status\" aria-live=\"polite\">{sentence}</p>\
         <p id=\"batch-download\"{hidden}><a class=\"button\" id=\"batch-zip\" href=\"/desk/batch/{id}/archive\" download>{download}</a></p>\
         <p id=\"batch-refresh\"{refresh_hidden}><a href=\"/desk/batch/{id}\">{refresh}</a></p>\
         <table class=\"docs\"><caption>{docs}</caption><thead><tr><th scope=\"col\">#</th><th scope=\"col\">{name}</th><th scope=\"col\">{state}</th></tr></thead>\
         <tbody>{rows}</tbody></table>\
         <p><a href=\"/desk/batch\">{again}</a></p></section>",
        finished = p.finished,
        heading = l.pick("Lô", "Batch"),
        total = p.total.max(1),
        done = p.signed + p.failed,
        progress = l.pick("Tiến độ ký", "Signing progress"),
        sentence = esc(&p.sentence(l)),
        hidden = if p.finished { "" } else { " hidden" },
        refresh_hidden = if p.finished { " hidden" } else { "" },
        download = l.pick("Tải về tệp ZIP các văn bản đã ký", "Download the ZIP of the signed documents"),
        refresh = l.pick("Tải lại để xem tiến độ", "Reload to see the progress"),
        docs = l.pick("Các văn bản của lô", "The batch's documents"),
        name = l.pick("Tên tệp", "File name"),
        state = l.pick("Trạng thái", "State"),
        again = l.pick("Ký một lô khác", "Sign another batch"),
    );
    html(
        StatusCode::OK,
        shell(l, Section::Batch, title(l), Some(&session), &body),
    )
}

/// `GET /desk/batch/{id}/progress`: the progress as JSON, for the page's script.
pub(super) async fn progress(
    State(state): State<ConsoleState>,
    lang: Lang,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let session = match signing_session(&state, lang, &headers).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    match state
        .services
        .officer_batch_status(&session.officer, &id)
        .await
    {
        Ok(view) => {
            let p = Progress::of(&view);
            (
                [(header::CACHE_CONTROL, "no-store")],
                Json(json!({
                    "state": p.state,
                    "total": p.total,
                    "signed": p.signed,
                    "failed": p.failed,
                    "finished": p.finished,
                    "sentence": p.sentence(lang),
                })),
            )
                .into_response()
        }
        Err(e) => Failure::gateway(lang, e).into_response(),
    }
}

/// `GET /desk/batch/{id}/archive`: the ZIP of the signed documents.
pub(super) async fn archive(
    State(state): State<ConsoleState>,
    lang: Lang,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let session = match signing_session(&state, lang, &headers).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    match state
        .services
        .officer_batch_archive(&session.officer, &id)
        .await
    {
        Ok(archive) => archive.into_response(),
        Err(crate::gateway::GatewayError::NotSigned(_)) => Failure::new(
            lang,
            StatusCode::CONFLICT,
            lang.pick(
                "Lô này chưa ký xong. Hãy chờ đến khi xong rồi tải về.",
                "This batch is not finished yet. Wait until it is, then download.",
            ),
        )
        .into_response(),
        Err(e) => Failure::gateway(lang, e).into_response(),
    }
}
