//! The dead-letter queue as operators use it: `list` shows what is in `{ns}.dead`
//! without taking anything out, `replay` gives dead tasks a new life.
//!
//! Both read the queue on a connection of their own with `basic.get` and *no*
//! acknowledgement, up to [`SCAN_LIMIT`] messages: messages held unacknowledged are
//! not handed out twice, so the scan ends at the queue's end. Whatever is not
//! acknowledged is handed back (`basic.nack`, requeue) when the scan is over, and
//! RabbitMQ requeues it by itself if this process dies first — reading never loses
//! a message.
//!
//! A replay runs in the order that keeps the task safe at every step: the record goes
//! back to `pending` with fresh attempts (`StateStore::replay`), the envelope is
//! published as attempt 1 and confirmed, and only then is the dead copy acknowledged.
//! A crash in between leaves the dead copy in the queue and the record `pending`;
//! replaying again finishes the job (a `pending` record is republished, not refused).

mod message;

pub use message::DeadMessage;

use crate::error::{ProducerError, Result};
use crate::producer::Producer;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};
use message::describe;
use std::collections::BTreeMap;
use taskfleet_common::amqp::{Link, LinkOptions};
use taskfleet_common::store::ReplayRefusal;
use taskfleet_common::{TaskId, TaskState};

/// Most messages one `list` or `replay` reads from the queue.
pub const SCAN_LIMIT: usize = 10_000;

/// The first messages of the queue, oldest first.
#[derive(Debug, Clone)]
pub struct DeadList {
    pub messages: Vec<DeadMessage>,
    /// Messages beyond [`SCAN_LIMIT`] that were not read.
    pub not_shown: u32,
}

/// What to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayTarget {
    /// The dead message(s) of one task.
    Id(String),
    /// Every replayable message (up to [`SCAN_LIMIT`]).
    All,
}

#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// Tasks now `pending` again, published as attempt 1.
    pub replayed: Vec<TaskId>,
    /// Messages left in the queue, and why: (task id if known, reason).
    pub skipped: Vec<(Option<String>, String)>,
}

/// Lists the dead-letter queue without removing anything from it.
pub async fn list(producer: &Producer) -> Result<DeadList> {
    let queue = DeadQueue::open(producer).await?;
    let scanned = queue.scan(producer).await;
    queue.release().await;
    let (messages, not_shown) = scanned?;
    Ok(DeadList {
        messages,
        not_shown,
    })
}

/// Replays dead tasks: each goes back to `pending` with fresh attempts, is published
/// as attempt 1, and its dead message(s) are removed from the queue. A single id that
/// is not in the queue is `NotFound`; one that cannot be replayed is `Refused`.
pub async fn replay(producer: &Producer, target: &ReplayTarget) -> Result<ReplayReport> {
    let queue = DeadQueue::open(producer).await?;
    let result = async {
        let (messages, _) = queue.scan(producer).await?;
        let groups = group_by_task(messages, target);
        if let ReplayTarget::Id(id) = target
            && groups.is_empty()
        {
            return Err(ProducerError::NotFound(format!(
                "no message of task {id} in the dead-letter queue {} (taskfleet dead list shows what is there)",
                producer.store().names().dead()
            )));
        }
        let mut report = ReplayReport::default();
        for (id, copies) in groups {
            match replay_one(producer, &queue, &copies).await? {
                Ok(task) => report.replayed.push(task),
                Err(why) => report.skipped.push((id, why)),
            }
        }
        if let (ReplayTarget::Id(_), Some((_, why))) = (target, report.skipped.first()) {
            return Err(ProducerError::Refused(why.clone()));
        }
        Ok(report)
    }
    .await;
    queue.release().await;
    result
}

/// The messages to replay, grouped by task (a task may have been dead-lettered more
/// than once, e.g. two copies both found poisonous), in queue order.
fn group_by_task(
    messages: Vec<DeadMessage>,
    target: &ReplayTarget,
) -> Vec<(Option<String>, Vec<DeadMessage>)> {
    let mut order: Vec<Option<String>> = Vec::new();
    let mut groups: BTreeMap<Option<String>, Vec<DeadMessage>> = BTreeMap::new();
    for m in messages {
        let matches = match target {
            ReplayTarget::All => true,
            ReplayTarget::Id(id) => {
                m.id.as_deref() == Some(id.as_str())
                    || m.envelope.as_ref().is_some_and(|e| e.id.to_string() == *id)
            }
        };
        if !matches {
            continue;
        }
        // Messages without an id cannot be told apart: each is its own group.
        let key = m.id.clone();
        if key.is_none() || !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(m);
    }
    let mut out = Vec::new();
    for key in order {
        if key.is_none() {
            if let Some(list) = groups.get_mut(&None)
                && !list.is_empty()
            {
                out.push((None, vec![list.remove(0)]));
            }
        } else if let Some(list) = groups.remove(&key) {
            out.push((key, list));
        }
    }
    out
}

