//! The scenarios that touch only their own worker processes: `kill -9`, a drain
//! (SIGTERM, a rolling deploy) and SIGSTOP/SIGCONT (a zombie whose late commits are
//! refused).

use super::batch::Shape;
use super::{DRAIN_GRACE, Run, Scenario, Settings};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// kill -9 one worker midway; the other takes its tasks over.
pub async fn kill9(settings: &Settings) -> Result<i32, i32> {
    let mut run = Run::setup(Scenario::Kill9, settings).await?;
    run.start_worker("victim").await;
    run.start_worker("survivor").await;
    run.enqueue(Shape::default()).await;
    run.when_completed_reaches(run.tasks / 5).await?;
    run.say(&format!(
        "kill -9 the victim at {} completed",
        run.counter().await
    ));
    run.take_worker("victim").kill().await;
    run.enqueue_done().await;
    run.wait_completed(Duration::from_secs(120)).await;
    run.check_no_lease_left().await;
    run.check_alive(&["survivor"]);
    run.finish().await
}

/// SIGTERM one worker midway: exit 0 within the grace period, then a replacement
/// starts (a rolling deploy).
pub async fn drain(settings: &Settings) -> Result<i32, i32> {
    let mut run = Run::setup(Scenario::Drain, settings).await?;
    run.start_worker("old").await;
    run.start_worker("other").await;
    // Every 25th task sleeps longer than the grace period, so the drain hands some back.
    let long_ms = (DRAIN_GRACE + Duration::from_secs(2)).as_millis() as u64;
    run.enqueue(Shape {
        long_every: 25,
        long_ms,
        ..Shape::default()
    })
    .await;
    run.when_completed_reaches(run.tasks / 5).await?;
    run.say(&format!(
        "SIGTERM to one worker at {} completed (grace {} ms)",
        run.counter().await,
        DRAIN_GRACE.as_millis()
    ));
    let t0 = Instant::now();
    let mut old = run.take_worker("old");
    old.signal(Signal::SIGTERM);
    let exit = old.wait_exit(Duration::from_secs(60)).await;
    let took = t0.elapsed();
    let exited = match exit {
        Some(Some(code)) => format!("exited {code}"),
        Some(None) => "was killed by a signal".to_owned(),
        None => "had not exited".to_owned(),
    };
    run.say(&format!(
        "the drained worker {exited} after {} ms",
        took.as_millis()
    ));
    if exit != Some(Some(0)) || took > DRAIN_GRACE + Duration::from_secs(2) {
        run.fail("FAILED: expected exit 0 within the grace period (+2 s to hand back)");
    }
    if run.logged("old", "handing the remaining tasks back").await {
        run.say("it handed unfinished tasks back");
    }
    run.start_worker("new").await;
    run.enqueue_done().await;
    run.wait_completed(Duration::from_secs(120)).await;
    run.check_no_lease_left().await;
    run.check_alive(&["other", "new"]);
    run.finish().await
}

/// SIGSTOP one worker until its tasks were taken over, then SIGCONT: its late
/// commits are refused.
pub async fn sigstop(settings: &Settings) -> Result<i32, i32> {
    let mut run = Run::setup(Scenario::Sigstop, settings).await?;
    run.start_worker("zombie").await;
    run.start_worker("heir").await;
    run.enqueue(Shape::default()).await;
    run.when_completed_reaches(run.tasks / 5).await?;
    run.say(&format!(
        "SIGSTOP one worker at {} completed",
        run.counter().await
    ));
    run.worker("zombie").signal(Signal::SIGSTOP);
    run.enqueue_done().await;
    // Its tasks come back once its lease lapsed and RabbitMQ dropped its connection
    // (AMQP heartbeat); everything completes while it is still stopped.
    run.wait_completed(Duration::from_secs(90)).await;
    run.say("all completed while it was stopped; SIGCONT");
    run.worker("zombie").signal(Signal::SIGCONT);
    let fifteen = Duration::from_secs(15);
    if run.wait_logged("zombie", "commit refused", fifteen).await {
        run.say("the resumed worker's late commits were refused (fenced)");
    } else {
        run.say("no refused commit in the resumed worker's log (it held nothing?)");
    }
    if run.wait_logged("zombie", "reconnecting", fifteen).await {
        run.say("the resumed worker reconnected");
    }
    run.check_no_lease_left().await;
    run.check_alive(&["zombie", "heir"]);
    run.finish().await
}
