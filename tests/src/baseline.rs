//! The minimal lapin + Redis pipeline that `scripts/bench` compares the fleet with: the
//! least any status-keeping consumer must do per task, on the same workload. One
//! durable queue with the fleet task queue's arguments (`x-max-priority` 9, a dead
//! letter exchange), persistent messages published with confirms, `workers`
//! consumers on their own connections with prefetch `concurrency` (as a worker's
//! consumer has), and per delivery three Redis writes — HSET state running, HSET state
//! completed, HINCRBY a counter — then the ack. Everything lives under the bench's
//! namespace, so `cleanup` removes it.

use crate::amqp::channel;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::OnceCell;

/// The queue, its publisher channel and the Redis keys of one baseline run.
pub struct Baseline {
    amqp_url: String,
    redis_url: String,
    queue: String,
    dead: String,
    prefix: String,
    publish: Channel,
    _conn: Connection,
    consumers: Vec<Connection>,
    /// Deliveries acked so far.
    pub finished: Arc<AtomicU64>,
    /// When the first delivery was processed.
    pub first: Arc<OnceCell<Instant>>,
    sent: AtomicU64,
}

impl Baseline {
    /// Declares the queue under `namespace`, with the task queue's arguments.
    pub async fn declare(amqp_url: &str, redis_url: &str, namespace: &str) -> Self {
        let (conn, ch) = channel(amqp_url).await;
        let dead = format!("{namespace}.baseline.dead");
        let queue = format!("{namespace}.baseline");
        ch.exchange_declare(
            dead.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare the baseline's dead letter exchange");
        let mut args = FieldTable::default();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(dead.as_str().into()),
        );
        args.insert("x-max-priority".into(), AMQPValue::LongInt(9));
        ch.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .expect("declare the baseline queue");
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm mode");
        Self {
            amqp_url: amqp_url.to_owned(),
            redis_url: redis_url.to_owned(),
            queue,
            dead,
            prefix: format!("{namespace}:baseline"),
            publish: ch,
            _conn: conn,
            consumers: Vec::new(),
            finished: Arc::new(AtomicU64::new(0)),
            first: Arc::new(OnceCell::new()),
            sent: AtomicU64::new(0),
        }
    }

    /// Publishes one persistent message and waits for the broker's confirm, as the
    /// producer does for each enqueue.
    pub async fn publish_one(&self) {
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        let confirm = self
            .publish
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions::default(),
                n.to_string().as_bytes(),
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_priority(0),
            )
            .await
            .expect("publish to the baseline queue");
        confirm.await.expect("broker confirm");
    }

    /// Publishes `n` messages, up to 512 awaiting their confirm at once.
    pub async fn publish(&self, n: usize) {
        futures_util::stream::iter(0..n)
            .map(|_| self.publish_one())
            .buffer_unordered(512)
            .collect::<Vec<()>>()
            .await;
    }

    /// Starts `workers` consumers with prefetch `concurrency` each.
    pub async fn start(&mut self, workers: usize, concurrency: u16) {
        for w in 0..workers {
            let (conn, ch) = channel(&self.amqp_url).await;
            ch.basic_qos(concurrency, BasicQosOptions::default())
                .await
                .expect("prefetch");
            let mut deliveries = ch
                .basic_consume(
                    self.queue.as_str().into(),
                    format!("baseline-{w}").as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("consume the baseline queue");
            let client = redis::Client::open(self.redis_url.as_str()).expect("redis url");
            let redis = client
                .get_multiplexed_async_connection()
                .await
                .expect("Redis reachable");
            let prefix = self.prefix.clone();
            let finished = self.finished.clone();
            let first = self.first.clone();
            tokio::spawn(async move {
                while let Some(Ok(d)) = deliveries.next().await {
                    let _ = first.set(Instant::now());
                    let mut redis = redis.clone();
                    let key = format!("{prefix}:{}", String::from_utf8_lossy(&d.data));
                    let counter = format!("{prefix}:count");
                    let finished = finished.clone();
                    // Each delivery on its own task, as the worker runs them; the
                    // prefetch bounds how many are in flight.
                    tokio::spawn(async move {
                        let _: redis::RedisResult<()> = redis::cmd("HSET")
                            .arg(&key)
                            .arg("state")
                            .arg("running")
                            .query_async(&mut redis)
                            .await;
                        let _: redis::RedisResult<()> = redis::cmd("HSET")
                            .arg(&key)
                            .arg("state")
                            .arg("completed")
                            .query_async(&mut redis)
                            .await;
                        let _: redis::RedisResult<()> = redis::cmd("HINCRBY")
                            .arg(&counter)
                            .arg("completed")
                            .arg(1)
                            .query_async(&mut redis)
                            .await;
                        if d.acker.ack(BasicAckOptions::default()).await.is_ok() {
                            finished.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            });
            self.consumers.push(conn);
        }
    }

    /// Drains `n` pre-published messages with `workers` × `concurrency`: tasks/s from
    /// the first delivery to the last ack.
    pub async fn drain(&mut self, n: usize, workers: usize, concurrency: u16) -> f64 {
        self.publish(n).await;
        self.start(workers, concurrency).await;
        while self.finished.load(Ordering::Relaxed) < n as u64 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let from = self.first.get().copied().unwrap_or_else(Instant::now);
        n as f64 / from.elapsed().as_secs_f64().max(0.001)
    }

    /// Closes the consumers and deletes the queue and exchange; the Redis keys go with the
    /// namespace's cleanup.
    pub async fn remove(self) {
        for c in self.consumers {
            let _ = c.close(200, "done".into()).await;
        }
        let _ = self
            .publish
            .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
            .await;
        let _ = self
            .publish
            .exchange_delete(self.dead.as_str().into(), ExchangeDeleteOptions::default())
            .await;
        let _ = self._conn.close(200, "done".into()).await;
    }
}

impl crate::bench_steady::Pipeline for Baseline {
    async fn submit(&self) {
        self.publish_one().await;
    }
    async fn finished(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }
}
