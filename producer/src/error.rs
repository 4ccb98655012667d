//! Errors of the enqueue side, and the kind of each: what its caller does about it.
//! The kind is all the edges look at — the command line maps it to an exit code
//! (`cli::exit`), the HTTP API to a status (`http::error`) — so a new error only
//! has to say which kind it is.

use std::net::SocketAddr;
use taskfleet_common::amqp::AmqpError;
use taskfleet_common::envelope::EnvelopeError;
use taskfleet_common::ids::InvalidName;
use taskfleet_common::store::StoreError;

/// How to react to a [`ProducerError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad input or configuration: fix it and try again; trying as is cannot help.
    Invalid,
    /// The task (or dead message) asked for does not exist: check the id.
    NotFound,
    /// A body, payload or batch over its limit: make it smaller (or raise the limit).
    TooLarge,
    /// Understood, but refused — by taskfleet (the task is not in a state that
    /// allows it) or by a server (RabbitMQ nacked a publish, a Redis script failed).
    Refused,
    /// RabbitMQ or Redis cannot be reached: start it or fix its URL, then try again.
    Unavailable,
    /// This machine refused: the HTTP API could not listen on its address, or stopped.
    Io,
    /// A wait for a task to finish ran out of time; the task goes on.
    TimedOut,
}

impl ErrorKind {
    /// Every kind, for tables that must cover them all.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Invalid,
        ErrorKind::TooLarge,
        ErrorKind::NotFound,
        ErrorKind::Refused,
        ErrorKind::Unavailable,
        ErrorKind::Io,
        ErrorKind::TimedOut,
    ];
}

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    TimedOut(String),
    /// Some lines of a batch failed, each already reported on its own line; `worst`
    /// is the kind of the most serious failure, which decides the exit code.
    #[error(
        "{refused} line(s) of the batch not enqueued (each reported above); every other line was enqueued, so enqueue only those again"
    )]
    BatchRefused { refused: usize, worst: ErrorKind },
    #[error(
        "cannot listen on {addr}: {source} (is another process using that port? choose another address with --listen or http.listen)"
    )]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the HTTP server stopped: {0} (start it again; tasks already enqueued are safe)")]
    Serve(std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Amqp(#[from] AmqpError),
}

impl ProducerError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProducerError::Invalid(_) => ErrorKind::Invalid,
            ProducerError::TooLarge(_) => ErrorKind::TooLarge,
            ProducerError::NotFound(_) => ErrorKind::NotFound,
            ProducerError::Refused(_) => ErrorKind::Refused,
            ProducerError::TimedOut(_) => ErrorKind::TimedOut,
            ProducerError::BatchRefused { worst, .. } => *worst,
            ProducerError::Listen { .. } | ProducerError::Serve(_) => ErrorKind::Io,
            ProducerError::Store(e) if e.is_connection_error() => ErrorKind::Unavailable,
            ProducerError::Amqp(e) if e.is_connection_error() => ErrorKind::Unavailable,
            ProducerError::Store(_) | ProducerError::Amqp(_) => ErrorKind::Refused,
        }
    }
}

impl From<InvalidName> for ProducerError {
    fn from(e: InvalidName) -> Self {
        ProducerError::Invalid(e.to_string())
    }
}

impl From<EnvelopeError> for ProducerError {
    fn from(e: EnvelopeError) -> Self {
        ProducerError::Invalid(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, ProducerError>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn io() -> std::io::Error {
        std::io::Error::from(std::io::ErrorKind::AddrInUse)
    }

    #[test]
    fn every_error_has_the_kind_its_caller_reacts_to() {
        let unreachable_redis = StoreError::Unreachable {
            url: "redis://h".into(),
            reason: "refused".into(),
        };
        let bad_reply = StoreError::Protocol {
            script: "enqueue",
            reply: "?".into(),
        };
        let cases = [
            (ProducerError::Invalid("x".into()), ErrorKind::Invalid),
            (ProducerError::TooLarge("x".into()), ErrorKind::TooLarge),
            (ProducerError::NotFound("x".into()), ErrorKind::NotFound),
            (ProducerError::Refused("x".into()), ErrorKind::Refused),
            (
                ProducerError::BatchRefused {
                    refused: 2,
                    worst: ErrorKind::Unavailable,
                },
                ErrorKind::Unavailable,
            ),
            (
                ProducerError::Listen {
                    addr: "127.0.0.1:8080".parse().expect("an address"),
                    source: io(),
                },
                ErrorKind::Io,
            ),
            (ProducerError::Serve(io()), ErrorKind::Io),
            (unreachable_redis.into(), ErrorKind::Unavailable),
            (bad_reply.into(), ErrorKind::Refused),
            (
                AmqpError::TimedOut {
                    what: "publishing",
                    after: Duration::from_secs(1),
                }
                .into(),
                ErrorKind::Unavailable,
            ),
            (AmqpError::Nacked.into(), ErrorKind::Refused),
            (
                AmqpError::Unroutable("echo".into()).into(),
                ErrorKind::Refused,
            ),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
        }
    }

    #[test]
    fn a_failed_bind_says_what_to_do() {
        let e = ProducerError::Listen {
            addr: "127.0.0.1:8080".parse().expect("an address"),
            source: io(),
        };
        assert!(e.to_string().contains("--listen"), "{e}");
    }
}
