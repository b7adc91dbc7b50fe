//! The routing desk, on a gateway that is a routing node: an officer or clerk sees the
//! agency's inbox and sent documents (with filters), follows a document's trace as a timeline
//! of its statuses, builds and sends a document to agencies picked from the directory (by name
//! and by province), acknowledges or answers a received document with a status, and downloads
//! it and its attachments. Every action goes through [`crate::gateway::officer_route`], which
//! scopes it to the officer's agency and records it under the officer's name.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::page::{alert, esc, shell, Lang, Section};
use super::{html, session_of, ConsoleState, Failure, Form};
use crate::edxml::{DocumentSpec, FileSpec, OrganSpec};
use crate::gateway::accounts::ConsoleSession;
use crate::gateway::GatewayError;
use crate::routing::node::{ListKind, ListParams};
use crate::routing::{Node, RoutingError};

/// The routing node, when this gateway is one.
type NodeExt = Option<Extension<Arc<Node>>>;

/// Documents per page of a list.
const PAGE_SIZE: i64 = 25;

/// `text` percent-encoded for a query value (RFC 3986 unreserved characters kept).
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An RFC 3339 time as people read it (Vietnam time, ISO 8601 with its offset).
fn shown_time(rfc3339: &str) -> String {
    OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map(crate::clock::display_time)
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// The name of a status code (QCVN 102:2016 status codes 01-06).
fn status_name(lang: Lang, code: &str) -> &'static str {
    let l = lang;
    match code {
        "01" => l.pick("Đã đến", "Received"),
        "02" => l.pick("Từ chối tiếp nhận", "Refused"),
        "03" => l.pick("Đã tiếp nhận", "Accepted"),
        "04" => l.pick("Đã phân công", "Assigned"),
        "05" => l.pick("Đang xử lý", "Being processed"),
        "06" => l.pick("Đã hoàn thành", "Completed"),
        _ => l.pick("Trạng thái khác", "Other status"),
    }
}

/// The name of a document row's state.
fn state_name(lang: Lang, state: &str) -> &'static str {
    let l = lang;
    match state {
        "forwarding" => l.pick("Đang chuyển", "Being forwarded"),
        "forwarded" => l.pick("Đã chuyển đi", "Forwarded"),
        "refused" => l.pick("Bị từ chối", "Refused"),
        "dead" => l.pick("Không chuyển được", "Undeliverable"),
        "delivered" => l.pick("Đã đến, chờ tiếp nhận", "Arrived, awaiting acceptance"),
        "held" => l.pick("Đang chờ kiểm tra lại", "Held for re-validation"),
        "accepted" => l.pick("Đã tiếp nhận", "Accepted"),
        "assigned" => l.pick("Đã phân công", "Assigned"),
        "processing" => l.pick("Đang xử lý", "Being processed"),
        "completed" => l.pick("Đã hoàn thành", "Completed"),
        "recalled" => l.pick("Đã thu hồi", "Recalled"),
        "replaced" => l.pick("Đã thay thế", "Replaced"),
        _ => l.pick("Khác", "Other"),
    }
}

/// The session of anyone of the agency (officer, clerk or admin), or the log-in page.
async fn desk_session(
    state: &ConsoleState,
    lang: Lang,
    headers: &HeaderMap,
    back: &str,
) -> Result<ConsoleSession, Response> {
    match session_of(state, headers).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(Redirect::to(&format!("/login?next={back}")).into_response()),
        Err(e) => Err(Failure::gateway(lang, e).into_response()),
    }
}

/// The node, or a page saying this gateway routes no documents.
fn node_of(lang: Lang, node: NodeExt) -> Result<Arc<Node>, Failure> {
    node.map(|Extension(n)| n).ok_or_else(|| {
        Failure::new(
            lang,
            StatusCode::NOT_FOUND,
            lang.pick(
                "Cổng này không phải là nút chuyển văn bản điện tử.",
                "This gateway does not route documents between agencies.",
            ),
        )
    })
}

/// A routing refusal as a sentence: a document the agency may not see is "not found" (404),
/// as a missing one; a bad request names what is wrong.
fn failure(lang: Lang, e: GatewayError) -> Failure {
    let l = lang;
    match e {
        GatewayError::Domain(crate::Error::Routing(RoutingError::NotFound(_))) => Failure::new(
            l,
            StatusCode::NOT_FOUND,
            l.pick(
                "Không tìm thấy văn bản này trong các văn bản của cơ quan bạn.",
                "This document is not among your agency's documents.",
            ),
        ),
        GatewayError::Domain(crate::Error::Routing(RoutingError::Invalid(why))) => Failure::new(
            l,
            StatusCode::BAD_REQUEST,
            format!(
                "{} ({why}).",
                l.pick("Yêu cầu không hợp lệ", "Invalid request")
            ),
        ),
        e => Failure::gateway(l, e),
    }
}

