//! The printable verification report: the verify page's form posted to `/verify/report`
//! answers a PDF of the whole result (the verdict sentences, who signed with identifiers
//! masked as on the page, when, changes, the chain), set in the embedded Liberation Serif
//! and signed by the gateway's own key, so a third party can check the result itself. The
//! upload is verified as on the page ([`crate::gateway::Services::verify_anonymous`]):
//! neither stored, audited nor logged, and it counts against the same per-address limit.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use time::OffsetDateTime;

use super::page::{cookie, Lang};
use super::verdict::{kind_name, sentence, signature_facts, when, FactValue};
use super::{address, ConsoleState, Failure, Form, PRE_COOKIE};
use crate::pdf::textdoc::{TextDocument, TextStyle};
use crate::tls::ConnectionInfo;
use crate::verify::Report;

/// The file a report is about: its name as uploaded and its SHA-256 (which ties the report to
/// the document, whatever its name says).
struct Checked<'a> {
    name: &'a str,
    sha256: String,
}

/// The report's text for `report` of the file `file`, checked at `at`.
fn report_text(
    lang: Lang,
    report: &Report,
    file: &Checked<'_>,
    at: OffsetDateTime,
) -> TextDocument {
    let l = lang;
    let title = l.pick(
        "Báo cáo xác minh chữ ký số",
        "Digital signature verification report",
    );
    let mut doc = TextDocument::new(title, l.code());
    doc.push(TextStyle::Title, title);
    let checked = at
        .format(&time::format_description::well_known::Rfc3339)
        .map(|t| when(l, &t))
        .unwrap_or_default();
    doc.push(
        TextStyle::Small,
        &format!("{}: {checked}", l.pick("Thời điểm kiểm tra", "Checked at")),
    );
    doc.push(
        TextStyle::Small,
        &format!(
            "{}: {}",
            l.pick("Tệp được kiểm tra", "File checked"),
            file.name
        ),
    );
    doc.push(
        TextStyle::Small,
        &format!(
            "{}: {}",
            l.pick("Mã băm SHA-256 của tệp", "SHA-256 of the file"),
            file.sha256
        ),
    );
    doc.push(TextStyle::Heading, l.pick("Kết luận", "Verdict"));
    doc.push(
        TextStyle::Body,
        sentence(l, report.indication, report.sub_indication),
    );
    doc.push(
        TextStyle::Body,
        &format!(
            "{}: {}",
            l.pick("Số chữ ký trong tệp", "Signatures in the file"),
            report.signatures.len()
        ),
    );
    for (i, s) in report.signatures.iter().enumerate() {
        doc.push(
            TextStyle::Heading,
            &format!("{} {}: {}", kind_name(l, s.kind), i + 1, s.id),
        );
        doc.push(TextStyle::Body, sentence(l, s.indication, s.sub_indication));
        for fact in signature_facts(l, s) {
            match fact.value {
                FactValue::Text(t) | FactValue::Masked(t) => {
                    doc.push(TextStyle::Body, &format!("{}: {t}", fact.label));
                }
                FactValue::List {
                    intro,
                    items,
                    ordered,
                } => {
                    let head = match intro {
                        Some(intro) => format!("{}: {intro}", fact.label),
                        None => format!("{}:", fact.label),
                    };
                    doc.push(TextStyle::Body, &head);
                    for (n, (item, note)) in items.iter().enumerate() {
                        let mark = if ordered {
                            format!("{}.", n + 1)
                        } else {
                            "•".to_string()
                        };
                        let note = note.as_deref().map(|n| format!(" {n}")).unwrap_or_default();
                        doc.item(&format!("{mark} {item}{note}"));
                    }
                }
            }
        }
    }
    doc.push(
        TextStyle::Heading,
        l.pick("Về báo cáo này", "About this report"),
    );
    doc.push(
        TextStyle::Small,
        l.pick(
            "Báo cáo do cổng ký số signgate lập và ký số bằng khóa của cổng; có thể kiểm tra chữ ký của báo cáo bằng bất kỳ phần mềm xác minh PDF nào. Mã số thuế và số căn cước được che, chỉ hiện các chữ số cuối. Tệp được kiểm tra không được lưu lại và không ghi nhật ký.",
            "Made by the signgate signing gateway and signed with the gateway's key; the report's own signature can be checked with any PDF verifier. Tax codes and citizen IDs are masked but for their last digits. The file checked was neither stored nor logged.",
        ),
    );
    doc
}

/// `POST /verify/report`: the verify form's file, answered as the signed PDF report.
pub(super) async fn download(
    State(state): State<ConsoleState>,
    lang: Lang,
    info: Option<Extension<ConnectionInfo>>,
    req: Request,
) -> Result<Response, Failure> {
    let l = lang;
    if let Err(wait) = state.verify_limit.take(&address(&info)) {
        return Err(Failure::new(
            l,
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{} {} {}",
                l.pick(
                    "Bạn đã xác minh quá nhiều tệp. Hãy thử lại sau",
                    "Too many files verified. Try again in"
                ),
                wait.as_secs() / 60 + 1,
                l.pick("phút.", "minutes.")
            ),
        ));
    }
    let headers = req.headers().clone();
    let form = Form::read(l, &state, req).await?;
    form.check_csrf(l, cookie(&headers, PRE_COOKIE))?;
    let Some((file_name, document)) = form.file("document") else {
        return Err(Failure::form(
            l,
            l.pick("Hãy chọn một tệp để xác minh.", "Pick a file to verify."),
        ));
    };
    let file_name: String = file_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .take(120)
        .collect();
    let content = form.file("content").map(|(_, b)| b.clone());
    let report = state
        .services
        .verify_anonymous(document.clone(), content)
        .await
        .map_err(|e| Failure::gateway(l, e))?;
    let file = Checked {
        name: &file_name,
        sha256: crate::pki::alg::sha256_hex(document),
    };
    let text = report_text(l, &report, &file, OffsetDateTime::now_utc());
    let pdf = state
        .services
        .signed_report(
            text,
            l.pick(
                "Báo cáo xác minh chữ ký số",
                "Digital signature verification report",
            ),
        )
        .await
        .map_err(|e| Failure::gateway(l, e))?;
    let name = format!("verification-report-{}.pdf", l.code());
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pdf"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        pdf,
    )
        .into_response())
}
