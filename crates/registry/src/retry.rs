//! The one retry policy: every loop in ferry that tries something again
//! (a request, a body read whole, an upload session, a blob written into a
//! bundle) runs through [`RetryPolicy::run`], so the bound on tries and
//! the backoff between them are the same everywhere.
//!
//! Whether a failure is worth another try is the caller's typed decision,
//! a [`Failure`]: [`Error::failure`](crate::Error::failure) classifies the
//! client's own errors by kind and status (transport failures, timeouts,
//! 408, 429, 5xx are transient; everything else is final).

use std::future::Future;
use std::time::Duration;

/// Bounded exponential backoff for operations that are safe to repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries, the first included (1 = never retry).
    pub attempts: u32,
    /// Delay before the second try; doubled each time.
    pub base_delay: Duration,
    /// Longest delay between tries, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// How one try failed, as its caller classifies it.
#[derive(Debug)]
pub enum Failure<E> {
    /// Trying again may succeed; wait `after` first when the server said
    /// so (`Retry-After`), else the policy's backoff.
    Transient {
        /// What went wrong this time.
        error: E,
        /// The server's `Retry-After`, if any.
        after: Option<Duration>,
    },
    /// Trying again would not help.
    Final(E),
}

impl<E> Failure<E> {
    /// A transient failure with no advice from the server.
    pub fn transient(error: E) -> Failure<E> {
        Failure::Transient { error, after: None }
    }

    /// The error, however it was classified.
    pub fn into_error(self) -> E {
        match self {
            Failure::Transient { error, .. } | Failure::Final(error) => error,
        }
    }
}

impl RetryPolicy {
    /// The same policy with a single try: for operations whose retry must
    /// start a larger exchange over (a `PUT` into an upload session).
    pub fn once(self) -> RetryPolicy {
        RetryPolicy {
            attempts: 1,
            ..self
        }
    }

    /// Delay before try number `attempt` (1-based; attempt 2 waits
    /// `base_delay`), or the server's `Retry-After`, capped at `max_delay`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(2).min(16));
        retry_after.unwrap_or(exp).min(self.max_delay)
    }

    /// Run `op` (given the try's number, from 1) until it succeeds, fails
    /// for good, or the tries run out; the last error is returned.
    pub async fn run<T, E, F, Fut>(&self, op: F) -> Result<T, E>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, Failure<E>>>,
    {
        self.run_noting(op, |_, _| {}).await
    }

    /// [`run`](Self::run), calling `note` with each transient error and
    /// the number of the try about to start, before waiting for it.
    pub async fn run_noting<T, E, F, Fut, N>(&self, mut op: F, mut note: N) -> Result<T, E>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, Failure<E>>>,
        N: FnMut(&E, u32),
    {
        let mut attempt = 1;
        loop {
            match op(attempt).await {
                Ok(value) => return Ok(value),
                Err(Failure::Transient { error, after }) if attempt < self.attempts => {
                    attempt += 1;
                    note(&error, attempt);
                    tokio::time::sleep(self.delay(attempt, after)).await;
                }
                Err(failure) => return Err(failure.into_error()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(2, None), Duration::from_millis(250));
        assert_eq!(p.delay(3, None), Duration::from_millis(500));
        assert_eq!(p.delay(30, None), Duration::from_secs(10));
        assert_eq!(p.delay(u32::MAX, None), Duration::from_secs(10));
        assert_eq!(
            p.delay(2, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            p.delay(2, Some(Duration::from_secs(300))),
            Duration::from_secs(10)
        );
    }

    fn quick(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn transient_failures_are_tried_again_up_to_the_bound() {
        let mut tries = Vec::new();
        let mut notes = Vec::new();
        let result: Result<(), &str> = quick(3)
            .run_noting(
                |n| {
                    tries.push(n);
                    async { Err(Failure::transient("reset")) }
                },
                |e, n| notes.push((*e, n)),
            )
            .await;
        assert_eq!(result, Err("reset"));
        assert_eq!(tries, [1, 2, 3]);
        assert_eq!(notes, [("reset", 2), ("reset", 3)]);
    }

    #[tokio::test]
    async fn final_failures_and_successes_end_at_once() {
        let mut tries = 0;
        let result: Result<(), &str> = quick(5)
            .run(|_| {
                tries += 1;
                async { Err(Failure::Final("404")) }
            })
            .await;
        assert_eq!((result, tries), (Err("404"), 1));
        let result: Result<u32, &str> = quick(5)
            .run(|n| async move {
                if n < 2 {
                    Err(Failure::transient("503"))
                } else {
                    Ok(n)
                }
            })
            .await;
        assert_eq!(result, Ok(2));
        let once: Result<(), &str> = quick(5)
            .once()
            .run(|_| async { Err(Failure::transient("503")) })
            .await;
        assert_eq!(once, Err("503"));
    }
}