fn page(lang: Lang, session: &ConsoleSession, title: &str, body: &str) -> String {
    shell(lang, Section::Route, title, Some(session), body)
}

/// Query of `GET /route`: which list and its filters (empty fields are no filter).
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    view: Option<String>,
    state: Option<String>,
    party: Option<String>,
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// `GET /route`: the inbox (default) or the sent list (`view=sent`), filtered.
pub(super) async fn list(
    State(state): State<ConsoleState>,
    lang: Lang,
    headers: HeaderMap,
    node: NodeExt,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let session = match desk_session(&state, lang, &headers, "/route").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match list_page(&state, lang, &session, node, query).await {
        Ok(r) => r,
        Err(f) => f.into_response(),
    }
}

async fn list_page(
    state: &ConsoleState,
    lang: Lang,
    session: &ConsoleSession,
    node: NodeExt,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let l = lang;
    let node = node_of(l, node)?;
    let Query(q) = query.map_err(|_| {
        Failure::form(
            l,
            l.pick("Bộ lọc không hợp lệ.", "The filters are not valid."),
        )
    })?;
    let kind = match q.view.as_deref() {
        Some("sent") => ListKind::Sent,
        _ => ListKind::Inbox,
    };
    let params = ListParams {
        state: given(&q.state),
        sender: given(&q.party).filter(|_| kind == ListKind::Inbox),
        recipient: given(&q.party).filter(|_| kind == ListKind::Sent),
        from: given(&q.from),
        to: given(&q.to),
        q: given(&q.q),
        limit: Some(PAGE_SIZE),
        cursor: given(&q.cursor),
    };
    let listed = state
        .services
        .officer_route_list(&node, &session.officer, kind, &params)
        .await;
    let (rows, next, notice) = match listed {
        Ok((rows, next)) => (rows, next, String::new()),
        Err(e) => {
            let f = failure(l, e);
            (Vec::new(), None, alert(&f.message))
        }
    };
    let view = if kind == ListKind::Sent {
        "sent"
    } else {
        "inbox"
    };
    let items: String = rows
        .iter()
        .map(|d| {
            let party = if kind == ListKind::Sent {
                format!(
                    "{} <span class=\"organ\">{}</span>",
                    l.pick("Gửi đến", "To"),
                    esc(&d.row.recipient_organ)
                )
            } else {
                format!(
                    "{} {} <span class=\"organ\">({})</span>",
                    l.pick("Từ", "From"),
                    esc(&d.meta.sender_name),
                    esc(&d.row.sender_organ)
                )
            };
            let status = d
                .last_status
                .as_deref()
                .map(|c| {
                    format!(
                        " · {} <span class=\"status\" data-code=\"{c}\">{c} {}</span>",
                        l.pick("Trạng thái", "Status"),
                        status_name(l, c),
                        c = esc(c)
                    )
                })
                .unwrap_or_default();
            format!(
                "<li class=\"doc\" data-document-id=\"{id}\"><h3><a href=\"/route/document?document_id={enc}\">{subject}</a></h3>\
                 <p>{number_label} {number} · {party}</p>\
                 <p class=\"muted\">{at_label} {at} · <span class=\"state\" data-state=\"{state}\">{state_name}</span>{status}</p></li>",
                id = esc(&d.row.document_id),
                enc = url_encode(&d.row.document_id),
                subject = esc(if d.meta.subject.is_empty() { &d.row.document_id } else { &d.meta.subject }),
                number_label = l.pick("Số", "No."),
                number = esc(&d.meta.doc_number),
                at_label = l.pick("Lúc", "At"),
                at = esc(&shown_time(&d.row.created_at)),
                state = esc(&d.row.state),
                state_name = state_name(l, &d.row.state),
            )
        })
        .collect();
    let empty = if rows.is_empty() && notice.is_empty() {
        format!(
            "<p class=\"muted\" role=\"status\">{}</p>",
            l.pick("Không có văn bản nào.", "No documents.")
        )
    } else {
        String::new()
    };
    let more = next
        .map(|c| {
            format!(
                "<p><a href=\"/route?view={view}&amp;state={state}&amp;party={party}&amp;from={from}&amp;to={to}&amp;q={q}&amp;cursor={c}\">{label}</a></p>",
                state = url_encode(&given(&q.state).unwrap_or_default()),
                party = url_encode(&given(&q.party).unwrap_or_default()),
                from = url_encode(&given(&q.from).unwrap_or_default()),
                to = url_encode(&given(&q.to).unwrap_or_default()),
                q = url_encode(&given(&q.q).unwrap_or_default()),
                c = url_encode(&c),
                label = l.pick("Trang sau", "Next page"),
            )
        })
        .unwrap_or_default();
    let tab = |v: &str, label: &str| {
        let current = if v == view {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<li><a href=\"/route?view={v}\"{current}>{label}</a></li>")
    };
    let state_options: String = [
        ("", l.pick("Mặc định", "Default")),
        ("all", l.pick("Tất cả", "All")),
        ("delivered", state_name(l, "delivered")),
        ("accepted", state_name(l, "accepted")),
        ("processing", state_name(l, "processing")),
        ("completed", state_name(l, "completed")),
        ("forwarded", state_name(l, "forwarded")),
        ("refused", state_name(l, "refused")),
    ]
    .iter()
    .map(|(v, label)| {
        let selected = if given(&q.state).as_deref().unwrap_or("") == *v {
            " selected"
        } else {
            ""
        };
        format!("<option value=\"{v}\"{selected}>{label}</option>")
    })
    .collect();
    let body = format!(
        "<ul class=\"tabs\">{inbox}{sent}<li><a class=\"button\" href=\"/route/new\">{new}</a></li></ul>\
         <form method=\"get\" action=\"/route\" class=\"filters\" aria-label=\"{filters}\">\
         <input type=\"hidden\" name=\"view\" value=\"{view}\">\
         <div class=\"field\"><label for=\"q\">{q_label}</label><input id=\"q\" name=\"q\" value=\"{qv}\"></div>\
         <div class=\"field\"><label for=\"state\">{state_label}</label><select id=\"state\" name=\"state\">{state_options}</select></div>\
         <div class=\"field\"><label for=\"party\">{party_label}</label><input id=\"party\" name=\"party\" value=\"{partyv}\"></div>\
         <div class=\"field\"><label for=\"from\">{from_label}</label><input type=\"date\" id=\"from\" name=\"from\" value=\"{fromv}\"></div>\
         <div class=\"field\"><label for=\"to\">{to_label}</label><input type=\"date\" id=\"to\" name=\"to\" value=\"{tov}\"></div>\
         <p><button type=\"submit\">{apply}</button></p></form>\
         {notice}<h2>{list_title}</h2>{empty}<ul class=\"docs\">{items}</ul>{more}",
        inbox = tab("inbox", l.pick("Văn bản đến", "Inbox")),
        sent = tab("sent", l.pick("Văn bản đã gửi", "Sent")),
        new = l.pick("Gửi văn bản mới", "Send a new document"),
        filters = l.pick("Lọc văn bản", "Filter documents"),
        q_label = l.pick("Tìm theo trích yếu, số, nơi gửi", "Search subject, number, sender"),
        qv = esc(&given(&q.q).unwrap_or_default()),
        state_label = l.pick("Tình trạng", "State"),
        party_label = if kind == ListKind::Sent {
            l.pick("Mã cơ quan nhận", "Recipient agency code")
        } else {
            l.pick("Mã cơ quan gửi", "Sender agency code")
        },
        partyv = esc(&given(&q.party).unwrap_or_default()),
        from_label = l.pick("Từ ngày", "From"),
        fromv = esc(&given(&q.from).unwrap_or_default()),
        to_label = l.pick("Đến ngày", "Until"),
        tov = esc(&given(&q.to).unwrap_or_default()),
        apply = l.pick("Lọc", "Filter"),
        list_title = if kind == ListKind::Sent {
            l.pick("Văn bản đã gửi", "Sent documents")
        } else {
            l.pick("Văn bản đến", "Incoming documents")
        },
    );
    Ok(html(
        StatusCode::OK,
        page(l, session, l.pick("Văn thư điện tử", "Routing desk"), &body),
    ))
}

