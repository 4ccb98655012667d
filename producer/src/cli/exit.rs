//! The exit codes of the contract (docs/exit-codes.md), decided by the kind
//! of the error alone: 1 not found or refused, 2 bad usage or invalid input,
//! 3 RabbitMQ or Redis unreachable, 4 a wait timed out.

use crate::error::{ErrorKind, ProducerError};

pub fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Invalid | ErrorKind::TooLarge => 2,
        ErrorKind::NotFound | ErrorKind::Refused => 1,
        ErrorKind::Unavailable => 3,
        ErrorKind::TimedOut => 4,
        // Not the user's input (2) nor a server (3): the command could not do its job.
        ErrorKind::Io => 1,
    }
}

impl ProducerError {
    /// The exit code `taskfleet` ends with for this error. Defined here, with the
    /// command line, so the error type itself knows nothing of processes; a method
    /// so library users can ask what the command line would answer.
    pub fn exit_code(&self) -> u8 {
        exit_code(self.kind())
    }
}

/// Of two failures, the one whose exit code wins (a batch exits with its worst line).
pub fn worse(a: Option<ErrorKind>, b: ErrorKind) -> ErrorKind {
    match a {
        Some(a) if exit_code(a) >= exit_code(b) => a,
        _ => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_the_exit_code_of_the_contract() {
        for kind in ErrorKind::ALL {
            let expected = match kind {
                ErrorKind::Invalid => 2,
                ErrorKind::TooLarge => 2,
                ErrorKind::NotFound => 1,
                ErrorKind::Refused => 1,
                ErrorKind::Unavailable => 3,
                ErrorKind::Io => 1,
                ErrorKind::TimedOut => 4,
            };
            assert_eq!(exit_code(kind), expected, "{kind:?}");
        }
    }

    #[test]
    fn a_batch_exits_with_its_worst_line() {
        let worst = [
            ErrorKind::Refused,
            ErrorKind::Unavailable,
            ErrorKind::Invalid,
        ]
        .into_iter()
        .fold(None, |w, k| Some(worse(w, k)));
        assert_eq!(worst, Some(ErrorKind::Unavailable));
        assert_eq!(worse(None, ErrorKind::NotFound), ErrorKind::NotFound);
        assert_eq!(
            worse(Some(ErrorKind::Invalid), ErrorKind::Refused),
            ErrorKind::Invalid
        );
    }

    #[test]
    fn a_failed_bind_exits_1() {
        let e = ProducerError::Listen {
            addr: "127.0.0.1:8080".parse().expect("an address"),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert_eq!(e.exit_code(), 1);
    }
}
