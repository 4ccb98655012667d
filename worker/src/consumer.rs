//! The consuming loop and its reconnect loop. A session is one RabbitMQ connection:
//! declare, consume every type's queue, and hand each delivery to a task while a
//! semaphore bounds how many run. When the connection breaks, the session ends and
//! a new one starts with backoff; tasks already running finish on their own.

use crate::delivery::{self, AmqpInbound};
use crate::shared::Shared;
use futures_util::stream::select_all;
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use std::sync::Arc;
use std::time::Duration;
use taskfleet_common::amqp::AmqpError;
use taskfleet_common::amqp::{Link, Settle};
use taskfleet_common::reconnect::ReconnectPolicy;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A session that lasted this long resets the reconnect backoff.
const HEALTHY_SESSION: Duration = Duration::from_secs(10);

/// Consumes until `shutdown`, reconnecting whenever RabbitMQ goes away. Returns the
/// last live link (for the drain to settle deliveries on), if any.
pub(crate) async fn run(
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Option<Arc<Link>> {
    let semaphore = Arc::new(Semaphore::new(shared.config.worker.concurrency));
    let mut backoff = ReconnectPolicy::SESSION.start();
    loop {
        let link = match open(&shared).await {
            Ok(link) => {
                let link = Arc::new(link);
                shared.link.set(link.clone());
                link
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff.upcoming(), "cannot reach RabbitMQ");
                if !backoff.wait(&shutdown).await {
                    return None;
                }
                continue;
            }
        };
        let started = tokio::time::Instant::now();
        match session(&shared, &link, &semaphore, &shutdown, tasks).await {
            Ok(()) => return Some(link),
            Err(e) => {
                tracing::warn!(error = %e, "RabbitMQ connection lost; reconnecting");
                link.close().await;
            }
        }
        // A session that lived a while earns a quick reconnect; one that failed at
        // once (no permission to consume, a queue without a leader) backs off.
        if started.elapsed() > HEALTHY_SESSION {
            backoff.reset();
        }
        if !backoff.wait(&shutdown).await {
            return None;
        }
    }
}

async fn open(shared: &Shared) -> Result<Link, AmqpError> {
    use taskfleet_common::amqp::{ConsumeOptions, LinkOptions};
    let c = &shared.config;
    let name = format!("taskfleet-worker {}", shared.worker_id);
    // The prefetch applies per consumer, so a worker consuming T types may hold up to
    // T × prefetch unacked messages; the semaphore still bounds how many run.
    let consume = ConsumeOptions {
        prefetch: c.worker.concurrency.min(u16::MAX as usize) as u16,
        qos: BasicQosOptions { global: false },
    };
    let link = Link::open(LinkOptions {
        url: &c.amqp_url,
        name: &name,
        topology: &shared.topology,
        timeout: c.network_timeout,
        tls_ca_file: c.tls_ca_file.as_deref(),
        consume: Some(consume),
    })
    .await?;
    for t in &shared.types {
        link.bounded(
            "declaring a queue",
            shared.topology.declare_type(&link.consume, t),
        )
        .await?;
    }
    Ok(link)
}

/// Runs until shutdown (Ok, consumers cancelled) or a broken connection (Err).
async fn session(
    shared: &Arc<Shared>,
    link: &Arc<Link>,
    semaphore: &Arc<Semaphore>,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<(), AmqpError> {
    let mut consumers = Vec::new();
    let mut tags = Vec::new();
    for t in &shared.types {
        let queue = shared.names.queue(t);
        let tag = format!("{}.{}", shared.worker_id, t);
        let consumer = link
            .bounded(
                "starting a consumer",
                link.consume.basic_consume(
                    queue.as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await?;
        tags.push(tag);
        consumers.push(consumer.map(move |d| (queue.clone(), d)).boxed());
    }
    tracing::info!(worker = %shared.worker_id, types = ?shared.types, "consuming");
    let mut deliveries = select_all(consumers);
    'session: loop {
        // A channel closed by the broker (a channel-level error) leaves the connection
        // up: reconnect rather than keep handing out deliveries that cannot be settled.
        if !link.is_connected() {
            return Err(AmqpError::Unreachable {
                url: "channel".into(),
                reason: "a channel of this connection was closed".into(),
            });
        }
        // No Redis, no claims: leave deliveries in RabbitMQ instead of taking them.
        if shared.health.is_down() {
            tokio::select! {
                _ = shared.wait_for_redis(Duration::from_millis(500)) => {}
                _ = shutdown.cancelled() => break 'session,
            }
        }
        // Parked runs hold their slots but no delivery, so the broker may send more
        // than can run: one that waited `park_after` for a slot is parked unstarted.
        let mut waited = tokio::time::interval_at(
            tokio::time::Instant::now() + shared.config.worker.park_after,
            shared.config.worker.park_after,
        );
        let permit = loop {
            tokio::select! {
                p = semaphore.clone().acquire_owned() => match p {
                    Ok(p) => break p,
                    Err(_) => break 'session,
                },
                _ = shutdown.cancelled() => break 'session,
                _ = waited.tick() => {
                    while let Some(Some((queue, Ok(delivery)))) = deliveries.next().now_or_never() {
                        let inbound = inbound(shared, link, delivery, queue);
                        tasks.spawn(delivery::park_unstarted(shared.clone(), inbound));
                    }
                }
            }
        };
        let next = tokio::select! {
            d = deliveries.next() => d,
            _ = shutdown.cancelled() => break 'session,
        };
        match next {
            Some((queue, Ok(delivery))) => {
                let inbound = inbound(shared, link, delivery, queue);
                let shared = shared.clone();
                tasks.spawn(async move {
                    delivery::process(shared, inbound).await;
                    drop(permit);
                });
            }
            Some((_, Err(e))) => return Err(e.into()),
            None => {
                return Err(AmqpError::Unreachable {
                    url: "consumer".into(),
                    reason: "the broker cancelled the consumer or closed the channel".into(),
                });
            }
        }
        // Reap finished tasks so the set does not grow with every delivery.
        while tasks.try_join_next().is_some() {}
    }
    // Draining: stop deliveries first, then hand back the ones prefetched but never
    // started, so other workers can take them while this one finishes its tasks.
    for tag in tags {
        let _ = link
            .bounded(
                "cancelling a consumer",
                link.consume
                    .basic_cancel(tag.as_str().into(), BasicCancelOptions::default()),
            )
            .await;
    }
    let handed_back = async {
        while let Some((_, Ok(delivery))) = deliveries.next().await {
            link.settle(&delivery, Settle::Requeue).await;
        }
    };
    let _ = tokio::time::timeout(link.timeout, handed_back).await;
    Ok(())
}

fn inbound(shared: &Shared, link: &Arc<Link>, delivery: Delivery, queue: String) -> AmqpInbound {
    AmqpInbound {
        link: link.clone(),
        delivery,
        queue,
        current: shared.link.clone(),
        parked: Default::default(),
    }
}
