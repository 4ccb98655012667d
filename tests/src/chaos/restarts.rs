//! The scenarios that stop the SHARED servers for seconds (everyone's tests notice;
//! redis-restart wipes every namespace), so they never run in the test suite:
//! `rabbitmqctl stop_app`/`start_app`, and Redis `SHUTDOWN NOSAVE` then a restart
//! with the same settings. A server a scenario stopped is restored on exit, whatever
//! happened (`Restore`, also on drop).

use super::batch::Shape;
use super::{EXIT_FAILED, EXIT_USAGE, Run, Scenario, Settings};
use crate::rabbitmqctl;
use crate::redis_direct;
use crate::wait::poll_until;
use std::time::Duration;

/// How long a stopped server stays down.
const OUTAGE: Duration = Duration::from_secs(5);

/// A backlog, then paced (about 30/s) so the producer publishes through the outage.
pub(super) fn paced(tasks: usize) -> Shape {
    Shape {
        burst: tasks / 5,
        pace: Duration::from_millis(300),
        ..Shape::default()
    }
}

/// What a scenario stopped and must bring back.
#[derive(Debug, Default)]
pub struct Restore {
    rabbitmq: bool,
    // The command line to start Redis again with, while it is down.
    redis: Option<Vec<String>>,
}

impl Restore {
    pub async fn restore(&mut self, scenario: Scenario) {
        let say = |m: &str| eprintln!("chaos[{}]: {m}", scenario.name());
        if std::mem::take(&mut self.rabbitmq) {
            say("restoring RabbitMQ (start_app)");
            if let Err(e) = rabbitmqctl::run(&["start_app"]).await {
                say(&format!(
                    "rabbitmqctl start_app FAILED ({e}): start RabbitMQ by hand"
                ));
            }
        }
        if let Some(args) = self.redis.take() {
            say(&format!("restoring Redis: redis-server {}", args.join(" ")));
            let started = tokio::process::Command::new("redis-server")
                .args(&args)
                .status()
                .await;
            if !started.is_ok_and(|s| s.success()) {
                say("redis-server FAILED to start: run scripts/services");
            } else if !redis_up(Duration::from_secs(15)).await {
                say("Redis does not answer after the restart: run scripts/services");
            }
        }
    }
}

impl Drop for Restore {
    /// A panic or an early exit: bring the servers back on the spot (blocking, as
    /// nothing else runs then).
    fn drop(&mut self) {
        if self.rabbitmq {
            eprintln!("chaos: restoring RabbitMQ (start_app)");
            let _ = std::process::Command::new("rabbitmqctl")
                .args(["-q", "start_app"])
                .status();
        }
        if let Some(args) = self.redis.take() {
            eprintln!("chaos: restoring Redis: redis-server {}", args.join(" "));
            let _ = std::process::Command::new("redis-server")
                .args(&args)
                .status();
        }
    }
}

fn redis_url() -> String {
    crate::redis_url()
}

async fn redis_up(deadline: Duration) -> bool {
    let url = redis_url();
    poll_until(deadline, || async {
        redis_direct::answers(&url).await.then_some(())
    })
    .await
    .is_some()
}

fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// rabbitmqctl stop_app / start_app while the producer and the workers run: both
/// reconnect by themselves.
pub async fn rabbitmq_restart(settings: &Settings) -> Result<i32, i32> {
    if !have("rabbitmqctl") {
        eprintln!("chaos: rabbitmqctl is needed");
        return Err(EXIT_USAGE);
    }
    let mut run = Run::setup(Scenario::RabbitmqRestart, settings).await?;
    run.start_worker("w1").await;
    run.start_worker("w2").await;
    run.enqueue(paced(run.tasks)).await;
    run.when_completed_reaches(50).await?;
    run.say(&format!(
        "rabbitmqctl stop_app at {} completed",
        run.counter().await
    ));
    run.restore.rabbitmq = true;
    if let Err(e) = rabbitmqctl::run(&["stop_app"]).await {
        run.say(&format!("rabbitmqctl stop_app failed: {e}"));
    }
    tokio::time::sleep(OUTAGE).await; // the outage itself, not a wait for a condition
    run.say("rabbitmqctl start_app");
    if let Err(e) = rabbitmqctl::run(&["start_app"]).await {
        run.say(&format!("rabbitmqctl start_app failed: {e}"));
    } else {
        run.restore.rabbitmq = false;
    }
    let fed = run.fed();
    run.enqueue_done().await;
    run.wait_completed(Duration::from_secs(120)).await;
    check_producer_recovered(&mut run, fed, "RabbitMQ").await;
    let two = poll_until(Duration::from_secs(30), || async {
        (run.consumers().await == Some(2)).then_some(())
    });
    if two.await.is_some() {
        run.say("both workers consume again");
    } else {
        let n = run.consumers().await;
        run.fail(&format!(
            "FAILED: {n:?} consumer(s) after the restart, expected 2"
        ));
    }
    run.check_no_lease_left().await;
    run.check_alive(&["w1", "w2"]);
    run.finish().await
}