/// Query naming a document (and an attachment).
#[derive(Debug, Deserialize)]
pub(super) struct DocumentQuery {
    document_id: String,
    n: Option<usize>,
}

/// One entry of a document's timeline.
struct Event {
    at: String,
    code: Option<String>,
    html: String,
}

fn timeline(lang: Lang, view: &Value) -> Vec<Event> {
    let l = lang;
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let mut events: Vec<Event> = Vec::new();
    for t in view["trace"].as_array().into_iter().flatten() {
        events.push(Event {
            at: text(t, "at"),
            code: None,
            html: format!(
                "{} <span class=\"muted\">{}</span>",
                esc(&text(t, "event")),
                esc(&text(t, "detail"))
            ),
        });
    }
    for s in view["statuses"].as_array().into_iter().flatten() {
        let code = text(s, "code");
        let at = s["issued_at"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| text(s, "at"));
        let description = s["description"]
            .as_str()
            .filter(|d| !d.is_empty())
            .map(|d| format!(" — {}", esc(d)))
            .unwrap_or_default();
        events.push(Event {
            at,
            html: format!(
                "<strong class=\"status\" data-code=\"{c}\">{c} {name}</strong> {from} {organ}{description}",
                c = esc(&code),
                name = status_name(l, &code),
                from = l.pick("từ", "from"),
                organ = esc(&text(s, "from_organ")),
            ),
            code: Some(code),
        });
    }
    events.sort_by(|a, b| a.at.cmp(&b.at));
    events
}

