//! The stamp desk: an officer uploads a PDF, picks one of the agency's keys and the stamp
//! kind (the official's signature, the agency's seal where clicked or over the left third of
//! the official's signature, the attachment or the electronic copy stamp), places the stamp by clicking on a page-sized box (or by typing its coordinates in PDF
//! points), signs through the gateway's signing service, and downloads the result. Signed
//! files wait in memory for their download (a few, for a few minutes, for their officer only).

use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::page::{alert, esc, shell, Lang, Section};
use super::{html, session_of, ConsoleState, Failure, Form};
use crate::gateway::accounts::ConsoleSession;
use crate::gateway::signing::{Mark, SignSpec, SignedOutput};
use crate::pdf::PageSelector;
use crate::sign::{Format, Level};

/// Signed files kept for download at once.
const KEPT_OUTPUTS: usize = 16;
/// How long a signed file waits for its download.
const KEPT_FOR: Duration = Duration::from_secs(15 * 60);
/// Size of the attachment stamp's box, points.
const STAMP_BOX: (f64, f64) = (210.0, 50.0);
/// Seal diameter when the key has none recorded, millimetres.
const DEFAULT_SEAL_MM: f64 = 36.0;

/// Signed files waiting for their download.
#[derive(Default)]
pub struct Outputs {
    items: Vec<Output>,
}

struct Output {
    id: String,
    username: String,
    name: String,
    at: Instant,
    bytes: Vec<u8>,
}

impl Outputs {
    fn put(&mut self, username: &str, name: String, bytes: Vec<u8>) -> String {
        self.items.retain(|o| o.at.elapsed() < KEPT_FOR);
        if self.items.len() >= KEPT_OUTPUTS {
            self.items.remove(0);
        }
        let id = crate::ids::random_id("out_");
        self.items.push(Output {
            id: id.clone(),
            username: username.into(),
            name,
            at: Instant::now(),
            bytes,
        });
        id
    }

    fn get(&self, username: &str, id: &str) -> Option<(String, Vec<u8>)> {
        self.items
            .iter()
            .find(|o| o.id == id && o.username == username && o.at.elapsed() < KEPT_FOR)
            .map(|o| (o.name.clone(), o.bytes.clone()))
    }
}

/// The stamp kinds the desk offers (Decree 30/2020).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StampKind {
    /// The official's signature: a handwritten signature image the officer uploads.
    Signature,
    /// The agency's seal (the key's bound seal image), where the officer clicks.
    Seal,
    /// The agency's seal over the left third of the official's signature already on the page.
    SealOverSignature,
    /// The text stamp of an attachment, with the document number.
    Attachment,
    /// The text stamp of an electronic copy.
    Copy,
}

impl StampKind {
    /// The kind a form's `kind` field names (the seal by default).
    fn parse(value: Option<&str>) -> Self {
        match value {
            Some("signature") => Self::Signature,
            Some("seal-over-signature") => Self::SealOverSignature,
            Some("attachment") => Self::Attachment,
            Some("copy") => Self::Copy,
            _ => Self::Seal,
        }
    }
}

/// Size of the official's signature box, points (image above two lines of text).
const SIGNATURE_BOX: (f64, f64) = (210.0, 100.0);
/// Largest handwritten signature image accepted, bytes.
const MAX_SIGNATURE_IMAGE: usize = 2 * 1024 * 1024;

/// The session of an officer who may sign, or the answer to give instead (log-in page, or a
/// refusal for a clerk).
pub(super) async fn signing_session(
    state: &ConsoleState,
    lang: Lang,
    headers: &HeaderMap,
) -> Result<ConsoleSession, Response> {
    let session = session_of(state, headers)
        .await
        .map_err(|e| Failure::gateway(lang, e).into_response())?;
    let Some(session) = session else {
        return Err(Redirect::to("/login?next=/desk").into_response());
    };
    if !session.officer.role.may_sign() {
        return Err(Failure::new(
            lang,
            StatusCode::FORBIDDEN,
            lang.pick(
                "Tài khoản của bạn không có quyền ký số.",
                "Your account may not sign documents.",
            ),
        )
        .into_response());
    }
    Ok(session)
}

/// `file name` reduced to `[A-Za-z0-9._-]`, ending in `.pdf`.
fn download_name(original: &str) -> String {
    let stem: String = original
        .trim_end_matches(".pdf")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    let stem = if stem.is_empty() {
        "document".into()
    } else {
        stem
    };
    format!("{stem}-signed.pdf")
}

