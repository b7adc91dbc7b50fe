//! The recall/update state machine at the node that delivers a document to its recipient
//! (BussinessDocType 0 new, 1 revoke, 2 update, 3 replace). Pure: the node loads the rows,
//! asks [`on_arrival`] what to do, and writes the answer in one transaction.
//!
//! | arriving | original here? | arriving row | original row | status sent back |
//! |---|---|---|---|---|
//! | new | – | `delivered` | – | 01 |
//! | revoke | yes | `applied` | `recalled` | 13 |
//! | revoke | no | `held` | – | 01 |
//! | update | yes | `delivered` (operator answers 15/16) | unchanged | 01 |
//! | update | no | `held` | – | 01 |
//! | replace | yes | `delivered` | `replaced` | 01 |
//! | replace | no | `held` | – | 01 |
//! | new, with held rows | – | each held row is then applied as if it arrived now | | |
//!
//! A revoke of an already recalled original changes nothing (`applied`, no second 13).
//!
//! Operators then move an open row ([`INBOX_STATES`]) with 03..06 ([`state_for_status`]); an
//! update row takes only the update codes (`update-agreed`, `update-refused`). `held`,
//! `recalled`, `replaced` and `applied` rows are never open, so a recalled original is never
//! live, even when its recall arrived first.
//!
//! The original of a revoke/update/replace is the row of its target DocumentId delivered here
//! to the same addressee or, failing that, held by the same agency (a directory merge moved it
//! to the successor). A row whose agency already holds the same document under another
//! addressee (the envelope named an agency and the one it was merged into) is
//! [`MERGED_DUPLICATE`]: it takes no part in this table.

/// BussinessDocType of QCVN 102 (the spelling is the standard's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Business {
    /// 0: a new document.
    New,
    /// 1: recall (revoke) an earlier document.
    Revoke,
    /// 2: update an earlier document.
    Update,
    /// 3: replace an earlier document.
    Replace,
}

impl Business {
    /// From the numeric BussinessDocType; `None` for other values.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::New),
            1 => Some(Self::Revoke),
            2 => Some(Self::Update),
            3 => Some(Self::Replace),
            _ => None,
        }
    }

    /// The numeric BussinessDocType.
    pub fn code(self) -> i64 {
        match self {
            Self::New => 0,
            Self::Revoke => 1,
            Self::Update => 2,
            Self::Replace => 3,
        }
    }
}

/// What to write when a row arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// State of the arriving row.
    pub row_state: &'static str,
    /// New state of the original, if it changes.
    pub original_state: Option<&'static str>,
    /// The status code the recipient's node sends back to the sender (`01`, `13`).
    pub status: &'static str,
}

/// Decides an arrival of `business` given the original's current state (`None`: not here yet).
/// Never called for [`Business::New`] with held rows: the node replays those with the new row
/// as their original.
pub fn on_arrival(business: Business, original: Option<&str>) -> Outcome {
    let received = |row_state| Outcome {
        row_state,
        original_state: None,
        status: "01",
    };
    match (business, original) {
        (Business::New, _) => received("delivered"),
        (_, None) => received("held"),
        (Business::Revoke, Some("recalled")) => Outcome {
            row_state: "applied",
            original_state: None,
            status: "01",
        },
        (Business::Revoke, Some(_)) => Outcome {
            row_state: "applied",
            original_state: Some("recalled"),
            status: "13",
        },
        (Business::Update, Some(_)) => received("delivered"),
        (Business::Replace, Some(_)) => Outcome {
            row_state: "delivered",
            original_state: Some("replaced"),
            status: "01",
        },
    }
}

/// The state of a row addressed to an agency whose successor (agency directory merge) already
/// holds the same document here under another addressee: kept for the idempotency key and the
/// trace, not delivered a second time (no inbox entry, no status).
pub const MERGED_DUPLICATE: &str = "merged-duplicate";

/// States an operator may still act on in the inbox.
pub const INBOX_STATES: &[&str] = &["delivered", "accepted", "assigned", "processing"];

/// The row state an operator's status code (03..06) moves a delivered document to.
pub fn state_for_status(code: &str) -> Option<&'static str> {
    match code {
        "03" => Some("accepted"),
        "04" => Some("assigned"),
        "05" => Some("processing"),
        "06" => Some("completed"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_before_original_is_held_then_applied() {
        let early = on_arrival(Business::Revoke, None);
        assert_eq!(early.row_state, "held");
        assert_eq!(early.original_state, None);
        // the original arrives: it is delivered, then the held recall replays against it
        assert_eq!(on_arrival(Business::New, None).row_state, "delivered");
        let replay = on_arrival(Business::Revoke, Some("delivered"));
        assert_eq!(
            replay,
            Outcome {
                row_state: "applied",
                original_state: Some("recalled"),
                status: "13"
            }
        );
    }

    #[test]
    fn update_replace_and_double_recall() {
        assert_eq!(
            on_arrival(Business::Update, Some("accepted")).original_state,
            None
        );
        assert_eq!(
            on_arrival(Business::Replace, Some("delivered")).original_state,
            Some("replaced")
        );
        assert_eq!(on_arrival(Business::Update, None).row_state, "held");
        let again = on_arrival(Business::Revoke, Some("recalled"));
        assert_eq!((again.original_state, again.status), (None, "01"));
        for code in 0..4 {
            assert_eq!(Business::from_code(code).map(Business::code), Some(code));
        }
        assert_eq!(Business::from_code(7), None);
        assert_eq!(state_for_status("06"), Some("completed"));
        assert_eq!(state_for_status("13"), None);
    }
}