/// CLIENT PAUSE, SHUTDOWN NOSAVE, restart with the same settings: the data is gone,
/// the fleet carries on from the envelopes.
pub async fn redis_restart(settings: &Settings) -> Result<i32, i32> {
    if !have("redis-server") {
        eprintln!("chaos: redis-server is needed");
        return Err(EXIT_USAGE);
    }
    let mut run = Run::setup(Scenario::RedisRestart, settings).await?;
    let url = run.config().redis_url.clone();
    let Some(args) = server_command_line(&url).await else {
        run.say("CONFIG GET refused; cannot restart Redis");
        return Err(EXIT_USAGE);
    };
    run.start_worker("w1").await;
    run.start_worker("w2").await;
    run.enqueue(paced(run.tasks)).await;
    run.when_completed_reaches(50).await?;
    run.say(&format!(
        "pausing writes, snapshotting, SHUTDOWN NOSAVE at {} completed",
        run.counter().await
    ));
    let mut conn = redis_direct::connection(&url).await;
    let _: redis::RedisResult<()> = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(10000)
        .arg("WRITE")
        .query_async(&mut conn)
        .await;
    let pre = run.snapshot().await;
    run.set_pre_restart(pre);
    run.restore.redis = Some(args.clone());
    // The connection ends with the server: no reply is expected.
    let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query_async(&mut conn)
        .await;
    let down = poll_until(Duration::from_secs(10), || async {
        (!redis_direct::answers(&url).await).then_some(())
    });
    if down.await.is_none() {
        run.say("Redis still answers after SHUTDOWN");
    }
    tokio::time::sleep(OUTAGE).await; // the outage itself, not a wait for a condition
    run.say(&format!("restarting: redis-server {}", args.join(" ")));
    let started = tokio::process::Command::new("redis-server")
        .args(&args)
        .status()
        .await;
    if !started.is_ok_and(|s| s.success()) || !redis_up(Duration::from_secs(15)).await {
        run.say("FAILED: Redis did not come back");
        return Err(EXIT_FAILED);
    }
    run.restore.redis = None;
    let fed = run.fed();
    run.enqueue_done().await;
    run.wait_completed(Duration::from_secs(120)).await;
    check_producer_recovered(&mut run, fed, "Redis").await;
    run.check_no_lease_left().await;
    run.check_alive(&["w1", "w2"]);
    run.finish().await
}

/// The command line `scripts/services` starts Redis with, with the running server's
/// values (port, dir, logfile, bind).
async fn server_command_line(url: &str) -> Option<Vec<String>> {
    let conn = redis_direct::connect(url).await.ok()?;
    let get = |name: &'static str| {
        let mut conn = conn.clone();
        async move {
            let kv: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(name)
                .query_async(&mut conn)
                .await
                .ok()?;
            kv.get(1).cloned()
        }
    };
    let port = get("port").await.filter(|p| !p.is_empty())?;
    let dir = get("dir").await?;
    let logfile = get("logfile").await.unwrap_or_default();
    let bind = get("bind").await.unwrap_or_default();
    let mut args: Vec<String> = vec!["--daemonize".into(), "yes".into()];
    // bind is a space-separated list of addresses, one argument each.
    if !bind.is_empty() {
        args.push("--bind".into());
        args.extend(bind.split_whitespace().map(str::to_owned));
    }
    args.extend(
        [
            "--port",
            &port,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir,
        ]
        .map(str::to_owned),
    );
    if !logfile.is_empty() {
        args.extend(["--logfile".to_owned(), logfile]);
    }
    Some(args)
}

/// The producer enqueued tasks read after the server came back (if any were left).
async fn check_producer_recovered(run: &mut Run, fed_at_restore: usize, server: &str) {
    let after = run.enqueued_after_line(fed_at_restore).await;
    if run.fed() == fed_at_restore {
        run.say(&format!(
            "the batch was fully read before {server} came back; producer recovery not observed"
        ));
    } else if after > 0 {
        run.say(&format!(
            "the producer enqueued {after} task(s) read after {server} came back"
        ));
    } else {
        run.fail(&format!(
            "FAILED: the producer enqueued nothing after {server} came back"
        ));
    }
}
