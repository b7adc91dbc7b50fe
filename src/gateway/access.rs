//! Who is calling, and what the operators and the caller may read: authentication by bearer
//! token or client certificate, the caller's audit records, liveness, and the routing outbox
//! counts for the metrics.

use std::collections::HashMap;
use std::sync::Mutex;

use subtle::ConstantTimeEq;

use super::{GatewayError, Services};
use crate::pki::alg::sha256_hex;
use crate::store::{AuditRecord, Client, Store, StoreError};

/// How a caller proves who it is.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// A bearer token (compared by its SHA-256, in constant time).
    Token(&'a str),
    /// The SHA-256 fingerprint of a client certificate the TLS layer verified.
    Certificate(&'a str),
}

/// Per agency, the latest audit record whose agency number is known: `(seq, number)`.
#[derive(Debug, Default)]
pub(crate) struct AgencyNumbers(Mutex<HashMap<String, (i64, i64)>>);

impl AgencyNumbers {
    /// Farthest back (in global sequence numbers) a number is counted from the kept one
    /// rather than from the start of the chain.
    const BACKWARD_SPAN: i64 = 1 << 16;

    /// The agency's own number of the committed record `seq` (how many of its records are at
    /// or before it), counted from the kept one when there is one.
    pub(super) async fn number(
        &self,
        store: &Store,
        agency: &str,
        seq: i64,
    ) -> Result<i64, StoreError> {
        let known = self.lock().get(agency).copied();
        let number = match known {
            Some((at, n)) if at == seq => n,
            Some((at, n)) if at < seq => {
                n + store.audit_agency_count_between(agency, at, seq).await?
            }
            Some((at, n)) if seq >= 0 && at - seq <= Self::BACKWARD_SPAN => {
                n - store.audit_agency_count_between(agency, seq, at).await?
            }
            _ => store.audit_agency_number(agency, seq).await?,
        };
        self.note(agency, seq, number);
        Ok(number)
    }

    /// Learns the numbers of a group of records just committed, so that their answers need
    /// no query: over the group's trailing run of consecutive sequence numbers (a record
    /// appended once and found again keeps its older number and is left out), one count per
    /// agency up to the run, then one more for each of its records in the run. A failed
    /// count leaves the rest to [`AgencyNumbers::number`].
    pub(super) async fn learn(&self, store: &Store, records: &[AuditRecord]) {
        let mut run: Vec<(i64, &str)> =
            records.iter().map(|r| (r.seq, r.agency.as_str())).collect();
        run.sort_unstable();
        run.dedup_by_key(|(seq, _)| *seq);
        let start = run
            .windows(2)
            .rposition(|w| w[1].0 != w[0].0 + 1)
            .map_or(0, |i| i + 1);
        let Some(&(first, _)) = run.get(start) else {
            return;
        };
        let mut counts: HashMap<&str, i64> = HashMap::new();
        for &(seq, agency) in &run[start..] {
            let n = match counts.get_mut(agency) {
                Some(n) => {
                    *n += 1;
                    *n
                }
                None => match self.number(store, agency, first - 1).await {
                    Ok(before) => {
                        counts.insert(agency, before + 1);
                        before + 1
                    }
                    Err(_) => return,
                },
            };
            self.note(agency, seq, n);
        }
    }

    /// Keeps `(seq, number)` for `agency` if it is later than the one kept.
    fn note(&self, agency: &str, seq: i64, number: i64) {
        let mut map = self.lock();
        match map.get_mut(agency) {
            Some(kept) if kept.0 >= seq => {}
            Some(kept) => *kept = (seq, number),
            None => {
                map.insert(agency.to_string(), (seq, number));
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, i64)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An audit record as its agency sees it: numbered among the agency's own records.
#[derive(Debug, Clone)]
pub struct AgencyRecord {
    /// The agency's own number of the record (1 for its first).
    pub number: i64,
    /// The record as chained.
    pub record: AuditRecord,
}

/// A page of the caller's agency's audit records.
#[derive(Debug, Clone, Copy)]
pub struct AuditPage<'a> {
    /// Records after this one of the agency's own numbers.
    pub after: i64,
    /// Only this action.
    pub action: Option<&'a str>,
    /// At most this many (clamped to 1-1000).
    pub limit: i64,
}

impl Services {
    /// The non-revoked client `credential` names, if any.
    pub async fn authenticate(
        &self,
        credential: Credential<'_>,
    ) -> Result<Option<Client>, GatewayError> {
        let client = match credential {
            Credential::Token(token) => {
                let hash = sha256_hex(token.as_bytes());
                let client = self.store().client_by_token_hash(&hash).await?;
                client.filter(|c| bool::from(c.token_sha256.as_bytes().ct_eq(hash.as_bytes())))
            }
            Credential::Certificate(fingerprint) => {
                self.store().client_by_cert_fingerprint(fingerprint).await?
            }
        };
        Ok(client.filter(|c| !c.revoked))
    }

    /// The caller's agency's audit records, oldest first, in its own numbering (1, 2, … over
    /// its records only), so that no agency learns how much the others did from the chain's
    /// global sequence numbers. The chain (global numbers, hashes, checkpoints) is unchanged.
    pub async fn audit_records(
        &self,
        caller: &Client,
        page: AuditPage<'_>,
    ) -> Result<Vec<AgencyRecord>, GatewayError> {
        Ok(self
            .store()
            .audit_numbered_for_agency(
                &caller.agency,
                page.after.max(0),
                page.action,
                page.limit.clamp(1, 1000),
            )
            .await?
            .into_iter()
            .map(|(number, record)| AgencyRecord { number, record })
            .collect())
    }

    /// The caller's agency's own number of its audit record `seq` (a global sequence number,
    /// e.g. of the request just served).
    ///
    /// Counting the agency's records up to `seq` costs one index entry per record, so every
    /// answer would cost more than the one before (measured: a third of the SQLite thread's
    /// time after 12,000 signings). The chain only grows, and a record is committed only after
    /// every record before it (the head is locked), so the number of the agency's records up
    /// to a committed `seq` never changes: the last number found per agency is kept, and the
    /// next one is counted from it over the index range between the two.
    pub async fn audit_number(&self, caller: &Client, seq: i64) -> Result<i64, GatewayError> {
        Ok(self
            .inner
            .agency_numbers
            .number(self.store(), &caller.agency, seq)
            .await?)
    }

    /// [`Services::audit_number`] of each of `seqs`, in one query.
    pub async fn audit_numbers(
        &self,
        caller: &Client,
        seqs: &[i64],
    ) -> Result<HashMap<i64, i64>, GatewayError> {
        let (Some(first), Some(last)) = (seqs.iter().min(), seqs.iter().max()) else {
            return Ok(HashMap::new());
        };
        Ok(self
            .store()
            .audit_agency_numbers(&caller.agency, *first, *last)
            .await?
            .into_iter()
            .collect())
    }

    /// Liveness: the database answers.
    pub async fn alive(&self) -> Result<(), GatewayError> {
        self.store().audit_head().await?;
        Ok(())
    }

    /// The routing outbox by state, for the metrics of a routing node.
    pub async fn outbox_states(
        &self,
        node: &crate::routing::Node,
    ) -> Result<Vec<(String, i64)>, GatewayError> {
        Ok(node.store().route_outbox_states().await?)
    }
}
