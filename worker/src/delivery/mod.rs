//! One delivery, start to end: parse → claim → run → commit → settle. The delivery is
//! acknowledged only after its new state is committed in Redis.
//!
//! # Layout
//! - `decision`: what happens to a delivery (`Decision`), decided without I/O
//! - `verdict`: how an attempt ended, as recorded (`Verdict`)
//! - `alert`: announces a dead-lettering decision (`crate::alerts`)
//! - `flow`: how a delivery that flow control holds waits (broker hop or short sleep)
//! - `executor`: carries a `Decision` out on the delivery
//! - `attempt`: runs one claimed attempt of a handler, parking its delivery if long
//! - `commit`: commits a verdict, riding out a Redis restart while the lease lasts
//! - `release`: publishing the dependents a finished task released (docs/workflows.md)
//! - `ports`: the seams (`TaskStore`, `Inbound`) that unit tests fill with fakes
//! - `amqp`: the real `Inbound`, a lapin delivery on its link

mod alert;
mod amqp;
mod attempt;
mod commit;
mod decision;
mod executor;
#[cfg(test)]
mod fakes;
mod flow;
#[cfg(test)]
mod parked_tests;
mod ports;
mod release;
#[cfg(test)]
mod tests;
mod verdict;

pub(crate) use amqp::AmqpInbound;
pub(crate) use ports::TaskStore;
pub use release::abort_after_release_commit;

use crate::shared::Shared;
use decision::ClaimStep;
use ports::Inbound;
use std::sync::Arc;
use std::time::Duration;
use taskfleet_common::envelope::Envelope;
use taskfleet_common::flow::FlowWait;
use taskfleet_common::retry::RetryPolicy;
use taskfleet_common::store::{Claim, Commit, DeliveryClaim, DropReason};
use tracing::Instrument;
use verdict::{AttemptPolicy, Verdict};