/// `GET /route/document?document_id=`: the document's rows, timeline, downloads and, when it
/// was delivered to the agency, the form to answer it with a status.
pub(super) async fn document(
    State(state): State<ConsoleState>,
    lang: Lang,
    headers: HeaderMap,
    node: NodeExt,
    query: Result<Query<DocumentQuery>, QueryRejection>,
) -> Response {
    let session = match desk_session(&state, lang, &headers, "/route").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match document_page(&state, lang, &session, node, query, None).await {
        Ok(r) => r,
        Err(f) => f.into_response(),
    }
}

async fn document_page(
    state: &ConsoleState,
    lang: Lang,
    session: &ConsoleSession,
    node: NodeExt,
    query: Result<Query<DocumentQuery>, QueryRejection>,
    notice: Option<String>,
) -> Result<Response, Failure> {
    let l = lang;
    let node = node_of(l, node)?;
    let Query(q) = query.map_err(|_| {
        Failure::form(
            l,
            l.pick("Thiếu mã văn bản.", "The document id is missing."),
        )
    })?;
    let officer = &session.officer;
    let view = state
        .services
        .officer_route_status(&node, officer, &q.document_id)
        .await
        .map_err(|e| failure(l, e))?;
    // The document's metadata, from the agency's own lists.
    let mut meta = None;
    for kind in [ListKind::Inbox, ListKind::Sent] {
        let params = ListParams {
            state: Some("all".into()),
            q: Some(q.document_id.clone()),
            limit: Some(50),
            ..ListParams::default()
        };
        if let Ok((rows, _)) = state
            .services
            .officer_route_list(&node, officer, kind, &params)
            .await
        {
            if let Some(d) = rows
                .into_iter()
                .find(|d| d.row.document_id == q.document_id)
            {
                meta = Some(d);
                break;
            }
        }
    }
    let rows = view["documents"].as_array().cloned().unwrap_or_default();
    let mine = |r: &Value| {
        r["next_node"].is_null()
            && (r["owner_organ"] == officer.agency.as_str()
                || r["recipient_organ"] == officer.agency.as_str())
    };
    let received = rows.iter().any(mine);
    let open = rows.iter().any(|r| {
        mine(r)
            && matches!(
                r["state"].as_str(),
                Some("delivered" | "accepted" | "assigned" | "processing")
            )
    });
    let enc = url_encode(&q.document_id);
    let recipients: String = rows
        .iter()
        .map(|r| {
            let s = r["state"].as_str().unwrap_or_default();
            format!(
                "<li><span class=\"organ\">{}</span>: <span class=\"state\" data-state=\"{}\">{}</span></li>",
                esc(r["recipient_organ"].as_str().unwrap_or_default()),
                esc(s),
                state_name(l, s)
            )
        })
        .collect();
    let events: String = timeline(l, &view)
        .iter()
        .map(|e| {
            let code = e
                .code
                .as_deref()
                .map(|c| format!(" data-code=\"{}\"", esc(c)))
                .unwrap_or_default();
            format!(
                "<li{code}><time datetime=\"{at}\">{shown}</time> {text}</li>",
                at = esc(&e.at),
                shown = esc(&shown_time(&e.at)),
                text = e.html
            )
        })
        .collect();
    let (summary, attachments) = match &meta {
        Some(d) => {
            let m = &d.meta;
            let files: String = m
                .attachments
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    format!(
                        "<li><a class=\"attachment\" href=\"/route/download?document_id={enc}&amp;n={i}\">{name}</a> <span class=\"muted\">({kb} KB)</span></li>",
                        name = esc(&a.name),
                        kb = a.size.div_ceil(1024)
                    )
                })
                .collect();
            (
                format!(
                    "<dl><div class=\"row\"><dt>{subject_l}</dt><dd>{subject}</dd></div>\
                     <div class=\"row\"><dt>{number_l}</dt><dd>{number}</dd></div>\
                     <div class=\"row\"><dt>{sender_l}</dt><dd>{sender} ({sender_id})</dd></div>\
                     <div class=\"row\"><dt>{date_l}</dt><dd>{date}</dd></div></dl>",
                    subject_l = l.pick("Trích yếu", "Subject"),
                    subject = esc(&m.subject),
                    number_l = l.pick("Số, ký hiệu", "Number"),
                    number = esc(&m.doc_number),
                    sender_l = l.pick("Cơ quan gửi", "Sender"),
                    sender = esc(&m.sender_name),
                    sender_id = esc(&d.row.sender_organ),
                    date_l = l.pick("Ngày ban hành", "Date"),
                    date = esc(m.promulgation_date.as_deref().unwrap_or("")),
                ),
                files,
            )
        }
        None => (String::new(), String::new()),
    };
    let ack = if open {
        let codes: String = ["03", "04", "05", "06"]
            .iter()
            .map(|c| format!("<option value=\"{c}\">{c} {}</option>", status_name(l, c)))
            .collect();
        format!(
            "<section aria-labelledby=\"answer\"><h2 id=\"answer\">{title}</h2>\
             <form method=\"post\" action=\"/route/ack\" enctype=\"multipart/form-data\" class=\"stack\" id=\"ack-form\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"document_id\" value=\"{id}\">\
             <div class=\"field\"><label for=\"status\">{status_l}</label><select id=\"status\" name=\"status\">{codes}</select></div>\
             <div class=\"field\"><label for=\"description\">{desc_l}</label><input id=\"description\" name=\"description\" maxlength=\"500\"></div>\
             <p><button type=\"submit\" id=\"ack\">{send}</button></p></form></section>",
            title = l.pick("Tiếp nhận và trả lời", "Acknowledge and answer"),
            csrf = esc(&session.csrf),
            id = esc(&q.document_id),
            status_l = l.pick("Trạng thái gửi lại cơ quan gửi", "Status sent back to the sender"),
            desc_l = l.pick("Ghi chú (không bắt buộc)", "Note (optional)"),
            send = l.pick("Gửi trạng thái", "Send the status"),
        )
    } else {
        String::new()
    };
    let downloads = if received {
        format!(
            "<section aria-labelledby=\"files\"><h2 id=\"files\">{title}</h2><ul>\
             <li><a id=\"envelope\" href=\"/route/download?document_id={enc}\">{envelope}</a></li>{attachments}</ul></section>",
            title = l.pick("Tải về", "Downloads"),
            envelope = l.pick("Gói tin edXML đã nhận", "The received edXML envelope"),
        )
    } else if !attachments.is_empty() {
        format!(
            "<section aria-labelledby=\"files\"><h2 id=\"files\">{}</h2><ul>{attachments}</ul></section>",
            l.pick("Tệp đính kèm", "Attachments")
        )
    } else {
        String::new()
    };
    let body = format!(
        "{notice}<p class=\"docid\">{id_l}: <code>{id}</code></p>{summary}\
         <section aria-labelledby=\"recipients\"><h2 id=\"recipients\">{rec_title}</h2><ul class=\"recipients\">{recipients}</ul></section>\
         <section aria-labelledby=\"trace\"><h2 id=\"trace\">{trace_title}</h2><ol class=\"timeline\">{events}</ol></section>\
         {downloads}{ack}<p><a href=\"/route\">{back}</a></p>",
        notice = notice.unwrap_or_default(),
        id_l = l.pick("Mã văn bản", "Document id"),
        id = esc(&q.document_id),
        rec_title = l.pick("Nơi nhận và tình trạng", "Recipients and state"),
        trace_title = l.pick("Diễn biến", "Timeline"),
        back = l.pick("Về danh sách văn bản", "Back to the documents"),
    );
    Ok(html(
        StatusCode::OK,
        page(l, session, l.pick("Văn bản", "Document"), &body),
    ))
}