/// Replays one task from its dead copies: `Ok(Ok(id))` done, `Ok(Err(why))` left in
/// the queue, `Err` the broker or Redis failed (nothing acknowledged for this task).
async fn replay_one(
    producer: &Producer,
    queue: &DeadQueue,
    copies: &[DeadMessage],
) -> Result<std::result::Result<TaskId, String>> {
    let Some(env) = copies.iter().find_map(|m| m.envelope.as_ref()) else {
        let m = &copies[0];
        return Ok(Err(format!(
            "message {} ({}) cannot be replayed: {}",
            m.id.as_deref().unwrap_or("without an id"),
            m.reason,
            m.unreplayable.as_deref().unwrap_or("no valid envelope")
        )));
    };
    let fresh = env.next_attempt(1);
    let resolved = fresh.resolve(producer.config());
    match producer.store().replay(&fresh, &resolved).await? {
        Ok(()) => {}
        // Already back to `pending`: an earlier replay stopped before its publish was
        // confirmed, or the task never ran (no worker had a handler for its type).
        // Nothing else holds a message for it, so publishing it is what is missing.
        Err(ReplayRefusal {
            current: TaskState::Pending,
        }) => {}
        Err(ReplayRefusal { current }) => {
            return Ok(Err(format!(
                "task {} is {current}, not failed: not replayed (its dead message stays)",
                env.id
            )));
        }
    }
    producer.publish(&fresh).await?;
    for m in copies {
        queue.ack(m.delivery_tag).await?;
    }
    Ok(Ok(env.id))
}

/// A connection of its own to read `{ns}.dead` without consuming it: closing it
/// hands back whatever the scan still holds, whatever happened to the rest.
struct DeadQueue {
    link: Link,
    name: String,
}

impl DeadQueue {
    async fn open(producer: &Producer) -> Result<Self> {
        let config = producer.config();
        let topology = producer.publisher().topology();
        let link = Link::open(LinkOptions {
            url: &config.amqp_url,
            name: "taskfleet dead",
            topology,
            timeout: config.network_timeout,
            tls_ca_file: config.tls_ca_file.as_deref(),
            // `basic.get` needs no prefetch, and so no channel of its own.
            consume: None,
        })
        .await?;
        Ok(Self {
            name: topology.names().dead(),
            link,
        })
    }

    /// Reads up to [`SCAN_LIMIT`] messages, unacknowledged, and how many remain unread.
    async fn scan(&self, producer: &Producer) -> Result<(Vec<DeadMessage>, u32)> {
        let payload_limit = producer.config().payload_limit;
        let mut messages = Vec::new();
        let mut remaining = 0;
        while messages.len() < SCAN_LIMIT {
            let got = self
                .link
                .bounded(
                    "reading the dead-letter queue",
                    self.link
                        .consume
                        .basic_get(self.name.as_str().into(), BasicGetOptions { no_ack: false }),
                )
                .await?;
            let Some(got) = got else {
                remaining = 0;
                break;
            };
            remaining = got.message_count;
            messages.push(describe(&got.delivery, payload_limit));
        }
        Ok((messages, remaining))
    }

    async fn ack(&self, delivery_tag: u64) -> Result<()> {
        self.link
            .bounded(
                "acknowledging a dead message",
                self.link
                    .consume
                    .basic_ack(delivery_tag, BasicAckOptions { multiple: false }),
            )
            .await?;
        Ok(())
    }

    /// Hands every unacknowledged message back to the queue and closes. Best effort:
    /// if this fails, closing (or losing) the connection requeues them all the same.
    async fn release(self) {
        let _ = self
            .link
            .bounded(
                "handing dead messages back",
                self.link.consume.basic_nack(
                    0,
                    BasicNackOptions {
                        multiple: true,
                        requeue: true,
                    },
                ),
            )
            .await;
        self.link.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: Option<&str>, tag: u64) -> DeadMessage {
        DeadMessage {
            id: id.map(str::to_owned),
            task_type: None,
            reason: "exhausted".into(),
            attempts: None,
            error: None,
            dead_at: None,
            queue: None,
            unreplayable: None,
            envelope: None,
            delivery_tag: tag,
        }
    }

    #[test]
    fn copies_of_one_task_are_replayed_together_in_queue_order() {
        let all = vec![
            message(Some("b"), 1),
            message(None, 2),
            message(Some("a"), 3),
            message(Some("b"), 4),
            message(None, 5),
        ];
        let groups = group_by_task(all.clone(), &ReplayTarget::All);
        let shape: Vec<(Option<&str>, Vec<u64>)> = groups
            .iter()
            .map(|(k, v)| (k.as_deref(), v.iter().map(|m| m.delivery_tag).collect()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (Some("b"), vec![1, 4]),
                (None, vec![2]),
                (Some("a"), vec![3]),
                (None, vec![5]),
            ]
        );
        let one = group_by_task(all, &ReplayTarget::Id("b".into()));
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].1.len(), 2);
    }
}
