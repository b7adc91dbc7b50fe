//! The web console (issue 18): pages for people, served by `signgate serve` at `/` on the API's
//! port, over the same gateway services as the API. No crypto and no SQL here: the pages parse
//! a form, call a [`crate::gateway`] service and render HTML.
//!
//! - `/verify`, public: the verification of a PDF, XML or CMS file (and its detached content),
//!   told in sentences ([`verdict`]); rate-limited per address; the upload is neither stored,
//!   audited nor logged ([`crate::gateway::Services::verify_anonymous`]).
//! - `/login`, `/logout`: officers' sessions (a password, or over TLS a client certificate
//!   bound to the account: [`certlogin`]) ([`crate::gateway::accounts`]) in `HttpOnly`,
//!   `SameSite=Strict` cookies (`Secure` over TLS); failed log-ins are throttled per address
//!   and per user name. Session cookies never authenticate `/v1`: the API reads only bearer
//!   tokens and client certificates.
//! - `/desk`, officers: the stamp desk ([`desk`]).
//! - `/route…`, officers and clerks on a routing node: the routing desk ([`routing_desk`]).
//!
//! Every form carries a CSRF token: the session's, or before log-in one bound to a
//! `SameSite=Strict` cookie (double submit). Pages and assets are compiled in
//! (`include_str!`), the Content-Security-Policy allows scripts and styles from this origin
//! only, and nothing is loaded from another host. Vietnamese by default, English with
//! `?lang=en` (remembered in a cookie).

mod batch;
mod certlogin;
mod desk;
mod page;
mod report;
mod routing_desk;
mod throttle;
mod verdict;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::gateway::accounts::ConsoleSession;
use crate::gateway::{GatewayError, Secret, Services};
use crate::tls::ConnectionInfo;
use page::{alert, cookie, esc, shell, Lang, Section};
use throttle::Throttle;

/// The Content-Security-Policy of every console answer.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("../../assets/console/console.css");
const SCRIPT: &str = include_str!("../../assets/console/console.js");
/// pdf.js (npm `pdfjs-dist` 6.5.438, Apache-2.0; `assets/console/pdfjs/README.md`): draws the
/// stamp desk's page in the browser.
const PDFJS: &[u8] = include_bytes!("../../assets/console/pdfjs/pdf.min.mjs");
const PDFJS_WORKER: &[u8] = include_bytes!("../../assets/console/pdfjs/pdf.worker.min.mjs");

/// The session cookie.
const SESSION_COOKIE: &str = "sg_session";
/// The cookie holding the CSRF token of forms shown before log-in.
const PRE_COOKIE: &str = "sg_pre";

/// Verifications per address and window on the public page.
const VERIFY_PER_WINDOW: usize = 30;
/// Failed log-ins per address or user name and window before log-in is refused.
const LOGIN_FAILURES: usize = 5;

/// The console's state: the services, the throttles and the stamp desk's signed files.
#[derive(Clone)]
pub struct ConsoleState {
    services: Services,
    verify_limit: Arc<Throttle>,
    login_failures: Arc<Throttle>,
    outputs: Arc<Mutex<desk::Outputs>>,
}

/// The console's router (`/`, `/verify`, `/login`, `/logout`, `/desk…`, `/assets/…`), to be
/// merged with the API's.
pub fn router(services: Services) -> Router {
    let limit = services.settings().max_body_bytes;
    let state = ConsoleState {
        services,
        verify_limit: Arc::new(Throttle::new(VERIFY_PER_WINDOW, Duration::from_secs(300))),
        login_failures: Arc::new(Throttle::new(LOGIN_FAILURES, Duration::from_secs(900))),
        outputs: Arc::new(Mutex::new(desk::Outputs::default())),
    };
    Router::new()
        .route("/", get(home))
        .route("/verify", get(verify_form).post(verify_check))
        .route("/verify/report", post(report::download))
        .route("/login", get(login_form).post(login))
        .route("/login/certificate", post(certlogin::login))
        .route("/logout", post(logout))
        .route("/desk", get(desk::form))
        .route("/desk/sign", post(desk::sign))
        .route("/desk/download/{id}", get(desk::download))
        .route("/desk/batch", get(batch::form).post(batch::create))
        .route("/desk/batch/{id}", get(batch::show))
        .route("/desk/batch/{id}/progress", get(batch::progress))
        .route("/desk/batch/{id}/archive", get(batch::archive))
        .route("/route", get(routing_desk::list))
        .route("/route/document", get(routing_desk::document))
        .route("/route/download", get(routing_desk::download))
        .route("/route/ack", post(routing_desk::ack))
        .route("/route/new", get(routing_desk::new_form))
        .route("/route/send", post(routing_desk::send))
        .route("/assets/console.css", get(style))
        .route("/assets/console.js", get(script))
        .route("/assets/pdfjs/pdf.min.mjs", get(|| javascript(PDFJS)))
        .route(
            "/assets/pdfjs/pdf.worker.min.mjs",
            get(|| javascript(PDFJS_WORKER)),
        )
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security_headers,
        ))
        .with_state(state)
}

