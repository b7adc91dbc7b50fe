//! A validation report told to people: per signature, one sentence with the verdict and its
//! reason, who signed (name, agency, identifiers masked but for their last digits), when and
//! whether a time-stamp proves it, whether the document changed after signing, and the
//! certificate chain. The full report (unmasked: it is the visitor's own document) is offered
//! as a JSON download built in the page; nothing is kept on the server.

use base64::Engine as _;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::page::{esc, Lang};
use crate::verify::report::SignatureKind;
use crate::verify::{Indication, Report, SignatureReport, SubIndication};

/// How many trailing characters of a tax code or citizen ID stay visible.
const VISIBLE_DIGITS: usize = 3;

/// `value` with every character but the last [`VISIBLE_DIGITS`] replaced by `•`.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let keep = chars.len().min(VISIBLE_DIGITS);
    let hidden = chars.len() - keep;
    std::iter::repeat('•')
        .take(hidden)
        .chain(chars[hidden..].iter().copied())
        .collect()
}

/// The value of attribute `key` (`CN`, `O`) in a report's `KEY=value, …` distinguished name.
fn dn_part(dn: &str, key: &str) -> Option<String> {
    dn.split(", ")
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

/// An RFC 3339 time shown in Vietnam time (`dd/mm/yyyy hh:mm:ss`).
pub(super) fn when(lang: Lang, rfc3339: &str) -> String {
    let format = time::macros::format_description!("[day]/[month]/[year] [hour]:[minute]:[second]");
    match OffsetDateTime::parse(rfc3339, &Rfc3339) {
        Ok(t) => format!(
            "{} ({})",
            t.to_offset(crate::clock::VIETNAM)
                .format(&format)
                .unwrap_or_default(),
            lang.pick("giờ Việt Nam", "Vietnam time")
        ),
        Err(_) => rfc3339.to_string(),
    }
}

/// `ok`, `bad` or `unknown`: the verdict's class in the page (and in the tests).
pub fn verdict_class(i: Indication) -> &'static str {
    match i {
        Indication::TotalPassed => "ok",
        Indication::TotalFailed => "bad",
        Indication::Indeterminate => "unknown",
    }
}

/// The verdict on one signature in one sentence a non-expert understands.
pub fn sentence(lang: Lang, i: Indication, sub: Option<SubIndication>) -> &'static str {
    use SubIndication as S;
    let l = lang;
    match (i, sub) {
        (Indication::TotalPassed, _) => l.pick(
            "Hợp lệ: tài liệu không bị thay đổi kể từ khi ký và chứng thư số của người ký được tin cậy.",
            "Valid: the document has not changed since it was signed and the signer's certificate is trusted.",
        ),
        (Indication::TotalFailed, Some(S::HashFailure)) => l.pick(
            "Không hợp lệ: nội dung tài liệu đã bị thay đổi sau khi ký.",
            "Not valid: the document's content was changed after it was signed.",
        ),
        (Indication::TotalFailed, Some(S::SigCryptoFailure)) => l.pick(
            "Không hợp lệ: chữ ký không khớp với khóa của người ký, có thể đã bị làm giả.",
            "Not valid: the signature does not match the signer's key; it may be forged.",
        ),
        (Indication::TotalFailed, Some(S::Revoked)) => l.pick(
            "Không hợp lệ: chứng thư số của người ký đã bị thu hồi trước khi ký.",
            "Not valid: the signer's certificate was revoked before the signature was made.",
        ),
        (Indication::TotalFailed, _) => l.pick(
            "Không hợp lệ: chữ ký không đáp ứng yêu cầu kiểm tra.",
            "Not valid: the signature fails the checks.",
        ),
        (Indication::Indeterminate, Some(S::NoCertificateChainFound)) => l.pick(
            "Chưa thể kết luận: chứng thư số của người ký không dẫn tới một tổ chức chứng thực được tin cậy.",
            "Cannot be decided: the signer's certificate does not lead to a trusted certification authority.",
        ),
        (Indication::Indeterminate, Some(S::TryLater)) => l.pick(
            "Chưa thể kết luận: hiện không kiểm tra được chứng thư số còn hiệu lực hay không; hãy thử lại sau.",
            "Cannot be decided: whether the certificate is still valid cannot be checked now; try again later.",
        ),
        (Indication::Indeterminate, Some(S::OutOfBoundsNoPoe)) => l.pick(
            "Chưa thể kết luận: chứng thư số đã hết hạn hoặc chưa có hiệu lực và không có bằng chứng thời điểm ký.",
            "Cannot be decided: the certificate was expired or not yet valid and nothing proves when the document was signed.",
        ),
        (Indication::Indeterminate, Some(S::RevokedNoPoe)) => l.pick(
            "Chưa thể kết luận: chứng thư số đã bị thu hồi và không có bằng chứng rằng chữ ký có trước thời điểm đó.",
            "Cannot be decided: the certificate was revoked and nothing proves the signature was made before that.",
        ),
        (Indication::Indeterminate, Some(S::FormatFailure)) => l.pick(
            "Chưa thể kết luận: tệp không có chữ ký đọc được.",
            "Cannot be decided: the file has no readable signature.",
        ),
        (Indication::Indeterminate, _) => l.pick(
            "Chưa thể kết luận: không đủ thông tin để khẳng định chữ ký hợp lệ.",
            "Cannot be decided: there is not enough information to confirm the signature.",
        ),
    }
}