/// `GET /desk`: the stamp desk's form.
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
            let d = k.seal_size_mm.unwrap_or(DEFAULT_SEAL_MM) * 72.0 / 25.4;
            format!(
                "<option value=\"{name}\" data-size=\"{d:.1}\">{name}</option>",
                name = esc(&k.name)
            )
        })
        .collect();
    let no_keys = if keys.is_empty() {
        alert(l.pick(
            "Cơ quan của bạn chưa có khóa ký nào được đăng ký.",
            "Your agency has no signing key registered yet.",
        ))
    } else {
        String::new()
    };
    let body = format!(
        "{notice}{no_keys}<p>{intro}</p>\
         <form method=\"post\" action=\"/desk/sign\" enctype=\"multipart/form-data\" class=\"stack\" id=\"desk-form\" data-progress>\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <div class=\"field\"><label for=\"document\">{doc}</label>\
         <input type=\"file\" id=\"document\" name=\"document\" accept=\"application/pdf,.pdf\" required></div>\
         <div class=\"field\"><label for=\"key\">{key}</label><select id=\"key\" name=\"key\" required>{options}</select></div>\
         <fieldset><legend>{kind}</legend>\
         <div><input type=\"radio\" id=\"kind-seal\" name=\"kind\" value=\"seal\" checked> <label for=\"kind-seal\">{seal}</label></div>\
         <div><input type=\"radio\" id=\"kind-signature\" name=\"kind\" value=\"signature\" data-w=\"{sig_w}\" data-h=\"{sig_h}\"> <label for=\"kind-signature\">{signature}</label></div>\
         <div><input type=\"radio\" id=\"kind-seal-over\" name=\"kind\" value=\"seal-over-signature\"> <label for=\"kind-seal-over\">{seal_over}</label></div>\
         <div><input type=\"radio\" id=\"kind-attachment\" name=\"kind\" value=\"attachment\" data-w=\"{box_w}\" data-h=\"{box_h}\"> <label for=\"kind-attachment\">{attachment}</label></div>\
         <div><input type=\"radio\" id=\"kind-copy\" name=\"kind\" value=\"copy\" data-w=\"{box_w}\" data-h=\"{box_h}\"> <label for=\"kind-copy\">{copy}</label></div>\
         </fieldset>\
         <div class=\"field\"><label for=\"signature_image\">{sig_image}</label>\
         <input type=\"file\" id=\"signature_image\" name=\"signature_image\" accept=\"image/png,.png\" aria-describedby=\"sig-help\">\
         <p id=\"sig-help\" class=\"help\">{sig_help}</p></div>\
         <div class=\"field\"><label for=\"doc_number\">{number}</label>\
         <input id=\"doc_number\" name=\"doc_number\" aria-describedby=\"number-help\">\
         <p id=\"number-help\" class=\"help\">{number_help}</p></div>\
         <div class=\"field\"><label for=\"page\">{page}</label>\
         <input type=\"number\" id=\"page\" name=\"page\" min=\"1\" value=\"1\" required></div>\
         <p id=\"box-help\" class=\"help\">{box_help}</p>\
         <div id=\"stampbox\" class=\"stampbox\" tabindex=\"0\" role=\"group\" aria-label=\"{box_label}\" aria-describedby=\"box-help\" data-width=\"595\" data-height=\"842\">\
         <div class=\"marker\" aria-hidden=\"true\"></div></div>\
         <div class=\"pair\"><div class=\"field\"><label for=\"x\">{x}</label>\
         <input type=\"number\" id=\"x\" name=\"x\" step=\"0.1\" min=\"0\" value=\"430\" required></div>\
         <div class=\"field\"><label for=\"y\">{y}</label>\
         <input type=\"number\" id=\"y\" name=\"y\" step=\"0.1\" min=\"0\" value=\"150\" required></div></div>\
         <progress hidden max=\"100\" value=\"0\" aria-label=\"{progress}\"></progress>\
         <p><button type=\"submit\" id=\"sign\">{submit}</button></p></form>",
        notice = notice.unwrap_or_default(),
        intro = l.pick(
            "Tải lên văn bản PDF, chọn khóa ký của cơ quan và loại dấu, nhấn vào vị trí đặt dấu trên trang, rồi ký.",
            "Upload a PDF, pick your agency's key and the stamp kind, click where the stamp goes on the page, then sign."
        ),
        csrf = esc(&session.csrf),
        doc = l.pick("Văn bản PDF", "PDF document"),
        key = l.pick("Khóa ký của cơ quan", "Agency signing key"),
        kind = l.pick("Loại dấu", "Stamp kind"),
        seal = l.pick("Con dấu của cơ quan", "The agency's seal"),
        attachment = l.pick("Dấu văn bản đính kèm (trang 1)", "Attachment stamp (page 1)"),
        signature = l.pick("Chữ ký của người có thẩm quyền", "The official's signature"),
        seal_over = l.pick(
            "Con dấu trùm lên 1/3 bên trái chữ ký đã có trên trang",
            "The agency's seal over the left third of the signature already on the page"
        ),
        copy = l.pick("Dấu bản sao điện tử (trang 1)", "Electronic copy stamp (page 1)"),
        sig_w = SIGNATURE_BOX.0,
        sig_h = SIGNATURE_BOX.1,
        box_w = STAMP_BOX.0,
        box_h = STAMP_BOX.1,
        sig_image = l.pick("Ảnh chữ ký tay (PNG)", "Handwritten signature image (PNG)"),
        sig_help = l.pick(
            "Chỉ cần với chữ ký của người có thẩm quyền: ảnh PNG nền trong suốt, mực màu xanh.",
            "Only for the official's signature: a PNG with a transparent background, blue ink."
        ),
        number = l.pick("Số văn bản", "Document number"),
        number_help = l.pick(
            "Bắt buộc với dấu văn bản đính kèm, ví dụ 123/QĐ-UBND.",
            "Required for the attachment stamp, e.g. 123/QĐ-UBND."
        ),
        page = l.pick("Trang đặt dấu", "Page of the stamp"),
        box_help = l.pick(
            "Nhấn vào khung trang dưới đây tại vị trí tâm của dấu, hoặc dùng các phím mũi tên khi khung được chọn, hoặc nhập toạ độ (điểm PDF, gốc ở góc dưới bên trái).",
            "Click in the page box below where the centre of the stamp goes, or use the arrow keys when the box has focus, or type the coordinates (PDF points from the bottom-left corner)."
        ),
        box_label = l.pick("Khung trang để đặt dấu", "Page box for placing the stamp"),
        x = l.pick("Toạ độ ngang x (điểm)", "Horizontal position x (points)"),
        y = l.pick("Toạ độ dọc y (điểm)", "Vertical position y (points)"),
        progress = l.pick("Tiến độ tải lên", "Upload progress"),
        submit = l.pick("Ký số và đóng dấu", "Sign and stamp"),
    );
    let title = l.pick("Bàn đóng dấu", "Stamp desk");
    Ok(html(
        status,
        shell(l, Section::Desk, title, Some(session), &body),
    ))
}

