//! Leases on rows that several gateway processes sharing one database work on (the routing
//! outbox, held envelopes, running batches): a claim sets `lease_owner` and `lease_until_ms`
//! on due rows nobody holds or whose lease expired, so the rows of a process that died are
//! taken over once its lease runs out. PostgreSQL skips rows another process is claiming
//! (`FOR UPDATE SKIP LOCKED`); SQLite serves one process and claims in one
//! `UPDATE … RETURNING`.
//!
//! A table with a `lease_gen` column also gets a fencing token: each claim increments it,
//! and every later write of the holder names the generation it claimed, so a process that
//! lost its lease (paused past its expiry, then woken) has its late writes refused.

use super::Store;

/// A lease a process holds on one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The holder (one id per process and worker).
    pub owner: String,
    /// The fencing token: the row's `lease_gen` after this claim.
    pub generation: i64,
}

/// The columns and order of one kind of leased row, from which [`LeaseTable::claim_sql`]
/// builds the claim statement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaseTable {
    /// The table.
    pub table: &'static str,
    /// Whether it has a `lease_gen` column that each claim increments.
    pub fenced: bool,
}

impl LeaseTable {
    /// `… WHERE` condition of a row whose lease is free or expired at `$2` (now, ms).
    pub const FREE: &'static str = "(lease_until_ms IS NULL OR lease_until_ms < $2)";

    /// The claim: `$1` owner, `$2` now (ms), `$3` lease end (ms), `$4` limit; rows that match
    /// `due` (which may use `$2` and placeholders from `$5`) and whose lease is free, in
    /// `order`, returning `columns`. `set` adds assignments (`, state = 'running'`).
    pub fn claim_sql(
        &self,
        store: &Store,
        due: &str,
        order: &str,
        set: &str,
        columns: &str,
    ) -> String {
        let lock = match store {
            Store::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Store::Sqlite(_) => "",
        };
        let generation = if self.fenced {
            ", lease_gen = lease_gen + 1"
        } else {
            ""
        };
        let (table, free) = (self.table, Self::FREE);
        format!(
            "UPDATE {table} SET lease_owner = $1, lease_until_ms = $3{generation}{set} WHERE id IN \
             (SELECT id FROM {table} WHERE {due} AND {free} ORDER BY {order} LIMIT $4{lock}) \
             RETURNING {columns}"
        )
    }

    /// Ends a `pending` row its holder still holds and releases the lease: `$1` the final
    /// state, `$2` the last error, `$3` when (RFC 3339), `$4` the id, `$5` the owner.
    pub fn finish_sql(&self) -> String {
        format!(
            "UPDATE {} SET state = $1, last_error = $2, done_at = $3, lease_owner = NULL, \
             lease_until_ms = NULL WHERE id = $4 AND lease_owner = $5 AND state = 'pending'",
            self.table
        )
    }

    /// Records a failed attempt on a `pending` row its holder still holds and releases the
    /// lease: `$1` attempts, `$2` the next attempt (ms), `$3` the error, `$4` the id, `$5` the
    /// owner.
    pub fn retry_sql(&self) -> String {
        format!(
            "UPDATE {} SET attempts = $1, next_attempt_ms = $2, last_error = $3, \
             lease_owner = NULL, lease_until_ms = NULL \
             WHERE id = $4 AND lease_owner = $5 AND state = 'pending'",
            self.table
        )
    }

    /// The condition that row `$id` is still held by this lease (`$owner`, `$generation`):
    /// appended to every write of the holder.
    pub fn held(&self, owner: &str, generation: &str) -> String {
        if self.fenced {
            format!("lease_owner = {owner} AND lease_gen = {generation}")
        } else {
            format!("lease_owner = {owner}")
        }
    }
}
