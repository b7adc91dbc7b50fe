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
//! [`RowState::MergedDuplicate`]: it takes no part in this table.
//!
//! States and codes are enums; the database keeps their text (`delivered`, …) and the
//! numeric BussinessDocType, converted at the store boundary ([`RowState::as_str`],
//! [`RowState::from_str`](std::str::FromStr), [`business_of`]): a stored value this version
//! did not write is an error, never a default.

use std::str::FromStr;

use crate::edxml::{BusinessDocType, StatusCode};
use crate::store::StoreError;

/// The state of a document row (`route_documents.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowState {
    /// Queued for a peer node.
    Forwarding,
    /// Delivered to the peer node.
    Forwarded,
    /// The peer node refused it (status 02).
    Refused,
    /// Dead-lettered after the retry limit.
    Dead,
    /// In the addressee's inbox here.
    Delivered,
    /// A revoke/update/replace whose original has not arrived.
    Held,
    /// A revoke applied to its original (or to an already recalled one).
    Applied,
    /// The original after a revoke (13).
    Recalled,
    /// The original after a replace.
    Replaced,
    /// 03: accepted into the registry.
    Accepted,
    /// 04: assigned.
    Assigned,
    /// 05: being processed.
    Processing,
    /// 06: completed.
    Completed,
    /// An update row the operator agreed to.
    UpdateAgreed,
    /// An update row the operator refused.
    UpdateRefused,
    /// Addressed to an agency whose successor (agency directory merge) already holds the same
    /// document here under another addressee: kept for the idempotency key and the trace, not
    /// delivered a second time (no inbox entry, no status).
    MergedDuplicate,
}

/// `as_str`, `Display` and `FromStr` (an unknown stored text is [`StoreError::Corrupt`]) for
/// an enum kept as text in the database, from one table of its values.
macro_rules! stored_text {
    ($ty:ident, $what:literal, $table:ident, [$($variant:ident => $text:literal),+ $(,)?]) => {
        const $table: &[($ty, &str)] = &[$(($ty::$variant, $text)),+];

        impl $ty {
            /// The stored text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, StoreError> {
                $table
                    .iter()
                    .find(|(_, text)| *text == s)
                    .map(|(value, _)| *value)
                    .ok_or_else(|| StoreError::Corrupt(format!("{} '{s}'", $what)))
            }
        }
    };
}

stored_text!(RowState, "document row state", ROW_STATES, [
    Forwarding => "forwarding",
    Forwarded => "forwarded",
    Refused => "refused",
    Dead => "dead",
    Delivered => "delivered",
    Held => "held",
    Applied => "applied",
    Recalled => "recalled",
    Replaced => "replaced",
    Accepted => "accepted",
    Assigned => "assigned",
    Processing => "processing",
    Completed => "completed",
    UpdateAgreed => "update-agreed",
    UpdateRefused => "update-refused",
    MergedDuplicate => "merged-duplicate",
]);

impl RowState {
    /// Whether an operator may still act on a row in this state (the inbox).
    pub fn is_open(self) -> bool {
        INBOX_STATES.contains(&self)
    }
}

/// What an outbox item carries (`route_outbox.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxKind {
    /// An envelope for the recipients it lists.
    Envelope,
    /// A signed status message toward a document's sender.
    Status,
}

stored_text!(OutboxKind, "outbox item kind", OUTBOX_KINDS, [
    Envelope => "envelope",
    Status => "status",
]);

/// The state of an outbox item (`route_outbox.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxState {
    /// Waiting for (another) attempt.
    Pending,
    /// The next node accepted it.
    Delivered,
    /// The next node refused it; not retried.
    Refused,
    /// Dead-lettered after the attempt limit; an operator may retry it.
    Dead,
}

stored_text!(OutboxState, "outbox item state", OUTBOX_STATES, [
    Pending => "pending",
    Delivered => "delivered",
    Refused => "refused",
    Dead => "dead",
]);

/// The BussinessDocType of a stored row (`route_documents.doc_type`); an unknown number is
/// [`StoreError::Corrupt`].
pub fn business_of(stored: i64) -> Result<BusinessDocType, StoreError> {
    u8::try_from(stored)
        .ok()
        .and_then(BusinessDocType::from_number)
        .ok_or_else(|| StoreError::Corrupt(format!("document row type {stored}")))
}

/// What to write when a row arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// State of the arriving row.
    pub row_state: RowState,
    /// New state of the original, if it changes.
    pub original_state: Option<RowState>,
    /// The status the recipient's node sends back to the sender (01, 13).
    pub status: StatusCode,
}