fn number(form: &Form, name: &str) -> Option<f64> {
    form.text(name)?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && (0.0..=14_400.0).contains(v))
}

/// `POST /desk/sign`: signs the uploaded PDF for the officer and shows the download.
pub(super) async fn sign(State(state): State<ConsoleState>, lang: Lang, req: Request) -> Response {
    let l = lang;
    let headers = req.headers().clone();
    let session = match signing_session(&state, lang, &headers).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let result = async {
        let form = Form::read(l, &state, req).await?;
        form.check_csrf(l, Some(&session.csrf))?;
        let bad = |vi: &'static str, en: &'static str| Failure::form(l, l.pick(vi, en));
        let (file_name, document) = form.file("document").ok_or_else(|| {
            bad(
                "Hãy chọn văn bản PDF cần ký.",
                "Pick the PDF document to sign.",
            )
        })?;
        let key = form.text("key").unwrap_or_default().to_string();
        let kind = StampKind::parse(form.text("kind"));
        let page = form
            .text("page")
            .and_then(|p| p.trim().parse::<u32>().ok())
            .filter(|p| *p >= 1)
            .ok_or_else(|| {
                bad(
                    "Số trang phải từ 1 trở lên.",
                    "The page number must be 1 or more.",
                )
            })?;
        let (x, y) = number(&form, "x").zip(number(&form, "y")).ok_or_else(|| {
            bad(
                "Hãy chọn vị trí đặt dấu trên trang.",
                "Pick where the stamp goes on the page.",
            )
        })?;
        let doc_number = form
            .text("doc_number")
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        let keys = state
            .services
            .officer_keys(&session.officer)
            .await
            .map_err(|e| Failure::gateway(l, e))?;
        let record = keys.iter().find(|k| k.name == key);
        let seal_d = record
            .and_then(|r| r.seal_size_mm)
            .unwrap_or(DEFAULT_SEAL_MM)
            * 72.0
            / 25.4;
        let (w, h, doc_number, mark) = match kind {
            StampKind::Seal => (seal_d, seal_d, None, Mark::Seal),
            StampKind::SealOverSignature => (seal_d, seal_d, None, Mark::SealOverSignature),
            StampKind::Signature => {
                let image = form
                    .file("signature_image")
                    .map(|(_, b)| b)
                    .filter(|b| b.starts_with(b"\x89PNG") && b.len() <= MAX_SIGNATURE_IMAGE)
                    .ok_or_else(|| {
                        bad(
                            "Chữ ký của người có thẩm quyền cần ảnh chữ ký tay dạng PNG (tối đa 2 MB).",
                            "The official's signature needs the handwritten signature as a PNG image (2 MB at most).",
                        )
                    })?;
                let mark = Mark::OfficialSignature {
                    image_png: image.to_vec(),
                };
                (SIGNATURE_BOX.0, SIGNATURE_BOX.1, None, mark)
            }
            StampKind::Attachment => {
                let number = doc_number.ok_or_else(|| {
                    bad(
                        "Dấu văn bản đính kèm cần số văn bản.",
                        "The attachment stamp needs the document number.",
                    )
                })?;
                (STAMP_BOX.0, STAMP_BOX.1, Some(number), Mark::Attachment)
            }
            StampKind::Copy => (STAMP_BOX.0, STAMP_BOX.1, doc_number, Mark::Copy),
        };
        let spec = SignSpec {
            key,
            format: Some(Format::Pdf),
            profile: None,
            level: Level::default(),
            page: PageSelector::Number(page),
            rect: Some([(x - w / 2.0).max(0.0), (y - h / 2.0).max(0.0), w, h]),
            doc_number,
        };
        let signed = state
            .services
            .officer_stamp(&session.officer, spec, Some(mark), document.clone())
            .await
            .map_err(|e| Failure::gateway(l, e))?;
        let bytes = match signed.output {
            SignedOutput::Memory(bytes) => bytes,
            SignedOutput::File(..) => {
                return Err(Failure::gateway(
                    l,
                    crate::gateway::GatewayError::Io("signed output spooled".into()),
                ))
            }
        };
        let name = download_name(file_name);
        let id = state.outputs.lock().unwrap_or_else(|e| e.into_inner()).put(
            &session.officer.username,
            name.clone(),
            bytes,
        );
        Ok::<_, Failure>((id, name, signed.audit_seq))
    }
    .await;
    match result {
        Ok((id, name, audit_seq)) => {
            let body = format!(
                "<section class=\"result\" aria-labelledby=\"done\"><h2 id=\"done\">{done}</h2>\
                 <p role=\"status\">{text} <span id=\"audit-seq\">{audit_seq}</span>.</p>\
                 <p><a class=\"button\" id=\"download\" href=\"/desk/download/{id}\" download=\"{name}\">{download} {name}</a></p>\
                 <p>{hint} <a href=\"/verify\">{verify}</a>.</p>\
                 <p><a href=\"/desk\">{again}</a></p></section>",
                done = l.pick("Đã ký số", "Signed"),
                text = l.pick(
                    "Văn bản đã được ký và ghi vào nhật ký kiểm toán, bản ghi số",
                    "The document was signed and recorded in the audit trail, record"
                ),
                id = esc(&id),
                name = esc(&name),
                download = l.pick("Tải về", "Download"),
                hint = l.pick(
                    "Có thể kiểm tra tệp đã ký tại trang",
                    "The signed file can be checked on the page"
                ),
                verify = l.pick("xác minh chữ ký", "verify a signature"),
                again = l.pick("Ký văn bản khác", "Sign another document"),
            );
            html(
                StatusCode::OK,
                shell(
                    l,
                    Section::Desk,
                    l.pick("Bàn đóng dấu", "Stamp desk"),
                    Some(&session),
                    &body,
                ),
            )
        }
        Err(failure) if failure.status == StatusCode::FORBIDDEN => failure.into_response(),
        Err(failure) => {
            let notice = alert(&failure.message);
            match form_page(&state, l, &session, Some(notice), failure.status).await {
                Ok(r) => r,
                Err(f) => f.into_response(),
            }
        }
    }
}