/// Adds the security headers to every console answer (HSTS over TLS), remembers a `?lang=`
/// choice, and counts the request in the metrics by route (route, status and time only: never
/// a document or a form field).
async fn security_headers(State(state): State<ConsoleState>, req: Request, next: Next) -> Response {
    let lang = Lang::from_query(req.uri().query());
    let tls = req
        .extensions()
        .get::<ConnectionInfo>()
        .is_some_and(|i| i.tls);
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = std::time::Instant::now();
    let mut response = next.run(req).await;
    state
        .services
        .metrics()
        .request(&route, response.status().as_u16(), started.elapsed());
    let h = response.headers_mut();
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(lang) = lang {
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{}={}; Path=/; Max-Age=31536000; SameSite=Lax",
            page::LANG_COOKIE,
            lang.code()
        )) {
            h.append(header::SET_COOKIE, v);
        }
    }
    response
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

async fn script() -> Response {
    javascript(SCRIPT.as_bytes()).await
}

async fn javascript(source: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        source,
    )
        .into_response()
}

/// An HTML page answer.
fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A request that cannot be served, told as a sentence on a page.
pub(crate) struct Failure {
    lang: Lang,
    status: StatusCode,
    message: String,
}

impl Failure {
    fn new(lang: Lang, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            lang,
            status,
            message: message.into(),
        }
    }

    /// A form without the right CSRF token.
    fn csrf(lang: Lang) -> Self {
        Self::new(
            lang,
            StatusCode::FORBIDDEN,
            lang.pick(
                "Biểu mẫu đã hết hạn hoặc không gửi từ trang này. Hãy tải lại trang và thử lại.",
                "The form has expired or was not sent from this site. Reload the page and try again.",
            ),
        )
    }

    /// A malformed form.
    fn form(lang: Lang, message: impl Into<String>) -> Self {
        Self::new(lang, StatusCode::BAD_REQUEST, message)
    }

    /// A gateway service's refusal, as a sentence.
    fn gateway(lang: Lang, e: GatewayError) -> Self {
        let l = lang;
        match e {
            GatewayError::Domain(e) => Self::new(
                l,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "{} ({e}).",
                    l.pick("Không xử lý được tệp này", "This file cannot be processed")
                ),
            ),
            GatewayError::UnknownKey(_) | GatewayError::NotFound(_) => Self::new(
                l,
                StatusCode::NOT_FOUND,
                l.pick(
                    "Không tìm thấy khóa ký hoặc tài liệu này.",
                    "This signing key or document was not found.",
                ),
            ),
            GatewayError::Invalid(why) => Self::new(
                l,
                StatusCode::BAD_REQUEST,
                format!(
                    "{} ({why}).",
                    l.pick("Yêu cầu không hợp lệ", "Invalid request")
                ),
            ),
            e => {
                tracing::error!(error = %e, "console: internal error");
                Self::new(
                    l,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    l.pick(
                        "Cổng ký số gặp lỗi nội bộ. Hãy thử lại sau hoặc báo cho quản trị viên.",
                        "The gateway met an internal error. Try again later or tell the administrator.",
                    ),
                )
            }
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let l = self.lang;
        let title = l.pick("Không thực hiện được", "Could not be done");
        let body = format!(
            "{}<p><a href=\"/\">{}</a></p>",
            alert(&self.message),
            l.pick("Về trang chủ", "Back to the home page")
        );
        html(self.status, shell(l, Section::Home, title, None, &body))
    }
}

