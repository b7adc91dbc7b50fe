//! Limits against one client: token-bucket request rates and in-flight counts per client and
//! per remote address, and the byte budget of request bodies held in memory. The HTTP adapter
//! asks before serving a request; the connection limits (count, timeouts) are the listener's
//! ([`crate::tls::ServeLimits`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::{Limits, Rate};

/// Keys kept per table before idle entries (full buckets, nothing in flight) are dropped.
const PRUNE_AT: usize = 10_000;

/// Why a request was refused: too many requests or too many in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The request rate is over the limit; a token is available again after `retry_after`.
    #[error("too many requests from this {who}; retry after {} s", retry_after.as_secs().max(1))]
    Rate {
        /// `client` or `address`.
        who: &'static str,
        /// When the next request would be allowed.
        retry_after: Duration,
    },
    /// Too many requests in flight at once.
    #[error("too many requests in flight from this {who} (at most {max})")]
    Concurrency {
        /// `client` or `address`.
        who: &'static str,
        /// The limit.
        max: usize,
    },
}

impl Refused {
    /// Seconds the caller should wait before retrying (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Refused::Rate { retry_after, .. } => retry_after.as_secs_f64().ceil().max(1.0) as u64,
            Refused::Concurrency { .. } => 1,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One kind of key (clients, or addresses): its rate and in-flight limits and state.
#[derive(Debug)]
struct Table {
    who: &'static str,
    rate: Option<Rate>,
    concurrency: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
    in_flight: Mutex<HashMap<String, usize>>,
}

impl Table {
    fn new(who: &'static str, rate: Option<Rate>, concurrency: usize) -> Arc<Self> {
        Arc::new(Self {
            who,
            rate,
            concurrency,
            buckets: Mutex::default(),
            in_flight: Mutex::default(),
        })
    }

    /// Takes a token for `key` at `now`, or says when one will be there.
    fn take(&self, key: &str, now: Instant) -> Result<(), Refused> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let burst = f64::from(rate.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= PRUNE_AT {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * rate.per_sec < burst
            });
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * rate.per_sec;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Refused::Rate {
                who: self.who,
                retry_after: Duration::from_secs_f64((1.0 - bucket.tokens) / rate.per_sec),
            })
        }
    }

    /// Counts a request of `key` in flight until the guard is dropped.
    fn enter(self: &Arc<Self>, key: &str) -> Result<Option<InFlight>, Refused> {
        if self.concurrency == 0 {
            return Ok(None);
        }
        let mut counts = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(key.to_string()).or_insert(0);
        if *n >= self.concurrency {
            return Err(Refused::Concurrency {
                who: self.who,
                max: self.concurrency,
            });
        }
        *n += 1;
        Ok(Some(InFlight {
            table: self.clone(),
            key: key.to_string(),
        }))
    }
}

/// A request counted in flight for one key; dropping it ends the count.
#[derive(Debug)]
pub struct InFlight {
    table: Arc<Table>,
    key: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = self
            .table
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// What a request holds while it is served: its in-flight counts.
#[derive(Debug, Default)]
pub struct Admitted(Vec<InFlight>);

/// Bytes of request bodies held in memory, reserved until dropped.
#[derive(Debug)]
pub struct BodyBudget(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

/// The limits of one gateway and their state.
#[derive(Debug, Clone)]
pub struct Limiter {
    clients: Arc<Table>,
    addresses: Arc<Table>,
    memory: Arc<Semaphore>,
    /// The budget in KiB units (the semaphore's size).
    memory_kib: u32,
}

impl Limiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: &Limits) -> Self {
        let memory_kib = u32::try_from((limits.body_memory_bytes >> 10).max(1)).unwrap_or(u32::MAX);
        Self {
            clients: Table::new("client", limits.client_rate, limits.client_concurrency),
            addresses: Table::new("address", limits.ip_rate, limits.ip_concurrency),
            memory: Arc::new(Semaphore::new(memory_kib as usize)),
            memory_kib,
        }
    }

    /// Admits one more request from remote address `ip`, counting it until `admitted` is
    /// dropped.
    pub fn admit_address(&self, ip: &str, admitted: &mut Admitted) -> Result<(), Refused> {
        self.admit(&self.addresses, ip, admitted)
    }

    /// Admits one more request from client `client` (its id).
    pub fn admit_client(&self, client: &str, admitted: &mut Admitted) -> Result<(), Refused> {
        self.admit(&self.clients, client, admitted)
    }

    fn admit(&self, table: &Arc<Table>, key: &str, admitted: &mut Admitted) -> Result<(), Refused> {
        table.take(key, Instant::now())?;
        if let Some(guard) = table.enter(key)? {
            admitted.0.push(guard);
        }
        Ok(())
    }

    /// Waits until `bytes` of body memory are free and reserves them (a body larger than
    /// the whole budget waits for all of it, so it is held alone).
    pub async fn reserve_memory(&self, bytes: u64) -> BodyBudget {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.memory_kib);
        BodyBudget(self.memory.clone().acquire_many_owned(kib).await.ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: Option<Rate>, concurrency: usize) -> Limits {
        Limits {
            client_rate: rate,
            client_concurrency: concurrency,
            ..Limits::default()
        }
    }

    #[test]
    fn a_bucket_refills_at_its_rate() {
        let limiter = Limiter::new(&limits(
            Some(Rate {
                per_sec: 10.0,
                burst: 2,
            }),
            0,
        ));
        let t0 = Instant::now();
        let table = &limiter.clients;
        assert!(table.take("a", t0).is_ok());
        assert!(table.take("a", t0).is_ok());
        let refused = table.take("a", t0).expect_err("burst spent");
        assert_eq!(refused.retry_after_secs(), 1);
        assert!(
            table.take("b", t0).is_ok(),
            "another client has its own bucket"
        );
        assert!(table.take("a", t0 + Duration::from_millis(110)).is_ok());
        assert!(table.take("a", t0 + Duration::from_millis(120)).is_err());
    }

    #[test]
    fn in_flight_counts_end_with_their_guard() {
        let limiter = Limiter::new(&limits(None, 2));
        let (mut one, mut two, mut three) = (
            Admitted::default(),
            Admitted::default(),
            Admitted::default(),
        );
        limiter.admit_client("a", &mut one).expect("first");
        limiter.admit_client("a", &mut two).expect("second");
        assert!(matches!(
            limiter.admit_client("a", &mut three),
            Err(Refused::Concurrency { max: 2, .. })
        ));
        drop(one);
        limiter.admit_client("a", &mut three).expect("a slot freed");
    }

    #[tokio::test]
    async fn memory_is_reserved_until_dropped() {
        let limiter = Limiter::new(&Limits {
            body_memory_bytes: 4 << 20,
            ..Limits::default()
        });
        let first = limiter.reserve_memory(3 << 20).await;
        let waiting =
            tokio::time::timeout(Duration::from_millis(50), limiter.reserve_memory(2 << 20));
        assert!(waiting.await.is_err(), "3 + 2 MiB exceed a 4 MiB budget");
        drop(first);
        let _huge = tokio::time::timeout(Duration::from_secs(1), limiter.reserve_memory(1 << 30))
            .await
            .expect("a body above the budget takes all of it");
    }
}
