//! Errors of the enqueue side, each mapped to the exit code of the contract.

use taskfleet_common::amqp::AmqpError;
use taskfleet_common::envelope::EnvelopeError;
use taskfleet_common::ids::InvalidName;
use taskfleet_common::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// Bad input: fix the request and try again (exit 2).
    #[error("{0}")]
    Invalid(String),
    /// The task or thing asked for does not exist (exit 1).
    #[error("{0}")]
    NotFound(String),
    /// The request was understood but refused (exit 1).
    #[error("{0}")]
    Refused(String),
    /// Some lines of a batch were refused, each already reported on its own line.
    #[error("{refused} line(s) of the batch refused (see above); the other lines were enqueued")]
    BatchRefused { refused: usize, code: u8 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Amqp(#[from] AmqpError),
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

impl ProducerError {
    /// 1 not found or refused, 2 invalid input, 3 RabbitMQ or Redis unreachable.
    pub fn exit_code(&self) -> u8 {
        match self {
            ProducerError::Invalid(_) => 2,
            ProducerError::BatchRefused { code, .. } => *code,
            ProducerError::NotFound(_) | ProducerError::Refused(_) => 1,
            ProducerError::Store(e) if e.is_connection_error() => 3,
            ProducerError::Amqp(e) if e.is_connection_error() => 3,
            ProducerError::Store(_) | ProducerError::Amqp(_) => 1,
        }
    }
}

pub type Result<T> = std::result::Result<T, ProducerError>;