/// The fields of a multipart form: text fields and files (an empty file input is absent).
#[derive(Default)]
pub(crate) struct Form {
    texts: Vec<(String, String)>,
    files: Vec<(String, String, Bytes)>,
}

impl Form {
    async fn read(lang: Lang, state: &ConsoleState, req: Request) -> Result<Self, Failure> {
        let limit = state.services.settings().max_body_bytes;
        let too_large = || {
            Failure::new(
                lang,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{} {} MiB.",
                    lang.pick(
                        "Tệp quá lớn; giới hạn là",
                        "The file is too large; the limit is"
                    ),
                    limit / (1024 * 1024)
                ),
            )
        };
        let mut multipart = Multipart::from_request(req, state).await.map_err(|_| {
            Failure::form(
                lang,
                lang.pick(
                    "Biểu mẫu gửi lên không đọc được.",
                    "The form sent cannot be read.",
                ),
            )
        })?;
        let mut form = Form::default();
        loop {
            let field = match multipart.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
                Err(_) => {
                    return Err(Failure::form(
                        lang,
                        lang.pick(
                            "Biểu mẫu gửi lên không đọc được.",
                            "The form sent cannot be read.",
                        ),
                    ))
                }
            };
            let name = field.name().unwrap_or_default().to_string();
            let file_name = field.file_name().map(str::to_string);
            let bytes = field.bytes().await.map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    Failure::form(
                        lang,
                        lang.pick("Tệp gửi lên bị ngắt.", "The upload was cut off."),
                    )
                }
            })?;
            match file_name {
                Some(file) if bytes.is_empty() && file.is_empty() => {}
                Some(file) => form.files.push((name, file, bytes)),
                None => form
                    .texts
                    .push((name, String::from_utf8_lossy(&bytes).into_owned())),
            }
        }
        Ok(form)
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.texts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn file(&self, name: &str) -> Option<(&str, &Bytes)> {
        self.files
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, f, b)| (f.as_str(), b))
    }

    /// Checks the form's `csrf` field against `expected`, in constant time.
    fn check_csrf(&self, lang: Lang, expected: Option<&str>) -> Result<(), Failure> {
        match (self.text("csrf"), expected) {
            (Some(given), Some(expected))
                if !expected.is_empty()
                    && bool::from(given.as_bytes().ct_eq(expected.as_bytes())) =>
            {
                Ok(())
            }
            _ => Err(Failure::csrf(lang)),
        }
    }
}

/// Whether the request came over TLS (cookies are then `Secure`).
fn over_tls(info: &Option<Extension<ConnectionInfo>>) -> bool {
    info.as_ref().is_some_and(|Extension(i)| i.tls)
}

