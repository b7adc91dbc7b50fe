//! Log-in by client certificate: over the gateway's TLS with client certificates (`[tls]
//! client_ca`), a browser that presented a certificate bound to an account (`signgate user
//! bind-cert`) logs in with one button, no password. The TLS layer has verified the chain; the
//! binding, its revocation and the account's state are [`crate::gateway::certlogin`]'s.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use secrecy::ExposeSecret;

use super::page::{alert, cookie, esc, shell, Lang, Section};
use super::{
    html, over_tls, safe_next, set_cookie, with_cookie, ConsoleState, Failure, Form, PRE_COOKIE,
    SESSION_COOKIE,
};
use crate::tls::{ConnectionInfo, PeerCertificate};

/// The log-in page's second form: one button, shown when the connection presented a
/// certificate.
pub(super) fn form_html(lang: Lang, csrf: &str, next: &str) -> String {
    let l = lang;
    format!(
        "<section aria-labelledby=\"cert-login\"><h2 id=\"cert-login\">{title}</h2><p>{text}</p>\
         <form method=\"post\" action=\"/login/certificate\" enctype=\"multipart/form-data\" class=\"stack narrow\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <p><button type=\"submit\" id=\"cert-submit\">{submit}</button></p></form></section>",
        title = l.pick("Đăng nhập bằng chứng thư số", "Log in with a certificate"),
        text = l.pick(
            "Trình duyệt của bạn đã trình chứng thư số. Nếu chứng thư này đã được gắn với tài khoản của bạn, bạn có thể đăng nhập không cần mật khẩu.",
            "Your browser presented a certificate. If it is bound to your account, you can log in without a password."
        ),
        csrf = esc(csrf),
        next = esc(next),
        submit = l.pick("Đăng nhập bằng chứng thư", "Log in with my certificate"),
    )
}

/// `POST /login/certificate`: a session for the account the connection's certificate is
/// bound to; 401 with a sentence otherwise.
pub(super) async fn login(
    State(state): State<ConsoleState>,
    lang: Lang,
    info: Option<Extension<ConnectionInfo>>,
    cert: Option<Extension<PeerCertificate>>,
    req: Request,
) -> Result<Response, Failure> {
    let l = lang;
    let headers = req.headers().clone();
    let form = Form::read(l, &state, req).await?;
    form.check_csrf(l, cookie(&headers, PRE_COOKIE))?;
    let next = safe_next(form.text("next")).to_string();
    let refuse = |message: &str| {
        let body = format!(
            "{}<p><a href=\"/login?next={}\">{}</a></p>",
            alert(message),
            esc(&next),
            l.pick("Đăng nhập bằng mật khẩu", "Log in with a password")
        );
        html(
            StatusCode::UNAUTHORIZED,
            shell(
                l,
                Section::Login,
                l.pick("Đăng nhập cho cán bộ", "Officer log-in"),
                None,
                &body,
            ),
        )
    };
    let Some(Extension(cert)) = cert else {
        return Ok(refuse(l.pick(
            "Kết nối này không trình chứng thư số nào.",
            "This connection presented no certificate.",
        )));
    };
    let logged_in = state
        .services
        .login_with_certificate(&cert.fingerprint())
        .await
        .map_err(|e| Failure::gateway(l, e))?;
    let Some(logged_in) = logged_in else {
        return Ok(refuse(l.pick(
            "Chứng thư số này không gắn với tài khoản nào đang hoạt động, hoặc đã bị thu hồi.",
            "This certificate is not bound to an active account, or its binding was revoked.",
        )));
    };
    let max_age = crate::gateway::accounts::SESSION_LIFETIME.whole_seconds();
    let session = set_cookie(
        SESSION_COOKIE,
        logged_in.token.expose_secret(),
        Some(max_age),
        over_tls(&info),
    );
    Ok(with_cookie(
        Redirect::to(&next).into_response(),
        Some(session),
    ))
}