/// Decides an arrival of `business` given the original's current state (`None`: not here yet).
/// Never called for [`BusinessDocType::New`] with held rows: the node replays those with the
/// new row as their original.
pub fn on_arrival(business: BusinessDocType, original: Option<RowState>) -> Outcome {
    use BusinessDocType as B;
    let received = |row_state| Outcome {
        row_state,
        original_state: None,
        status: StatusCode::Received,
    };
    match (business, original) {
        (B::New, _) => received(RowState::Delivered),
        (_, None) => received(RowState::Held),
        (B::Revoke, Some(RowState::Recalled)) => received(RowState::Applied),
        (B::Revoke, Some(_)) => Outcome {
            row_state: RowState::Applied,
            original_state: Some(RowState::Recalled),
            status: StatusCode::Recalled,
        },
        (B::Update, Some(_)) => received(RowState::Delivered),
        (B::Replace, Some(_)) => Outcome {
            row_state: RowState::Delivered,
            original_state: Some(RowState::Replaced),
            status: StatusCode::Received,
        },
    }
}

/// States an operator may still act on in the inbox.
pub const INBOX_STATES: &[RowState] = &[
    RowState::Delivered,
    RowState::Accepted,
    RowState::Assigned,
    RowState::Processing,
];

/// The stored text of [`INBOX_STATES`], for the store's inbox query.
pub fn inbox_state_names() -> Vec<&'static str> {
    INBOX_STATES.iter().map(|s| s.as_str()).collect()
}

/// The row state an operator's status (03..06, or the update codes) moves a delivered
/// document to; `None` for a status an operator does not send.
pub fn state_for_status(status: StatusCode) -> Option<RowState> {
    match status {
        StatusCode::Accepted => Some(RowState::Accepted),
        StatusCode::Assigned => Some(RowState::Assigned),
        StatusCode::Processing => Some(RowState::Processing),
        StatusCode::Completed => Some(RowState::Completed),
        StatusCode::UpdateAgreed => Some(RowState::UpdateAgreed),
        StatusCode::UpdateRefused => Some(RowState::UpdateRefused),
        StatusCode::Received | StatusCode::Rejected | StatusCode::Recalled => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BusinessDocType as B;

    #[test]
    fn recall_before_original_is_held_then_applied() {
        let early = on_arrival(B::Revoke, None);
        assert_eq!(early.row_state, RowState::Held);
        assert_eq!(early.original_state, None);
        // the original arrives: it is delivered, then the held recall replays against it
        assert_eq!(on_arrival(B::New, None).row_state, RowState::Delivered);
        let replay = on_arrival(B::Revoke, Some(RowState::Delivered));
        assert_eq!(
            replay,
            Outcome {
                row_state: RowState::Applied,
                original_state: Some(RowState::Recalled),
                status: StatusCode::Recalled,
            }
        );
    }

    #[test]
    fn update_replace_and_double_recall() {
        assert_eq!(
            on_arrival(B::Update, Some(RowState::Accepted)).original_state,
            None
        );
        assert_eq!(
            on_arrival(B::Replace, Some(RowState::Delivered)).original_state,
            Some(RowState::Replaced)
        );
        assert_eq!(on_arrival(B::Update, None).row_state, RowState::Held);
        let again = on_arrival(B::Revoke, Some(RowState::Recalled));
        assert_eq!(
            (again.original_state, again.status),
            (None, StatusCode::Received)
        );
        assert_eq!(
            state_for_status(StatusCode::Completed),
            Some(RowState::Completed)
        );
        assert_eq!(state_for_status(StatusCode::Recalled), None);
    }

    #[test]
    fn stored_values_round_trip_and_unknown_ones_are_errors() {
        for &(state, text) in ROW_STATES {
            assert_eq!(state.as_str(), text);
            assert_eq!(text.parse::<RowState>().unwrap(), state);
        }
        for &(kind, text) in OUTBOX_KINDS {
            assert_eq!(text.parse::<OutboxKind>().unwrap(), kind);
        }
        for &(state, text) in OUTBOX_STATES {
            assert_eq!(text.parse::<OutboxState>().unwrap(), state);
        }
        assert_eq!(ROW_STATES.len(), 16);
        assert!("delivred".parse::<RowState>().is_err());
        assert!("sent".parse::<OutboxState>().is_err());
        for n in 0..4 {
            assert_eq!(business_of(n).map(|b| i64::from(b.code())).unwrap(), n);
        }
        assert!(business_of(7).is_err());
        assert!(business_of(-1).is_err());
    }
}