/// `POST /route/ack`: answers a received document with a status.
pub(super) async fn ack(
    State(state): State<ConsoleState>,
    lang: Lang,
    node: NodeExt,
    req: Request,
) -> Response {
    let l = lang;
    let headers = req.headers().clone();
    let session = match desk_session(&state, l, &headers, "/route").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = async {
        let node = node_of(l, node)?;
        let form = Form::read(l, &state, req).await?;
        form.check_csrf(l, Some(&session.csrf))?;
        let document_id = form.text("document_id").unwrap_or_default().to_string();
        let code = form.text("status").unwrap_or_default().trim().to_string();
        let description = form
            .text("description")
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| d.chars().take(500).collect::<String>());
        state
            .services
            .officer_route_ack(&node, &session.officer, &document_id, &code, description)
            .await
            .map_err(|e| failure(l, e))?;
        Ok::<_, Failure>(document_id)
    }
    .await;
    match result {
        Ok(id) => Redirect::to(&format!("/route/document?document_id={}", url_encode(&id)))
            .into_response(),
        Err(f) => f.into_response(),
    }
}

/// `GET /route/download?document_id=&n=`: the received envelope, or its attachment `n`.
pub(super) async fn download(
    State(state): State<ConsoleState>,
    lang: Lang,
    headers: HeaderMap,
    node: NodeExt,
    query: Result<Query<DocumentQuery>, QueryRejection>,
) -> Response {
    let session = match desk_session(&state, lang, &headers, "/route").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = async {
        let node = node_of(lang, node)?;
        let Query(q) = query.map_err(|_| {
            Failure::form(
                lang,
                lang.pick("Thiếu mã văn bản.", "The document id is missing."),
            )
        })?;
        state
            .services
            .officer_route_file(&node, &session.officer, &q.document_id, q.n)
            .await
            .map_err(|e| failure(lang, e))
    }
    .await;
    let file = match result {
        Ok(f) => f,
        Err(f) => return f.into_response(),
    };
    let (content_type, disposition) = (file.served_type(), file.content_disposition());
    let mut response = (StatusCode::OK, file.bytes).into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// Query of `GET /route/new`: the directory search.
#[derive(Debug, Default, Deserialize)]
pub(super) struct NewQuery {
    q: Option<String>,
    province: Option<String>,
}

/// `GET /route/new?q=&province=`: the directory search and the form that builds and sends a
/// document to the agencies picked.
pub(super) async fn new_form(
    State(state): State<ConsoleState>,
    lang: Lang,
    headers: HeaderMap,
    node: NodeExt,
    query: Result<Query<NewQuery>, QueryRejection>,
) -> Response {
    let session = match desk_session(&state, lang, &headers, "/route/new").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = query.map(|Query(q)| q).unwrap_or_default();
    match new_page(&state, lang, &session, node, &q, None, StatusCode::OK).await {
        Ok(r) => r,
        Err(f) => f.into_response(),
    }
}

async fn new_page(
    state: &ConsoleState,
    lang: Lang,
    session: &ConsoleSession,
    node: NodeExt,
    q: &NewQuery,
    notice: Option<String>,
    status: StatusCode,
) -> Result<Response, Failure> {
    let l = lang;
    node_of(l, node)?;
    let services = &state.services;
    let text = given(&q.q).unwrap_or_default();
    let province = given(&q.province);
    let provinces = services.provinces().await.map_err(|e| failure(l, e))?;
    let agencies = services
        .search_agencies(&text, province.as_deref())
        .await
        .map_err(|e| failure(l, e))?;
    let keys = services
        .officer_keys(&session.officer)
        .await
        .map_err(|e| failure(l, e))?;
    let province_options: String = std::iter::once(format!(
        "<option value=\"\">{}</option>",
        l.pick("Mọi tỉnh, thành phố", "Every province")
    ))
    .chain(provinces.iter().map(|p| {
        let selected = if province.as_deref() == Some(p.gso_code.as_str()) {
            " selected"
        } else {
            ""
        };
        format!(
            "<option value=\"{code}\"{selected}>{name}</option>",
            code = esc(&p.gso_code),
            name = esc(&p.name)
        )
    }))
    .collect();
    let choices: String = agencies
        .iter()
        .filter(|a| a.organ_id != session.officer.agency)
        .enumerate()
        .map(|(i, a)| {
            format!(
                "<li><input type=\"checkbox\" id=\"to-{i}\" name=\"to\" value=\"{id}\" data-name=\"{name}\"> \
                 <label for=\"to-{i}\">{name} <span class=\"muted\">({id}, {province})</span></label></li>",
                id = esc(&a.organ_id),
                name = esc(&a.name),
                province = esc(&a.province),
            )
        })
        .collect();
    let none = if choices.is_empty() {
        format!(
            "<p class=\"muted\" role=\"status\">{}</p>",
            l.pick(
                "Không tìm thấy cơ quan nào. Hãy thử tên khác.",
                "No agency found. Try another name."
            )
        )
    } else {
        String::new()
    };
    let key_options: String = keys
        .iter()
        .map(|k| format!("<option value=\"{n}\">{n}</option>", n = esc(&k.name)))
        .collect();
    let no_keys = if keys.is_empty() {
        alert(l.pick(
            "Cơ quan của bạn chưa có khóa ký nào để ký gói tin.",
            "Your agency has no signing key for the envelope.",
        ))
    } else {
        String::new()
    };
    let today = {
        let now = OffsetDateTime::now_utc().to_offset(crate::clock::VIETNAM);
        format!(
            "{:04}-{:02}-{:02}",
            now.year(),
            u8::from(now.month()),
            now.day()
        )
    };
    let field = |id: &str, label: &str, extra: &str| {
        format!(
            "<div class=\"field\"><label for=\"{id}\">{label}</label><input id=\"{id}\" name=\"{id}\"{extra}></div>"
        )
    };
    let body = format!(
        "{notice}{no_keys}<p>{intro}</p>\
         <form method=\"get\" action=\"/route/new\" class=\"filters\" aria-label=\"{search_label}\">\
         <div class=\"field\"><label for=\"q\">{q_label}</label><input id=\"q\" name=\"q\" value=\"{qv}\"></div>\
         <div class=\"field\"><label for=\"province\">{prov_label}</label><select id=\"province\" name=\"province\">{province_options}</select></div>\
         <p><button type=\"submit\" id=\"search\">{search}</button></p></form>\
         <form method=\"post\" action=\"/route/send\" enctype=\"multipart/form-data\" class=\"stack\" id=\"send-form\" data-progress>\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <fieldset><legend>{to_label}</legend>{none}<ul class=\"choices\">{choices}</ul></fieldset>\
         {number}{notation}\
         <div class=\"field\"><label for=\"type\">{type_label}</label><select id=\"type\" name=\"type\">\
         <option value=\"18\">{cv}</option><option value=\"2\">{qd}</option><option value=\"26\">{tb}</option></select></div>\
         {subject}{place}\
         <div class=\"field\"><label for=\"date\">{date_label}</label><input type=\"date\" id=\"date\" name=\"date\" value=\"{today}\" required></div>\
         {signer}{position}\
         <div class=\"field\"><label for=\"key\">{key_label}</label><select id=\"key\" name=\"key\" required>{key_options}</select></div>\
         <div class=\"field\"><label for=\"document\">{doc_label}</label>\
         <input type=\"file\" id=\"document\" name=\"document\" accept=\"application/pdf,.pdf\" required aria-describedby=\"doc-help\">\
         <p id=\"doc-help\" class=\"help\">{doc_help}</p></div>\
         <div class=\"field\"><label for=\"attachment\">{att_label}</label>\
         <input type=\"file\" id=\"attachment\" name=\"attachment\" multiple></div>\
         <progress hidden max=\"100\" value=\"0\" aria-label=\"{progress}\"></progress>\
         <p><button type=\"submit\" id=\"send\">{send}</button></p></form>",
        notice = notice.unwrap_or_default(),
        intro = l.pick(
            "Tìm cơ quan nhận theo tên hoặc theo tỉnh, thành phố, đánh dấu các cơ quan nhận, điền thông tin văn bản và chọn tệp PDF đã ký số.",
            "Find the recipients by name or by province, tick them, fill in the document's details and pick the signed PDF."
        ),
        search_label = l.pick("Tìm cơ quan nhận", "Find recipients"),
        q_label = l.pick("Tên cơ quan (ví dụ: Ba Đình)", "Agency name (e.g. Ba Đình)"),
        qv = esc(&text),
        prov_label = l.pick("Tỉnh, thành phố", "Province"),
        search = l.pick("Tìm", "Search"),
        csrf = esc(&session.csrf),
        to_label = l.pick("Cơ quan nhận", "Recipients"),
        number = field("number", l.pick("Số văn bản", "Document number"), " required"),
        notation = field("notation", l.pick("Ký hiệu (ví dụ: UBND-VP)", "Notation (e.g. UBND-VP)"), " required"),
        type_label = l.pick("Loại văn bản", "Document type"),
        cv = l.pick("Công văn", "Official letter (công văn)"),
        qd = l.pick("Quyết định", "Decision (quyết định)"),
        tb = l.pick("Thông báo", "Notice (thông báo)"),
        subject = field("subject", l.pick("Trích yếu", "Subject"), " required maxlength=\"500\""),
        place = field("place", l.pick("Nơi ban hành", "Place of issue"), " required"),
        date_label = l.pick("Ngày ban hành", "Date of issue"),
        signer = field("signer", l.pick("Người ký", "Signed by"), " required"),
        position = field("position", l.pick("Chức vụ người ký", "Signer's position"), ""),
        key_label = l.pick("Khóa ký gói tin của cơ quan", "Agency key for the envelope"),
        doc_label = l.pick("Văn bản PDF đã ký số", "Signed PDF document"),
        doc_help = l.pick(
            "Văn bản chính, đã được ký số (ví dụ tại bàn đóng dấu).",
            "The main document, already signed (e.g. at the stamp desk)."
        ),
        att_label = l.pick("Tệp đính kèm khác (không bắt buộc)", "Other attachments (optional)"),
        progress = l.pick("Tiến độ tải lên", "Upload progress"),
        send = l.pick("Ký gói tin và gửi", "Sign the envelope and send"),
    );
    Ok(html(
        status,
        page(l, session, l.pick("Gửi văn bản", "Send a document"), &body),
    ))
}

/// `POST /route/send`: builds, signs and sends the document; shows its id and first status.
pub(super) async fn send(
    State(state): State<ConsoleState>,
    lang: Lang,
    node: NodeExt,
    req: Request,
) -> Response {
    let l = lang;
    let headers = req.headers().clone();
    let session = match desk_session(&state, l, &headers, "/route/new").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = async {
        let node = node_of(l, node.clone())?;
        let form = Form::read(l, &state, req).await?;
        form.check_csrf(l, Some(&session.csrf))?;
        let bad = |vi: &'static str, en: &'static str| Failure::form(l, l.pick(vi, en));
        let to: Vec<OrganSpec> = form
            .texts
            .iter()
            .filter(|(n, v)| n == "to" && !v.trim().is_empty())
            .map(|(_, v)| OrganSpec::Id(v.trim().to_string()))
            .collect();
        if to.is_empty() {
            return Err(bad(
                "Hãy chọn ít nhất một cơ quan nhận.",
                "Pick at least one recipient.",
            ));
        }
        let text = |name: &str| form.text(name).unwrap_or_default().trim().to_string();
        let optional = |name: &str| Some(text(name)).filter(|v| !v.is_empty());
        let mut files = Vec::new();
        for (name, file_name, bytes) in &form.files {
            if name == "document" || name == "attachment" {
                files.push(FileSpec {
                    name: file_name.clone(),
                    data: bytes.to_vec(),
                    content_type: None,
                    description: None,
                });
            }
        }
        if !form.files.iter().any(|(n, _, _)| n == "document") {
            return Err(bad(
                "Hãy chọn văn bản PDF đã ký số.",
                "Pick the signed PDF document.",
            ));
        }
        let type_name = match text("type").as_str() {
            "2" => Some("Quyết định"),
            "26" => Some("Thông báo"),
            _ => Some("Công văn"),
        };
        let spec = DocumentSpec {
            to,
            number: text("number"),
            notation: text("notation"),
            document_type: optional("type").unwrap_or_else(|| "18".into()),
            type_name: type_name.map(String::from),
            subject: text("subject"),
            date: text("date"),
            place: text("place"),
            signer: text("signer"),
            position: optional("position"),
            ..DocumentSpec::default()
        };
        let key = text("key");
        let receipt = state
            .services
            .officer_route_send(&node, &session.officer, &key, spec, files)
            .await
            .map_err(|e| failure(l, e))?;
        Ok::<_, Failure>(receipt)
    }
    .await;
    match result {
        Ok(receipt) => {
            let enc = url_encode(&receipt.document_id);
            let refused = receipt.code_text() != "01";
            let message = if refused {
                alert(&format!(
                    "{} {}",
                    l.pick("Văn bản bị từ chối:", "The document was refused:"),
                    receipt.reason.as_deref().unwrap_or_default()
                ))
            } else {
                format!(
                    "<p role=\"status\">{} <span class=\"status\" data-code=\"01\">01 {}</span>.</p>",
                    l.pick(
                        "Đã ký gói tin và gửi. Trạng thái đầu tiên:",
                        "The envelope was signed and sent. First status:"
                    ),
                    status_name(l, "01")
                )
            };
            let body = format!(
                "<section class=\"result\" aria-labelledby=\"done\"><h2 id=\"done\">{done}</h2>{message}\
                 <p>{id_l}: <code id=\"sent-id\">{id}</code></p>\
                 <p><a id=\"follow\" href=\"/route/document?document_id={enc}\">{follow}</a></p>\
                 <p><a href=\"/route/new\">{again}</a></p></section>",
                done = if refused {
                    l.pick("Không gửi được", "Not sent")
                } else {
                    l.pick("Đã gửi", "Sent")
                },
                id_l = l.pick("Mã văn bản", "Document id"),
                id = esc(&receipt.document_id),
                follow = l.pick("Theo dõi văn bản này", "Follow this document"),
                again = l.pick("Gửi văn bản khác", "Send another document"),
            );
            let status = if refused {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            };
            html(
                status,
                page(l, &session, l.pick("Gửi văn bản", "Send a document"), &body),
            )
        }
        Err(failure) if failure.status == StatusCode::FORBIDDEN => failure.into_response(),
        Err(failure) => {
            let notice = alert(&failure.message);
            match new_page(
                &state,
                l,
                &session,
                node,
                &NewQuery::default(),
                Some(notice),
                failure.status,
            )
            .await
            {
                Ok(r) => r,
                Err(f) => f.into_response(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_ids_survive_the_query() {
        assert_eq!(
            url_encode("DEMO.H01,2025/07/01,12/UBND-VP"),
            "DEMO.H01%2C2025%2F07%2F01%2C12%2FUBND-VP"
        );
        assert_eq!(url_encode("Đ"), "%C4%90");
    }

    #[test]
    fn statuses_have_names() {
        assert_eq!(status_name(Lang::En, "03"), "Accepted");
        assert_eq!(status_name(Lang::Vi, "01"), "Đã đến");
        assert_eq!(status_name(Lang::En, "99"), "Other status");
    }
}