/// One fact about a signature, as the page and the printed report show it (text unescaped).
pub(super) struct Fact {
    /// What it is ("Signed by").
    pub label: &'static str,
    /// Its value.
    pub value: FactValue,
}

/// The value of a [`Fact`].
pub(super) enum FactValue {
    /// Plain text.
    Text(String),
    /// A masked identifier.
    Masked(String),
    /// A sentence followed by a list of items, each with an optional note.
    List {
        /// The sentence before the list, if any.
        intro: Option<&'static str>,
        /// The items and their notes.
        items: Vec<(String, Option<String>)>,
        /// A numbered list (the certificate chain) or bullets.
        ordered: bool,
    },
}

/// The kind of a signature, as a heading says it.
pub(super) fn kind_name(lang: Lang, kind: SignatureKind) -> &'static str {
    match kind {
        SignatureKind::Signature => lang.pick("Chữ ký", "Signature"),
        SignatureKind::DocumentTimestamp => {
            lang.pick("Dấu thời gian của tài liệu", "Document time-stamp")
        }
        SignatureKind::CounterSignature => lang.pick("Chữ ký xác nhận", "Counter-signature"),
    }
}

/// What the page and the printed report tell about signature `s`: who signed (identifiers
/// masked), when, whether the document changed after signing, and the certificate chain.
pub(super) fn signature_facts(lang: Lang, s: &SignatureReport) -> Vec<Fact> {
    let l = lang;
    let mut facts = Vec::new();
    let mut fact = |label: &'static str, value: FactValue| facts.push(Fact { label, value });
    if let Some(signer) = &s.signer {
        if let Some(cn) = dn_part(&signer.subject, "CN") {
            fact(l.pick("Người ký", "Signed by"), FactValue::Text(cn));
        }
        if let Some(o) = dn_part(&signer.subject, "O") {
            fact(
                l.pick("Cơ quan, tổ chức", "Agency or organisation"),
                FactValue::Text(o),
            );
        }
        for id in &signer.identifiers {
            let label = match id.kind.as_str() {
                "MST" => l.pick("Mã số thuế", "Tax code"),
                "CCCD" => l.pick("Số căn cước công dân", "Citizen ID"),
                "CMND" => l.pick("Số chứng minh nhân dân", "Identity card number"),
                _ => l.pick("Mã định danh", "Identifier"),
            };
            fact(label, FactValue::Masked(mask(&id.value)));
        }
    }
    let time_text = match (&s.timestamp, &s.claimed_signing_time) {
        (Some(ts), _) if ts.valid => format!(
            "{} {}",
            when(l, &ts.gen_time),
            l.pick(
                "— được chứng minh bằng dấu thời gian của một tổ chức cung cấp dịch vụ cấp dấu thời gian.",
                "— proven by a time-stamp from a time-stamping authority."
            )
        ),
        (Some(_), Some(claimed)) => format!(
            "{} {}",
            when(l, claimed),
            l.pick(
                "— do người ký tự khai; dấu thời gian kèm theo không hợp lệ.",
                "— as the signer states it; the attached time-stamp is not valid."
            )
        ),
        (None, Some(claimed)) => format!(
            "{} {}",
            when(l, claimed),
            l.pick(
                "— do người ký tự khai, không có dấu thời gian chứng minh.",
                "— as the signer states it; no time-stamp proves it."
            )
        ),
        (_, None) => when(l, &s.best_signature_time),
    };
    fact(
        l.pick("Thời điểm ký", "Signed at"),
        FactValue::Text(time_text),
    );
    let changed = if !s.intact {
        FactValue::Text(
            l.pick(
                "Có: phần nội dung đã ký bị sửa đổi.",
                "Yes: the signed content was modified.",
            )
            .to_string(),
        )
    } else if s.changes.is_empty() {
        FactValue::Text(
            if s.coverage.whole_file {
                l.pick(
                    "Không: chữ ký bao trùm toàn bộ tệp.",
                    "No: the signature covers the whole file.",
                )
            } else {
                l.pick(
                    "Không có thay đổi nào về nội dung sau khi ký.",
                    "No change of content after signing.",
                )
            }
            .to_string(),
        )
    } else {
        FactValue::List {
            intro: Some(l.pick(
                "Tài liệu được bổ sung sau khi ký:",
                "The document was added to after signing:",
            )),
            items: s.changes.iter().map(|c| (c.clone(), None)).collect(),
            ordered: false,
        }
    };
    fact(
        l.pick("Thay đổi sau khi ký", "Changed after signing"),
        changed,
    );
    let chain: Vec<(String, Option<String>)> = s
        .chain
        .iter()
        .map(|c| {
            let name = dn_part(&c.subject, "CN")
                .or_else(|| dn_part(&c.subject, "O"))
                .unwrap_or_default();
            let note = format!(
                "({} {})",
                l.pick("hiệu lực đến", "valid until"),
                when(l, &c.not_after)
            );
            (name, Some(note))
        })
        .collect();
    if !chain.is_empty() {
        fact(
            l.pick("Chuỗi chứng thư", "Certificate chain"),
            FactValue::List {
                intro: None,
                items: chain,
                ordered: true,
            },
        );
    }
    facts
}