/// The client's address as the throttles key it.
fn address(info: &Option<Extension<ConnectionInfo>>) -> String {
    info.as_ref()
        .map(|Extension(i)| i.remote.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Path=/`, `Secure` over TLS.
fn set_cookie(name: &str, value: &str, max_age: Option<i64>, tls: bool) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    if tls {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("sg_invalid=1"))
}

/// The valid session the request's cookie names, if any.
async fn session_of(
    state: &ConsoleState,
    headers: &HeaderMap,
) -> Result<Option<ConsoleSession>, GatewayError> {
    match cookie(headers, SESSION_COOKIE) {
        Some(token) if !token.is_empty() => state.services.console_session(token).await,
        _ => Ok(None),
    }
}

/// The CSRF token for a form shown before log-in: the `sg_pre` cookie's, or a new one (with
/// the `Set-Cookie` to send).
fn pre_token(headers: &HeaderMap, tls: bool) -> (String, Option<HeaderValue>) {
    match cookie(headers, PRE_COOKIE) {
        Some(v) if v.len() >= 16 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
            (v.to_string(), None)
        }
        _ => {
            let token = crate::ids::random_id("pre_");
            let set = set_cookie(PRE_COOKIE, &token, None, tls);
            (token, Some(set))
        }
    }
}

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

async fn home(
    State(state): State<ConsoleState>,
    lang: Lang,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let l = lang;
    let session = session_of(&state, &headers)
        .await
        .map_err(|e| Failure::gateway(l, e))?;
    let body = format!(
        "<p>{intro}</p><ul class=\"cards\">\
         <li><h2><a href=\"/verify\">{verify}</a></h2><p>{verify_text}</p></li>\
         <li><h2><a href=\"/desk\">{desk}</a></h2><p>{desk_text}</p></li></ul>",
        intro = l.pick(
            "Cổng ký số của cơ quan nhà nước: xác minh văn bản điện tử đã ký số, và đóng dấu, ký số văn bản tại bộ phận một cửa.",
            "The public administration's signing gateway: check signed electronic documents, and stamp and sign documents at the service desk."
        ),
        verify = l.pick("Xác minh chữ ký số", "Verify a digital signature"),
        verify_text = l.pick(
            "Dành cho mọi người, không cần đăng nhập: chọn tệp PDF, XML hoặc CMS để biết chữ ký có hợp lệ không.",
            "For everyone, no log-in: pick a PDF, XML or CMS file to learn whether its signatures are valid."
        ),
        desk = l.pick("Bàn đóng dấu", "Stamp desk"),
        desk_text = l.pick(
            "Dành cho cán bộ: tải lên văn bản, chọn vị trí đóng dấu, ký số và tải về.",
            "For officers: upload a document, place the stamp, sign and download."
        ),
    );
    Ok(html(
        StatusCode::OK,
        shell(
            l,
            Section::Home,
            l.pick("Cổng ký số", "Signing gateway"),
            session.as_ref(),
            &body,
        ),
    ))
}

fn verify_form_html(lang: Lang, csrf: &str) -> String {
    let l = lang;
    format!(
        "<p>{intro}</p>\
         <form method=\"post\" action=\"/verify\" enctype=\"multipart/form-data\" class=\"stack\" id=\"verify-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <div class=\"field\"><label for=\"document\">{doc}</label>\
         <input type=\"file\" id=\"document\" name=\"document\" required aria-describedby=\"document-help\">\
         <p id=\"document-help\" class=\"help\">{doc_help}</p></div>\
         <div class=\"field\"><label for=\"content\">{content}</label>\
         <input type=\"file\" id=\"content\" name=\"content\" aria-describedby=\"content-help\">\
         <p id=\"content-help\" class=\"help\">{content_help}</p></div>\
         <progress hidden max=\"100\" value=\"0\" aria-label=\"{progress}\"></progress>\
         <p><button type=\"submit\">{submit}</button> \
         <button type=\"submit\" id=\"report-pdf\" formaction=\"/verify/report\" aria-describedby=\"report-help\">{report}</button></p>\
         <p id=\"report-help\" class=\"help\">{report_help}</p></form>\
         <section id=\"pages\" hidden aria-labelledby=\"pages-title\"><h2 id=\"pages-title\">{pages}</h2>\
         <p class=\"help\">{pages_help}</p><div class=\"pages\" data-page-label=\"{page_label}\"></div></section>",
        pages = l.pick("Các trang của tài liệu", "The document's pages"),
        pages_help = l.pick(
            "Các ô chữ ký được khoanh viền đỏ. Trang được vẽ ngay trong trình duyệt, không gửi đi đâu.",
            "Signature fields are outlined in red. The pages are drawn in your browser and sent nowhere."
        ),
        page_label = l.pick("Trang", "Page"),
        intro = l.pick(
            "Chọn hoặc kéo thả tệp đã ký. Tệp chỉ được dùng để kiểm tra rồi bị xóa ngay: không lưu, không ghi nhật ký.",
            "Pick or drop a signed file. It is used for the check only and dropped at once: neither stored nor logged."
        ),
        csrf = esc(csrf),
        doc = l.pick("Tệp đã ký (PDF, XML hoặc CMS .p7s)", "Signed file (PDF, XML or CMS .p7s)"),
        doc_help = l.pick(
            "Tệp PDF hoặc XML có chữ ký bên trong, hoặc tệp chữ ký rời .p7s.",
            "A PDF or XML file with its signatures inside, or a detached .p7s signature."
        ),
        content = l.pick("Tệp nội dung (chỉ với chữ ký rời)", "Content file (detached signatures only)"),
        content_help = l.pick(
            "Với chữ ký rời .p7s, chọn thêm tệp gốc đã được ký.",
            "With a detached .p7s signature, also pick the original file it signs."
        ),
        progress = l.pick("Tiến độ tải lên", "Upload progress"),
        submit = l.pick("Xác minh", "Verify"),
        report = l.pick("Tải báo cáo PDF có chữ ký", "Download the signed PDF report"),
        report_help = l.pick(
            "Báo cáo in được, ký số bằng khóa của cổng để người khác kiểm tra được kết quả.",
            "A printable report, signed with the gateway's key so others can check the result."
        ),
    )
}

async fn verify_form(
    State(state): State<ConsoleState>,
    lang: Lang,
    headers: HeaderMap,
    info: Option<Extension<ConnectionInfo>>,
) -> Result<Response, Failure> {
    let session = session_of(&state, &headers)
        .await
        .map_err(|e| Failure::gateway(lang, e))?;
    let (csrf, set) = pre_token(&headers, over_tls(&info));
    let title = lang.pick("Xác minh chữ ký số", "Verify a digital signature");
    let page = shell(
        lang,
        Section::Verify,
        title,
        session.as_ref(),
        &verify_form_html(lang, &csrf),
    );
    Ok(with_cookie(html(StatusCode::OK, page), set))
}

async fn verify_check(
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
    let session = session_of(&state, &headers)
        .await
        .map_err(|e| Failure::gateway(l, e))?;
    let Some((_, document)) = form.file("document") else {
        return Err(Failure::form(
            l,
            l.pick("Hãy chọn một tệp để xác minh.", "Pick a file to verify."),
        ));
    };
    let content = form.file("content").map(|(_, b)| b.clone());
    let csrf = form.text("csrf").unwrap_or_default().to_string();
    let title = l.pick("Xác minh chữ ký số", "Verify a digital signature");
    let (status, result) = match state
        .services
        .verify_anonymous(document.clone(), content)
        .await
    {
        Ok(report) => (StatusCode::OK, verdict::report_html(l, &report)),
        Err(e) => {
            let failure = Failure::gateway(l, e);
            (
                failure.status,
                format!(
                    "<section id=\"result\" class=\"result\" tabindex=\"-1\" aria-label=\"{}\">{}</section>",
                    l.pick("Kết quả xác minh", "Verification result"),
                    alert(&failure.message)
                ),
            )
        }
    };
    let body = format!("{result}{}", verify_form_html(l, &csrf));
    Ok(html(
        status,
        shell(l, Section::Verify, title, session.as_ref(), &body),
    ))
}

fn login_form_html(lang: Lang, csrf: &str, next: &str, error: Option<&str>) -> String {
    let l = lang;
    format!(
        "{error}<form method=\"post\" action=\"/login\" enctype=\"multipart/form-data\" class=\"stack narrow\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <div class=\"field\"><label for=\"username\">{user}</label>\
         <input id=\"username\" name=\"username\" autocomplete=\"username\" required></div>\
         <div class=\"field\"><label for=\"password\">{pass}</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></div>\
         <p><button type=\"submit\">{submit}</button></p></form>",
        error = error.map(alert).unwrap_or_default(),
        csrf = esc(csrf),
        next = esc(next),
        user = l.pick("Tên đăng nhập", "User name"),
        pass = l.pick("Mật khẩu", "Password"),
        submit = l.pick("Đăng nhập", "Log in"),
    )
}

/// A local path to go to after log-in (never another host).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/desk",
    }
}

async fn login_form(
    lang: Lang,
    headers: HeaderMap,
    info: Option<Extension<ConnectionInfo>>,
    cert: Option<Extension<crate::tls::PeerCertificate>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let (csrf, set) = pre_token(&headers, over_tls(&info));
    let next = query
        .as_deref()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("next=")))
        .map(|n| n.replace("%2F", "/"));
    let title = lang.pick("Đăng nhập cho cán bộ", "Officer log-in");
    let mut body = login_form_html(lang, &csrf, safe_next(next.as_deref()), None);
    if cert.is_some() {
        body.push_str(&certlogin::form_html(
            lang,
            &csrf,
            safe_next(next.as_deref()),
        ));
    }
    with_cookie(
        html(
            StatusCode::OK,
            shell(lang, Section::Login, title, None, &body),
        ),
        set,
    )
}

async fn login(
    State(state): State<ConsoleState>,
    lang: Lang,
    info: Option<Extension<ConnectionInfo>>,
    req: Request,
) -> Result<Response, Failure> {
    let l = lang;
    let headers = req.headers().clone();
    let form = Form::read(l, &state, req).await?;
    form.check_csrf(l, cookie(&headers, PRE_COOKIE))?;
    let username = form.text("username").unwrap_or_default().trim().to_string();
    let password = Secret::from(form.text("password").unwrap_or_default().to_string());
    let next = safe_next(form.text("next")).to_string();
    let csrf = form.text("csrf").unwrap_or_default().to_string();
    let title = l.pick("Đăng nhập cho cán bộ", "Officer log-in");
    let by_address = format!("ip:{}", address(&info));
    let by_user = format!("user:{username}");
    let wait = state
        .login_failures
        .wait(&by_address)
        .or_else(|| state.login_failures.wait(&by_user));
    if let Some(wait) = wait {
        let message = format!(
            "{} {} {}",
            l.pick(
                "Đăng nhập sai quá nhiều lần. Hãy thử lại sau",
                "Too many failed log-ins. Try again in"
            ),
            wait.as_secs() / 60 + 1,
            l.pick("phút.", "minutes.")
        );
        let body = login_form_html(l, &csrf, &next, Some(&message));
        return Ok(html(
            StatusCode::TOO_MANY_REQUESTS,
            shell(l, Section::Login, title, None, &body),
        ));
    }
    let logged_in = state
        .services
        .login(&username, password)
        .await
        .map_err(|e| Failure::gateway(l, e))?;
    let Some(logged_in) = logged_in else {
        state.login_failures.record(&by_address);
        state.login_failures.record(&by_user);
        let body = login_form_html(
            l,
            &csrf,
            &next,
            Some(l.pick(
                "Tên đăng nhập hoặc mật khẩu không đúng.",
                "The user name or the password is wrong.",
            )),
        );
        return Ok(html(
            StatusCode::UNAUTHORIZED,
            shell(l, Section::Login, title, None, &body),
        ));
    };
    state.login_failures.clear(&by_user);
    let max_age = crate::gateway::accounts::SESSION_LIFETIME.whole_seconds();
    let cookie = set_cookie(
        SESSION_COOKIE,
        logged_in.token.expose_secret(),
        Some(max_age),
        over_tls(&info),
    );
    Ok(with_cookie(
        Redirect::to(&next).into_response(),
        Some(cookie),
    ))
}

async fn logout(
    State(state): State<ConsoleState>,
    lang: Lang,
    info: Option<Extension<ConnectionInfo>>,
    req: Request,
) -> Result<Response, Failure> {
    let headers = req.headers().clone();
    let form = Form::read(lang, &state, req).await?;
    let session = session_of(&state, &headers)
        .await
        .map_err(|e| Failure::gateway(lang, e))?;
    if let Some(session) = session {
        form.check_csrf(lang, Some(&session.csrf))?;
        state
            .services
            .logout(&session)
            .await
            .map_err(|e| Failure::gateway(lang, e))?;
    }
    let clear = set_cookie(SESSION_COOKIE, "", Some(0), over_tls(&info));
    Ok(with_cookie(Redirect::to("/").into_response(), Some(clear)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/desk")), "/desk");
        assert_eq!(safe_next(Some("//evil.example")), "/desk");
        assert_eq!(safe_next(Some("https://evil.example")), "/desk");
        assert_eq!(safe_next(None), "/desk");
    }

    #[test]
    fn cookies_are_strict_and_secure_over_tls() {
        let plain = set_cookie("a", "b", Some(5), false);
        let tls = set_cookie("a", "b", None, true);
        assert_eq!(
            plain.to_str().ok(),
            Some("a=b; Path=/; HttpOnly; SameSite=Strict; Max-Age=5")
        );
        assert!(tls.to_str().is_ok_and(|v| v.ends_with("; Secure")));
    }
}
