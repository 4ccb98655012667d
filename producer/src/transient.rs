//! Calls that a running producer retries while their server comes back (a Redis or
//! RabbitMQ restart takes seconds): the record and the publish of an enqueue.

use std::time::Duration;
use taskfleet_common::TaskId;
use taskfleet_common::amqp::AmqpError;
use taskfleet_common::reconnect::ReconnectPolicy;
use taskfleet_common::store::StoreError;
use tokio::time::Instant;

/// A failure `retry_within` may try again after: the server went away or is
/// restarting, and the same call can succeed once it is back.
pub(crate) trait Transient: std::fmt::Display {
    fn is_transient(&self) -> bool;
}

impl Transient for StoreError {
    fn is_transient(&self) -> bool {
        self.is_retryable()
    }
}

impl Transient for AmqpError {
    fn is_transient(&self) -> bool {
        self.is_connection_error()
    }
}

/// Runs `call` until it succeeds or fails for good, trying again after transient
/// failures with [`ReconnectPolicy::CALL`] pauses as long as the next pause ends
/// within `patience` of the first try.
pub(crate) async fn retry_within<T, E, F, Fut>(
    patience: Duration,
    what: &'static str,
    id: TaskId,
    mut call: F,
) -> std::result::Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
{
    let deadline = Instant::now() + patience;
    let mut reconnect = ReconnectPolicy::CALL.start();
    loop {
        let e = match call().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() => e,
            Err(e) => return Err(e),
        };
        let pause = reconnect.pause();
        if Instant::now() + pause >= deadline {
            return Err(e);
        }
        tracing::warn!(%id, error = %e, retry_in = ?pause, "{what} failed; trying again");
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[derive(Debug)]
    struct Failure {
        transient: bool,
    }

    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "failure (transient: {})", self.transient)
        }
    }

    impl Transient for Failure {
        fn is_transient(&self) -> bool {
            self.transient
        }
    }

    /// Fails `failures` times with `transient`, then succeeds; counts the calls.
    async fn run(patience: Duration, failures: u32, transient: bool) -> (Result<(), Failure>, u32) {
        let calls = Cell::new(0);
        let result = retry_within(patience, "testing", TaskId::new(), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n <= failures {
                    Err(Failure { transient })
                } else {
                    Ok(())
                }
            }
        })
        .await;
        (result, calls.get())
    }

    #[tokio::test]
    async fn transient_failures_are_tried_again_until_the_call_succeeds() {
        let (result, calls) = run(Duration::from_secs(5), 2, true).await;
        assert!(result.is_ok());
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn a_permanent_failure_is_returned_at_once() {
        let (result, calls) = run(Duration::from_secs(5), 2, false).await;
        assert!(result.is_err_and(|e| !e.transient));
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn a_pause_that_would_end_past_the_deadline_is_not_taken() {
        // The first pause (about 100 ms) does not fit in 50 ms of patience.
        let (result, calls) = run(Duration::from_millis(50), 2, true).await;
        assert!(result.is_err_and(|e| e.transient));
        assert_eq!(calls, 1);
    }
}