fn fact_html(fact: &Fact) -> String {
    let value = match &fact.value {
        FactValue::Text(t) => esc(t),
        FactValue::Masked(m) => format!("<span class=\"masked\">{}</span>", esc(m)),
        FactValue::List {
            intro,
            items,
            ordered,
        } => {
            let items: String = items
                .iter()
                .map(|(item, note)| match note {
                    Some(n) => format!(
                        "<li>{} <span class=\"muted\">{}</span></li>",
                        esc(item),
                        esc(n)
                    ),
                    None => format!("<li>{}</li>", esc(item)),
                })
                .collect();
            let (open, close) = if *ordered {
                ("<ol class=\"chain\">", "</ol>")
            } else {
                ("<ul>", "</ul>")
            };
            format!("{}{open}{items}{close}", intro.map(esc).unwrap_or_default())
        }
    };
    format!(
        "<div class=\"row\"><dt>{}</dt><dd>{value}</dd></div>",
        esc(fact.label)
    )
}

fn signature_html(lang: Lang, n: usize, s: &SignatureReport) -> String {
    let rows: String = signature_facts(lang, s).iter().map(fact_html).collect();
    format!(
        "<section class=\"signature\" aria-labelledby=\"sig{n}\"><h3 id=\"sig{n}\">{kind} {n}: {id}</h3>\
         <p class=\"verdict {class}\" data-indication=\"{ind}\">{sentence}</p><dl>{rows}</dl></section>",
        kind = kind_name(lang, s.kind),
        id = esc(&s.id),
        class = verdict_class(s.indication),
        ind = crate::gateway::intake::indication_name(s.indication),
        sentence = esc(sentence(lang, s.indication, s.sub_indication)),
    )
}

/// The result part of the verify page for `report`.
pub fn report_html(lang: Lang, report: &Report) -> String {
    let l = lang;
    let json = serde_json::to_vec_pretty(report).unwrap_or_default();
    let href = format!(
        "data:application/json;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(json)
    );
    let signatures: String = report
        .signatures
        .iter()
        .enumerate()
        .map(|(i, s)| signature_html(l, i + 1, s))
        .collect();
    format!(
        "<section id=\"result\" class=\"result\" aria-labelledby=\"result-title\" tabindex=\"-1\">\
         <h2 id=\"result-title\">{title}</h2>\
         <p class=\"verdict overall {class}\" data-indication=\"{ind}\" role=\"status\">{sentence}</p>\
         <p>{count}: {n}</p>{signatures}\
         <p><a class=\"button\" id=\"report-json\" href=\"{href}\" download=\"verification-report.json\">{download}</a></p>\
         </section>",
        title = l.pick("Kết quả xác minh", "Verification result"),
        class = verdict_class(report.indication),
        ind = crate::gateway::intake::indication_name(report.indication),
        sentence = esc(sentence(l, report.indication, report.sub_indication)),
        count = l.pick("Số chữ ký trong tệp", "Signatures in the file"),
        n = report.signatures.len(),
        download = l.pick("Tải báo cáo đầy đủ (JSON)", "Download the full report (JSON)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_all_but_the_last_digits() {
        assert_eq!(mask("001234567890"), "•••••••••890");
        assert_eq!(mask("12"), "12");
        assert_eq!(mask(""), "");
    }

    #[test]
    fn reads_name_parts_and_times() {
        let dn = "C=VN, O=UBND xã A, CN=Nguyễn Văn B, UID=CCCD:001234567890";
        assert_eq!(dn_part(dn, "CN").as_deref(), Some("Nguyễn Văn B"));
        assert_eq!(dn_part(dn, "O").as_deref(), Some("UBND xã A"));
        assert_eq!(
            when(Lang::En, "2025-07-01T02:30:00Z"),
            "01/07/2025 09:30:00 (Vietnam time)"
        );
    }

    #[test]
    fn every_verdict_has_its_own_sentence_kind() {
        let ok = sentence(Lang::Vi, Indication::TotalPassed, None);
        let bad = sentence(
            Lang::Vi,
            Indication::TotalFailed,
            Some(SubIndication::HashFailure),
        );
        let unknown = sentence(Lang::En, Indication::Indeterminate, None);
        assert!(ok.starts_with("Hợp lệ"), "{ok}");
        assert!(bad.starts_with("Không hợp lệ"), "{bad}");
        assert!(unknown.starts_with("Cannot be decided"), "{unknown}");
    }
}
