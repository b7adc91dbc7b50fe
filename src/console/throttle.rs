//! Attempts per key (an address, a user name) in a sliding window: the verify page's rate
//! limit and the log-in throttle. In memory, per process; bounded in size.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys tracked before the oldest idle ones are dropped.
const MAX_KEYS: usize = 10_000;

/// At most `max` events per key within `window`.
#[derive(Debug)]
pub struct Throttle {
    max: usize,
    window: Duration,
    events: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Throttle {
    /// A throttle of `max` events per `window`.
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max,
            window,
            events: Mutex::new(HashMap::new()),
        }
    }

    fn with_events<T>(
        &self,
        key: &str,
        now: Instant,
        f: impl FnOnce(&mut VecDeque<Instant>) -> T,
    ) -> T {
        let mut map = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_KEYS {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let q = map.entry(key.to_string()).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        f(q)
    }

    /// How long `key` must wait before its next event is allowed; `None` when it may go now.
    pub fn wait(&self, key: &str) -> Option<Duration> {
        let now = Instant::now();
        self.with_events(key, now, |q| {
            if q.len() < self.max {
                return None;
            }
            q.front()
                .map(|t| self.window.saturating_sub(now.duration_since(*t)))
        })
    }

    /// Records an event of `key`.
    pub fn record(&self, key: &str) {
        let now = Instant::now();
        self.with_events(key, now, |q| q.push_back(now));
    }

    /// Records an event of `key` if it is allowed; else how long to wait.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        self.with_events(key, now, |q| {
            if q.len() >= self.max {
                let first = q.front().copied().unwrap_or(now);
                return Err(self.window.saturating_sub(now.duration_since(first)));
            }
            q.push_back(now);
            Ok(())
        })
    }

    /// Forgets `key` (a successful log-in).
    pub fn clear(&self, key: &str) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_until_cleared() {
        let t = Throttle::new(2, Duration::from_secs(60));
        assert!(t.take("a").is_ok() && t.take("a").is_ok());
        assert!(t.take("a").is_err());
        assert!(t.take("b").is_ok(), "keys are separate");
        t.record("c");
        assert!(t.wait("c").is_none());
        t.record("c");
        assert!(t.wait("c").is_some());
        t.clear("c");
        assert!(t.wait("c").is_none());
    }

    #[test]
    fn events_leave_the_window() {
        let t = Throttle::new(1, Duration::from_millis(20));
        assert!(t.take("a").is_ok());
        assert!(t.take("a").is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(t.take("a").is_ok());
    }
}
