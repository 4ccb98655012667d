//! What a message of `{ns}.dead` says about itself, read from our headers, the
//! broker's `x-death` and the envelope, whichever encoding a client used for them.

use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable};
use serde::Serialize;
use taskfleet_common::Envelope;
use taskfleet_common::amqp::dead::{ATTEMPTS, DEAD_AT, ERROR, QUEUE, REASON};

/// One message of the dead-letter queue, as `dead list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadMessage {
    /// The task id: the message's `message_id`, or the envelope's `id`.
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub task_type: Option<String>,
    /// `x-taskfleet-reason` (`exhausted`, `poison`, `malformed`, ...), or the broker's
    /// own dead-lettering reason (`rejected`, ...) for messages no worker labelled.
    pub reason: String,
    pub attempts: Option<u32>,
    pub error: Option<String>,
    /// When it was dead-lettered, ms since the Unix epoch.
    pub dead_at: Option<u64>,
    /// The queue it came from.
    pub queue: Option<String>,
    /// Why it cannot be replayed (no valid envelope); `None` if it can.
    pub unreplayable: Option<String>,
    #[serde(skip)]
    pub(super) envelope: Option<Envelope>,
    #[serde(skip)]
    pub(super) delivery_tag: u64,
}

/// What a dead message says about itself: our headers first, then the broker's
/// `x-death` for messages dead-lettered by the queue itself, then the envelope.
pub(super) fn describe(delivery: &Delivery, payload_limit: usize) -> DeadMessage {
    let props = &delivery.properties;
    let empty = FieldTable::default();
    let headers = props.headers().as_ref().unwrap_or(&empty);
    let death = first_death(headers);
    let parsed = Envelope::parse(&delivery.data, payload_limit);
    let envelope = parsed.as_ref().ok().cloned();
    let message_id = props
        .message_id()
        .as_ref()
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty());
    let property_type = props
        .kind()
        .as_ref()
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty());
    DeadMessage {
        id: message_id.or_else(|| envelope.as_ref().map(|e| e.id.to_string())),
        task_type: envelope
            .as_ref()
            .map(|e| e.task_type.to_string())
            .or(property_type),
        reason: text(headers.inner().get(REASON))
            .or_else(|| death.and_then(|d| text(d.inner().get("reason"))))
            .unwrap_or_else(|| "unknown".into()),
        attempts: number(headers.inner().get(ATTEMPTS)).map(|n| n as u32),
        error: text(headers.inner().get(ERROR)).filter(|s| !s.is_empty()),
        dead_at: number(headers.inner().get(DEAD_AT))
            .or_else(|| death.and_then(|d| number(d.inner().get("time")).map(|s| s * 1000))),
        queue: text(headers.inner().get(QUEUE))
            .filter(|s| !s.is_empty())
            .or_else(|| death.and_then(|d| text(d.inner().get("queue")))),
        unreplayable: parsed.err().map(|e| e.to_string()),
        envelope,
        delivery_tag: delivery.delivery_tag,
    }
}

/// The most recent entry of the broker's `x-death` header, if any.
fn first_death(headers: &FieldTable) -> Option<&FieldTable> {
    match headers.inner().get("x-death")? {
        AMQPValue::FieldArray(a) => a.as_slice().iter().find_map(|v| match v {
            AMQPValue::FieldTable(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}

fn text(v: Option<&AMQPValue>) -> Option<String> {
    match v? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn number(v: Option<&AMQPValue>) -> Option<u64> {
    match v? {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).parse().ok(),
        AMQPValue::ShortString(s) => s.as_str().parse().ok(),
        AMQPValue::Timestamp(t) => Some(*t),
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_whatever_their_encoding() {
        assert_eq!(number(Some(&AMQPValue::LongString("42".into()))), Some(42));
        assert_eq!(number(Some(&AMQPValue::Timestamp(7))), Some(7));
        assert_eq!(number(Some(&AMQPValue::LongLongInt(-1))), None);
        assert_eq!(
            text(Some(&AMQPValue::LongString("poison".into()))).as_deref(),
            Some("poison")
        );
    }
}