/// `GET /desk/download/{id}`: a signed file of this officer.
pub(super) async fn download(
    State(state): State<ConsoleState>,
    lang: Lang,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let session = match signing_session(&state, lang, &headers).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let found = state
        .outputs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&session.officer.username, &id);
    let Some((name, bytes)) = found else {
        return Failure::new(
            lang,
            StatusCode::NOT_FOUND,
            lang.pick(
                "Không còn tệp này (tệp đã ký chỉ được giữ 15 phút). Hãy ký lại.",
                "This file is gone (signed files are kept for 15 minutes). Sign it again.",
            ),
        )
        .into_response();
    };
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pdf"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_are_plain() {
        assert_eq!(download_name("Quyet dinh 1.pdf"), "Quyet_dinh_1-signed.pdf");
        assert_eq!(download_name("Số 1.pdf"), "S__1-signed.pdf");
        assert_eq!(download_name(""), "document-signed.pdf");
        assert_eq!(download_name("a\"b.pdf"), "a_b-signed.pdf");
    }

    #[test]
    fn outputs_belong_to_their_officer() {
        let mut outputs = Outputs::default();
        let id = outputs.put("a", "x.pdf".into(), vec![1]);
        assert!(outputs.get("a", &id).is_some());
        assert!(outputs.get("b", &id).is_none());
        for _ in 0..KEPT_OUTPUTS {
            outputs.put("a", "y.pdf".into(), vec![2]);
        }
        assert!(outputs.get("a", &id).is_none(), "oldest dropped");
    }
}
