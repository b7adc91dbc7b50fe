//! The page shell every console page shares (language, navigation, skip link, the log-out
//! form), the language choice, and HTML escaping.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use crate::gateway::accounts::ConsoleSession;

/// The page language: Vietnamese by default, English on `?lang=en` or the `sg_lang` cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Tiếng Việt.
    Vi,
    /// English.
    En,
}

impl Lang {
    /// `vi` or `en`, as in `<html lang>`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    /// The Vietnamese or the English text.
    pub fn pick(self, vi: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }

    /// The language a query string asks for (`lang=vi|en`), if any.
    pub fn from_query(query: Option<&str>) -> Option<Lang> {
        query?.split('&').find_map(|pair| match pair {
            "lang=vi" => Some(Lang::Vi),
            "lang=en" => Some(Lang::En),
            _ => None,
        })
    }

    fn from_headers(headers: &HeaderMap) -> Option<Lang> {
        match cookie(headers, LANG_COOKIE)? {
            "en" => Some(Lang::En),
            "vi" => Some(Lang::Vi),
            _ => None,
        }
    }
}

/// The cookie remembering the language.
pub const LANG_COOKIE: &str = "sg_lang";

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::from_query(parts.uri.query())
            .or_else(|| Lang::from_headers(&parts.headers))
            .unwrap_or(Lang::Vi))
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `text` escaped for HTML text and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Which part of the console a page belongs to (marked in the navigation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The home page.
    Home,
    /// The public verify page.
    Verify,
    /// The officer's stamp desk.
    Desk,
    /// The stamp desk's batches.
    Batch,
    /// The routing desk (documents between agencies).
    Route,
    /// The log-in page.
    Login,
}

/// A whole page: `<head>` with the stylesheet and script, the header with the navigation and
/// the language switch, and `body` in `<main>`.
pub fn shell(
    lang: Lang,
    section: Section,
    title: &str,
    session: Option<&ConsoleSession>,
    body: &str,
) -> String {
    let l = lang;
    let nav_item = |s: Section, href: &str, label: &str| {
        let current = if s == section {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<li><a href=\"{href}\"{current}>{label}</a></li>")
    };
    let account = match session {
        Some(s) => format!(
            "<li class=\"who\">{who}: {name} ({agency})</li>\
             <li><form method=\"post\" action=\"/logout\" enctype=\"multipart/form-data\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\">{out}</button></form></li>",
            who = l.pick("Cán bộ", "Officer"),
            name = esc(&s.officer.name),
            agency = esc(&s.officer.agency),
            csrf = esc(&s.csrf),
            out = l.pick("Đăng xuất", "Log out"),
        ),
        None => nav_item(Section::Login, "/login", l.pick("Đăng nhập", "Log in")),
    };
    let (other, other_label) = match l {
        Lang::Vi => ("en", "English"),
        Lang::En => ("vi", "Tiếng Việt"),
    };
    format!(
        "<!doctype html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · signgate</title>\
         <link rel=\"stylesheet\" href=\"/assets/console.css\">\
         <script src=\"/assets/console.js\" defer></script></head>\
         <body><a class=\"skip\" href=\"#main\">{skip}</a>\
         <header><p class=\"brand\"><a href=\"/\">signgate</a></p>\
         <nav aria-label=\"{navlabel}\"><ul>{home}{verify}{desk}{batch}{route}{account}\
         <li><a href=\"?lang={other}\" lang=\"{other}\" hreflang=\"{other}\">{other_label}</a></li></ul></nav></header>\
         <main id=\"main\" tabindex=\"-1\"><h1>{title}</h1>{body}</main>\
         <footer><p>{footer}</p></footer></body></html>",
        code = l.code(),
        title = esc(title),
        skip = l.pick("Bỏ qua, đến nội dung chính", "Skip to main content"),
        navlabel = l.pick("Điều hướng chính", "Main navigation"),
        home = nav_item(Section::Home, "/", l.pick("Trang chủ", "Home")),
        verify = nav_item(Section::Verify, "/verify", l.pick("Xác minh chữ ký", "Verify a signature")),
        desk = nav_item(Section::Desk, "/desk", l.pick("Bàn đóng dấu", "Stamp desk")),
        batch = nav_item(Section::Batch, "/desk/batch", l.pick("Ký theo lô", "Batch signing")),
        route = nav_item(Section::Route, "/route", l.pick("Văn thư", "Routing desk")),
        footer = l.pick(
            "Cổng ký số signgate. Tệp gửi lên trang xác minh không được lưu lại.",
            "signgate signing gateway. Files sent to the verify page are not kept."
        ),
    )
}

/// A paragraph announcing an error to assistive technology.
pub fn alert(text: &str) -> String {
    format!("<p class=\"alert\" role=\"alert\">{}</p>", esc(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn language_from_query_and_cookie() {
        assert_eq!(Lang::from_query(Some("a=1&lang=en")), Some(Lang::En));
        assert_eq!(Lang::from_query(Some("lang=fr")), None);
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "x=1; sg_lang=en".parse().expect("header"));
        assert_eq!(Lang::from_headers(&h), Some(Lang::En));
        assert_eq!(cookie(&h, "x"), Some("1"));
    }
}
