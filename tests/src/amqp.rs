//! Direct RabbitMQ access for tests: a plain client's publish, reading the dead
//! queue, queue depths, and deleting what a namespace declared.

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use taskfleet_common::{Names, TaskType};

/// Connects as the fleet does: the first node of `url` that answers (a list of nodes
/// is allowed), with the fleet's deadline.
async fn open(url: &str) -> Result<Connection, taskfleet_common::amqp::AmqpError> {
    taskfleet_common::amqp::connect(
        url,
        "taskfleet-tests",
        std::time::Duration::from_secs(10),
        None,
    )
    .await
}

pub async fn channel(url: &str) -> (Connection, Channel) {
    let conn = open(url).await.expect("RabbitMQ reachable");
    let ch = conn.create_channel().await.expect("channel");
    (conn, ch)
}

/// Whether the broker accepts a connection within a few seconds.
pub async fn reachable(url: &str) -> bool {
    let connect = open(url);
    match tokio::time::timeout(std::time::Duration::from_secs(5), connect).await {
        Ok(Ok(conn)) => {
            let _ = conn.close(200, "done".into()).await;
            true
        }
        _ => false,
    }
}

/// Publishes raw bytes as any AMQP client could, with publisher confirms (mandatory,
/// persistent, no taskfleet code involved): once this returns, the broker holds the
/// message.
pub async fn publish_raw(url: &str, exchange: &str, routing_key: &str, body: &[u8]) {
    let (conn, ch) = channel(url).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    let confirm = ch
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack(), "broker confirmed the message");
    let _ = conn.close(200, "done".into()).await;
}

/// (messages ready, consumers) of a queue, without creating it.
pub async fn queue_depth(url: &str, queue: &str) -> Option<(u32, u32)> {
    let (conn, ch) = channel(url).await;
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .ok()
        .map(|q| (q.message_count(), q.consumer_count()));
    let _ = conn.close(200, "done".into()).await;
    q
}

/// Takes (and acks) one message from a queue: (body, headers as strings).
pub async fn get_one(url: &str, queue: &str) -> Option<(Vec<u8>, Vec<(String, String)>)> {
    let (conn, ch) = channel(url).await;
    let msg = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .ok()
        .flatten();
    let out = msg.map(|m| {
        let headers = m
            .delivery
            .properties
            .headers()
            .as_ref()
            .map(|h| {
                h.inner()
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            lapin::types::AMQPValue::LongString(s) => {
                                String::from_utf8_lossy(s.as_bytes()).into_owned()
                            }
                            other => format!("{other:?}"),
                        };
                        (k.to_string(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        (m.delivery.data.clone(), headers)
    });
    let _ = conn.close(200, "done".into()).await;
    out
}

pub async fn delete_namespace(url: &str, names: &Names, types: &[TaskType]) {
    let Ok(conn) = open(url).await else {
        return;
    };
    let Ok(ch) = conn.create_channel().await else {
        return;
    };
    for t in types {
        let _ = ch
            .queue_delete(names.queue(t).into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = ch
        .queue_delete(names.dead().into(), QueueDeleteOptions::default())
        .await;
    for ex in [names.tasks_exchange(), names.dead()] {
        let _ = ch
            .exchange_delete(ex.into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "done".into()).await;
}

pub async fn delete_queues(url: &str, queues: &[String]) {
    if queues.is_empty() {
        return;
    }
    let Ok(conn) = open(url).await else {
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        for q in queues {
            let _ = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
    }
    let _ = conn.close(200, "done".into()).await;
}