/// Handles one delivery to the end: it is settled (or, if its connection broke,
/// left to RabbitMQ's redelivery) when this returns.
pub(crate) async fn process<S: TaskStore, I: Inbound>(shared: Arc<Shared<S>>, inbound: I) {
    let env = match Envelope::parse(inbound.body(), shared.config.payload_limit) {
        Ok(env) => env,
        Err(e) => {
            tracing::warn!(queue = inbound.queue(), error = %e, "malformed message; dead-lettering it");
            metrics::counter!("taskfleet_malformed_total").increment(1);
            let copy = decision::unparseable(&e, inbound.message_id());
            alert::dead_copy(&shared, &copy);
            return executor::dead_letter(&inbound, &copy).await;
        }
    };
    let span =
        tracing::info_span!("task", id = %env.id, r#type = %env.task_type, attempt = env.attempt);
    run_task(&shared, &inbound, &env).instrument(span).await
}

async fn run_task<S: TaskStore, I: Inbound>(shared: &Shared<S>, inbound: &I, env: &Envelope) {
    let resolved = env.resolve(&shared.config);
    let Some(handler) = shared.handlers.get(&env.task_type).cloned() else {
        let decision = decision::unknown_type(env.task_type.as_str(), env.attempt);
        tracing::warn!(?decision, "no handler for this type; dead-lettering");
        alert::decision(shared, env, &decision);
        return executor::execute(inbound, env, resolved.priority, decision).await;
    };
    // A fresh token per delivery: every write of this run must carry it.
    let token = uuid::Uuid::new_v4().as_u64_pair().0;
    // Local rate waits of this delivery so far (bounded by `flow::MAX_LOCAL_WAIT`).
    let mut waited = Duration::ZERO;
    let (fence, checkpoint) = loop {
        let claim = claim_once(shared, inbound, env, &resolved, token).await;
        // A task the claim found finished (a redelivery after a crash between commit
        // and ack) or ended itself: its dependents may still need publishing.
        let ended = matches!(
            claim,
            Some(
                Claim::Drop {
                    reason: DropReason::Finished(_)
                } | Claim::Cancelled
                    | Claim::Expired
                    | Claim::Poison { .. }
            )
        );
        match decision::after_claim(claim, env.attempt) {
            ClaimStep::Run { fence, checkpoint } => break (fence, checkpoint),
            ClaimStep::WaitHere(delay) => match flow::step(FlowWait::Rate, delay, waited) {
                flow::FlowStep::WaitHere(delay) => {
                    // A little jitter, so the deliveries waiting for the same token do
                    // not all ask for it at the same instant.
                    let jitter = Duration::from_millis(uuid::Uuid::new_v4().as_u64_pair().1 % 16);
                    tokio::time::sleep(delay + jitter).await;
                    waited += delay + jitter;
                }
                flow::FlowStep::Settle(decision) => {
                    return executor::execute(inbound, env, resolved.priority, decision).await;
                }
            },
            ClaimStep::Settle(decision) => {
                if ended && !release::after_drop(shared, inbound, &env.id).await {
                    return inbound
                        .settle(taskfleet_common::amqp::Settle::Requeue)
                        .await;
                }
                alert::decision(shared, env, &decision);
                return executor::execute(inbound, env, resolved.priority, decision).await;
            }
        }
    };
    let attempt = attempt::Attempt {
        env,
        resolved: &resolved,
        fence: &fence,
        checkpoint,
    };
    let (end, in_flight) = attempt::run(shared, inbound, handler, attempt).await;
    let policy = AttemptPolicy {
        retry: RetryPolicy {
            max_attempts: resolved.max_attempts,
            backoff: shared.config.type_settings(&env.task_type).backoff,
        },
        timeout: resolved.timeout,
        result_limit: shared.config.result_limit,
    };
    let verdict = Verdict::of(end, fence.attempt, &policy);
    let ending = commit::Ending {
        env,
        fence: &fence,
        verdict: &verdict,
    };
    let commit = commit::commit(shared, inbound, ending).await;
    drop(in_flight);
    if let Some(c) = &commit {
        commit::observe(c, &verdict, env);
    }
    if let Some(Commit::Applied { released, .. }) = &commit
        && !release::publish(shared, inbound, &env.id, released).await
    {
        // The redelivered copy finds the record finished and publishes them again.
        return inbound
            .settle(taskfleet_common::amqp::Settle::Requeue)
            .await;
    }
    let decision = decision::after_commit(commit.as_ref(), &verdict, fence.attempt);
    alert::decision(shared, env, &decision);
    executor::execute(inbound, env, resolved.priority, decision).await
}

/// One claim of the delivery (`None`: Redis did not answer).
async fn claim_once<S: TaskStore, I: Inbound>(
    shared: &Shared<S>,
    inbound: &I,
    env: &Envelope,
    resolved: &taskfleet_common::envelope::Resolved,
    token: u64,
) -> Option<Claim> {
    let claim = shared
        .store
        .claim(
            env,
            resolved,
            &DeliveryClaim {
                worker: &shared.worker_id,
                token,
                redelivered: inbound.redelivered(),
                parked: inbound.is_parked_copy(),
                lease: shared.config.worker.lease,
                max_redeliveries: shared.config.max_redeliveries,
                flow: shared.config.type_settings(&env.task_type).flow,
            },
        )
        .await;
    match claim {
        Ok(c) => {
            log_claim(&c);
            flow::observe(&c, env);
            Some(c)
        }
        Err(e) => {
            // Whatever Redis said (unreachable, LOADING, READONLY, ...), taking more
            // deliveries now would only bounce them: pause until it answers a PING.
            shared.health.failed();
            tracing::warn!(error = %e, "could not claim; handing the delivery back");
            None
        }
    }
}

/// Parks a delivery that found no free slot for `park_after` (parked runs hold their
/// slots but not their deliveries): a confirmed copy waits the check-back delay and
/// the delivery is acknowledged, so it is never held past the broker's timeout. The
/// copy runs when it comes back if the task is still `pending`.
pub(crate) async fn park_unstarted<S: TaskStore, I: Inbound>(shared: Arc<Shared<S>>, inbound: I) {
    let Ok(env) = Envelope::parse(inbound.body(), shared.config.payload_limit) else {
        // Unparseable: the next worker with a free slot dead-letters it.
        return inbound
            .settle(taskfleet_common::amqp::Settle::Requeue)
            .await;
    };
    let priority = env.resolve(&shared.config).priority;
    let check_back = shared.config.worker.park_check_back();
    match executor::park(&inbound, &env, check_back, priority).await {
        Ok(()) => tracing::debug!(id = %env.id, "no free slot for park_after; parked unstarted"),
        Err(e) => {
            tracing::warn!(id = %env.id, error = %e, "could not park a delivery without a slot; handing it back");
            inbound
                .settle(taskfleet_common::amqp::Settle::Requeue)
                .await
        }
    }
}

fn log_claim(claim: &Claim) {
    match claim {
        Claim::Run { .. } => {}
        Claim::Drop { reason } => {
            tracing::debug!(
                ?reason,
                "dropping a delivery of a finished or superseded attempt"
            )
        }
        Claim::Cancelled => tracing::info!("cancelled before it started; dropping"),
        Claim::Reschedule { next_attempt, .. } => tracing::info!(
            next_attempt,
            "a failed attempt came back without its retry; scheduling the retry"
        ),
        Claim::Hop { delay } => tracing::debug!(?delay, "scheduled; not due yet"),
        Claim::Expired => {
            tracing::info!("not started by its expires_at; cancelled as expired");
            metrics::counter!("taskfleet_tasks_expired_total").increment(1);
        }
        Claim::Park { delay } => tracing::debug!(
            ?delay,
            "the run of this task is alive elsewhere; parking this copy to check back"
        ),
        Claim::Wait { reason, delay } => {
            tracing::debug!(reason = reason.as_str(), ?delay, "flow control holds it")
        }
        Claim::Poison { deliveries } => {
            tracing::error!(
                deliveries,
                "poison message: redelivered too often; dead-lettering"
            )
        }
    }
}
