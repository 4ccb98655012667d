//! Issue 5: liveness, leases and recovery, proven against real `taskfleet-worker`
//! processes that are killed, drained, stopped and resumed. (RabbitMQ and Redis
//! restarts disrupt the shared servers, so they live in `scripts/chaos`.)

use nix::sys::signal::Signal;
use std::time::{Duration, Instant};
use taskfleet_common::{Config, TaskId, TaskState};
use taskfleet_tests::logs::{log_contains, log_path};
use taskfleet_tests::process::{WorkerProcess, cli};
use taskfleet_tests::runs::RunLog;
use taskfleet_tests::{Fleet, amqp, eventually, test_config, worker_with};

/// A worker process of this test; its log (`log_path`) is kept if the test fails.
async fn start(config: &Config, name: &str, concurrency: u32) -> WorkerProcess {
    let concurrency = concurrency.to_string();
    WorkerProcess::start(
        config,
        &["--types", "sleep", "--concurrency", &concurrency],
        &log_path(config, name),
    )
    .await
}

/// `taskfleet enqueue sleep --batch`, one task per payload; the ids in input order.
async fn enqueue_batch(config: &Config, payloads: Vec<String>) -> Vec<TaskId> {
    let input: String = payloads.iter().map(|p| format!("{p}\n")).collect();
    let (code, out, err) = cli(config, &["enqueue", "sleep", "--batch"], Some(&input)).await;
    assert_eq!(code, 0, "taskfleet enqueue --batch failed: {err}");
    out.lines()
        .map(|l| l.parse().expect("an id per line"))
        .collect()
}

fn sleeps(n: usize, ms: u64) -> Vec<String> {
    (0..n).map(|_| format!("{{\"ms\":{ms}}}")).collect()
}

/// Kills worker processes and reaps them before the teardown: a worker still running
/// would declare its queue again once the teardown deleted it.
async fn stop_all(workers: Vec<WorkerProcess>) {
    for mut w in workers {
        w.kill().await;
    }
}

/// `taskfleet workers --json`: the live workers.
async fn live_workers(config: &Config) -> Vec<serde_json::Value> {
    let (code, out, err) = cli(config, &["workers", "--json"], None).await;
    assert_eq!(code, 0, "taskfleet workers failed: {err}");
    serde_json::from_str::<serde_json::Value>(&out)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_else(|| panic!("workers --json prints an array: {out}"))
}

/// The registry id of the worker process with this pid.
async fn worker_id(config: &Config, pid: i32) -> String {
    eventually(Duration::from_secs(10), "the worker registered", || async {
        live_workers(config)
            .await
            .iter()
            .find(|w| pid_of(w) == Some(pid))
            .and_then(|w| field(w, "id"))
    })
    .await
}

/// Tasks `running` under `worker` now, by their leases.
async fn running_under(fleet: &Fleet, worker: &str) -> Vec<TaskId> {
    let mut held = Vec::new();
    for id in fleet.store.running_ids().await.expect("redis") {
        let id: TaskId = id.parse().expect("task id");
        let r = fleet.record(&id).await.expect("record");
        if r.state() == Some(TaskState::Running) && r.get("worker") == Some(worker) {
            held.push(id);
        }
    }
    held
}

/// A field of a `workers --json` entry as text (registry fields are strings).
fn field(worker: &serde_json::Value, name: &str) -> Option<String> {
    match worker.get(name)? {
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn pid_of(worker: &serde_json::Value) -> Option<i32> {
    field(worker, "pid")?.parse().ok()
}

/// Waits for the exit of a process and returns (exit code, time it took).
async fn wait_exit(w: &mut WorkerProcess, deadline: Duration) -> (Option<i32>, Duration) {
    let t0 = Instant::now();
    let code = w.wait_exit(deadline).await.unwrap_or_else(|| {
        panic!("timed out after {deadline:?} waiting for: the worker process to exit")
    });
    (code, t0.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_tasks_survive_a_worker_killed_with_sigkill_midway() {
    let fleet = Fleet::new().await;
    let c = fleet.config.clone();
    let ids = enqueue_batch(&c, sleeps(500, 50)).await;
    assert_eq!(ids.len(), 500);
    let mut victim = start(&c, "victim", 8).await;
    let survivor = start(&c, "survivor", 8).await;
    fleet.wait_for_consumers("sleep", 2).await;
    let victim_id = worker_id(&c, victim.pid()).await;
    let survivor_id = worker_id(&c, survivor.pid()).await;

    eventually(Duration::from_secs(30), "100 tasks completed", || async {
        (fleet.stats("sleep").await.completed >= 100).then_some(())
    })
    .await;
    // Freeze the victim while it holds tasks, note them, then kill it.
    let held = eventually(
        Duration::from_secs(10),
        "the victim holding tasks",
        || async {
            victim.signal(Signal::SIGSTOP);
            let held = running_under(&fleet, &victim_id).await;
            if held.is_empty() {
                victim.signal(Signal::SIGCONT);
            }
            (!held.is_empty()).then_some(held)
        },
    )
    .await;
    victim.signal(Signal::SIGKILL);
    let (code, _) = wait_exit(&mut victim, Duration::from_secs(5)).await;
    assert_eq!(code, None, "killed by a signal, not exited");
    let remaining = 500 - fleet.stats("sleep").await.completed;
    assert!(remaining > 100, "killed midway ({remaining} left)");

    let stats = eventually(Duration::from_secs(60), "500 completed", || async {
        let s = fleet.stats("sleep").await;
        (s.completed >= 500 && s.live() == 0).then_some(s)
    })
    .await;
    assert_eq!(stats.enqueued, 500);
    assert_eq!(stats.completed, 500, "each task counted exactly once");
    assert_eq!((stats.failed, stats.cancelled, stats.retried), (0, 0, 0));
    for id in &ids {
        let r = fleet.record(id).await.expect("record");
        assert_eq!(r.state(), Some(TaskState::Completed), "task {id}");
        assert_eq!(r.attempt(), 1, "a crash uses no attempt: {id}");
        if held.contains(id) {
            assert_eq!(r.get("worker"), Some(survivor_id.as_str()), "taken over");
        }
    }
    assert_eq!(
        fleet.store.running_ids().await.expect("redis"),
        Vec::<String>::new(),
        "no lease left in {{ns}}:running"
    );
    stop_all(vec![victim, survivor]).await;
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_within_the_grace_period_and_hands_back_the_rest() {
    let mut config = test_config();
    config.worker.drain_grace = Duration::from_millis(1500);
    let fleet = Fleet::with_config(config).await;
    let c = fleet.config.clone();
    // The worker takes the first four (its concurrency and prefetch): two that finish
    // within the grace period and two that cannot.
    let short = enqueue_batch(&c, sleeps(2, 800)).await;
    let long = enqueue_batch(&c, sleeps(6, 2500)).await;
    let mut draining = start(&c, "draining", 4).await;
    eventually(Duration::from_secs(15), "4 tasks running", || async {
        (fleet.stats("sleep").await.running == 4).then_some(())
    })
    .await;

    draining.signal(Signal::SIGTERM);
    let (code, took) = wait_exit(&mut draining, Duration::from_secs(15)).await;
    assert_eq!(code, Some(0), "a drained worker exits 0");
    assert!(
        took < c.worker.drain_grace + Duration::from_millis(1000),
        "exited {took:?} after SIGTERM; grace is {:?}",
        c.worker.drain_grace
    );
    for id in &short {
        let r = fleet.record(id).await.expect("record");
        assert_eq!(
            r.state(),
            Some(TaskState::Completed),
            "finished in the grace"
        );
    }
    for id in &long {
        let r = fleet.record(id).await.expect("record");
        assert_eq!(r.state(), Some(TaskState::Pending), "handed back: {id}");
        assert_eq!(
            r.attempt(),
            if r.get("started_at").is_some() { 1 } else { 0 }
        );
    }
    let s = fleet.stats("sleep").await;
    assert_eq!((s.running, s.pending, s.completed), (0, 6, 2));
    assert!(fleet.store.running_ids().await.expect("redis").is_empty());
    assert!(
        live_workers(&c).await.is_empty(),
        "the drained worker deregistered"
    );

    let next = start(&c, "next", 8).await;
    let s = eventually(Duration::from_secs(20), "all 8 completed", || async {
        let s = fleet.stats("sleep").await;
        (s.completed >= 8 && s.live() == 0).then_some(s)
    })
    .await;
    assert_eq!((s.enqueued, s.completed), (8, 8), "each completed once");
    assert_eq!((s.failed, s.retried, s.cancelled), (0, 0, 0));
    for id in long.iter().chain(&short) {
        let r = fleet.record(id).await.expect("record");
        assert_eq!(r.state(), Some(TaskState::Completed));
        assert_eq!(r.attempt(), 1, "a drain uses no attempt");
    }
    assert!(fleet.store.running_ids().await.expect("redis").is_empty());
    stop_all(vec![draining, next]).await;
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_sigterm_exits_at_once_and_loses_nothing() {
    let mut config = test_config();
    config.worker.drain_grace = Duration::from_secs(30);
    let mut fleet = Fleet::with_config(config).await;
    let c = fleet.config.clone();
    // Tasks far longer than the bound below, and a drain grace longer still: a worker
    // that ignored the second signal would finish neither its drain nor its tasks.
    let ids = enqueue_batch(&c, sleeps(4, 60_000)).await;
    let mut impatient = start(&c, "impatient", 4).await;
    let impatient_id = worker_id(&c, impatient.pid()).await;
    eventually(Duration::from_secs(15), "4 tasks running", || async {
        (fleet.stats("sleep").await.running == 4).then_some(())
    })
    .await;

    impatient.signal(Signal::SIGTERM);
    eventually(Duration::from_secs(5), "status draining", || async {
        let w = live_workers(&c).await;
        w.iter()
            .any(|w| field(w, "status").as_deref() == Some("draining"))
            .then_some(())
    })
    .await;
    impatient.signal(Signal::SIGTERM);
    let (code, took) = wait_exit(&mut impatient, Duration::from_secs(20)).await;
    assert_eq!(code, Some(0));
    assert!(
        took < Duration::from_secs(10),
        "the second signal stops waiting for the 30 s drain of 60 s tasks (took {took:?})"
    );

    // Right after the exit: nothing finished or failed, and every task is either
    // handed back (`pending`) or still `running` under the exited worker's lease,
    // which the reaper takes back; no attempt was used.
    let s = fleet.stats("sleep").await;
    assert_eq!(
        (s.completed, s.failed, s.retried, s.cancelled),
        (0, 0, 0, 0),
        "nothing ran to its end"
    );
    let leases = fleet.store.running_ids().await.expect("redis");
    for id in &ids {
        let r = fleet.record(id).await.expect("record");
        assert_eq!(r.attempt(), 1, "an aborted drain uses no attempt: {id}");
        match r.state() {
            Some(TaskState::Pending) => {}
            Some(TaskState::Running) => {
                assert_eq!(r.get("worker"), Some(impatient_id.as_str()), "{id}");
                assert!(leases.contains(&id.to_string()), "its lease is kept: {id}");
            }
            other => panic!("task {id} is {other:?} right after the exit"),
        }
    }
    // The broker holds every delivery again.
    let queue = fleet.names().queue(&"sleep".parse().expect("type"));
    eventually(
        Duration::from_secs(10),
        "4 tasks back in the queue",
        || async { (amqp::queue_depth(&c.amqp_url, &queue).await == Some((4, 0))).then_some(()) },
    )
    .await;

    // The next worker runs each exactly once (its `sleep` returns at once).
    let runs = RunLog::new();
    let next = worker_with(&fleet, "sleep", runs.echo(Duration::ZERO));
    fleet.start_worker_with(next).await;
    let s = eventually(Duration::from_secs(30), "all 4 completed", || async {
        let s = fleet.stats("sleep").await;
        (s.completed >= 4 && s.live() == 0).then_some(s)
    })
    .await;
    assert_eq!((s.enqueued, s.completed, s.failed, s.retried), (4, 4, 0, 0));
    for id in &ids {
        let r = fleet.record(id).await.expect("record");
        assert_eq!(r.state(), Some(TaskState::Completed), "{id}");
        assert_eq!(r.attempt(), 1, "an aborted drain uses no attempt");
    }
    assert_eq!(
        runs.not_once(&ids),
        Vec::new(),
        "(task, runs) after the exit"
    );
    assert!(fleet.store.running_ids().await.expect("redis").is_empty());
    stop_all(vec![impatient]).await;
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_worker_is_taken_over_after_its_lease_and_fenced_after_sigcont() {
    let fleet = Fleet::new().await;
    let c = fleet.config.clone();
    let zombie = start(&c, "zombie", 1).await;
    fleet.wait_for_consumers("sleep", 1).await;
    let id = fleet.enqueue("sleep", r#"{"ms":4000}"#).await;
    let r = fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(10))
        .await;
    let zombie_id = r.get("worker").expect("worker field").to_owned();

    zombie.signal(Signal::SIGSTOP);
    let stopped_at = Instant::now();
    let heir = start(&c, "heir", 1).await;
    fleet.wait_for_consumers("sleep", 2).await;

    // Its beats stopped: the lease lapses and the reaper hands the task back.
    let r = fleet
        .wait_for_state(&id, TaskState::Pending, Duration::from_secs(10))
        .await;
    let lapsed = stopped_at.elapsed();
    assert!(
        lapsed >= c.worker.lease - c.worker.heartbeat_interval,
        "taken back only after the lease ({lapsed:?})"
    );
    assert!(
        r.get("error").is_some_and(|e| e.contains("lease")),
        "{:?}",
        r.get("error")
    );
    assert_eq!(r.attempt(), 1, "a lapsed lease uses no attempt");
    assert!(fleet.store.running_ids().await.expect("redis").is_empty());

    // RabbitMQ redelivers once the stopped worker's AMQP heartbeat times out.
    let r = eventually(
        Duration::from_secs(40),
        "the heir runs the task",
        || async {
            fleet
                .record(&id)
                .await
                .filter(|r| r.state() == Some(TaskState::Running))
                .filter(|r| r.get("worker") != Some(zombie_id.as_str()))
        },
    )
    .await;
    let heir_id = r.get("worker").expect("worker field").to_owned();

    // The zombie wakes up with its 4 s sleep long over and tries to commit.
    zombie.signal(Signal::SIGCONT);
    eventually(
        Duration::from_secs(10),
        "the zombie's commit to be refused",
        || log_contains(&c, "zombie", "commit refused"),
    )
    .await;
    let r = fleet.record(&id).await.expect("record");
    assert_eq!(r.state(), Some(TaskState::Running), "not overwritten");
    assert_eq!(r.get("worker"), Some(heir_id.as_str()));

    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(15))
        .await;
    assert_eq!(r.get("worker"), Some(heir_id.as_str()), "the newer result");
    assert_eq!(r.attempt(), 1);
    let s = fleet.stats("sleep").await;
    assert_eq!(
        (s.enqueued, s.completed, s.failed, s.retried, s.live()),
        (1, 1, 0, 0, 0),
        "completed exactly once"
    );
    assert!(fleet.store.running_ids().await.expect("redis").is_empty());
    stop_all(vec![zombie, heir]).await;
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_leaves_the_registry_within_three_heartbeats() {
    // Beats of a second: "three heartbeats" is then a bound a loaded machine meets,
    // and still far below any expiry not tied to the heartbeat (the lease, retention).
    let mut config = test_config();
    config.worker.heartbeat_interval = Duration::from_secs(1);
    config.worker.lease = Duration::from_secs(5);
    let fleet = Fleet::with_config(config).await;
    let c = fleet.config.clone();
    let victim = start(&c, "victim", 2).await;
    let bystander = start(&c, "bystander", 3).await;
    let (victim_pid, bystander_pid) = (victim.pid(), bystander.pid());
    let listed = eventually(Duration::from_secs(15), "both workers listed", || async {
        let w = live_workers(&c).await;
        let pids: Vec<i32> = w.iter().filter_map(pid_of).collect();
        (pids.contains(&victim_pid) && pids.contains(&bystander_pid)).then_some(w)
    })
    .await;
    let entry = listed
        .iter()
        .find(|w| pid_of(w) == Some(victim_pid))
        .expect("victim listed");
    let f = |name| field(entry, name);
    assert_eq!(f("status").as_deref(), Some("running"));
    assert_eq!(f("concurrency").as_deref(), Some("2"));
    assert_eq!(f("types").as_deref(), Some("sleep"));
    assert_eq!(f("inflight").as_deref(), Some("0"));
    let age: u64 = f("heartbeat_age_ms")
        .and_then(|a| a.parse().ok())
        .expect("age");
    assert!(
        age < (c.worker.heartbeat_interval * 3).as_millis() as u64,
        "{age}"
    );

    victim.signal(Signal::SIGKILL);
    let killed_at = Instant::now();
    // Its entry expires three beats after its last one; the rest is for the poll.
    let within = c.worker.heartbeat_interval * 3 + Duration::from_secs(2);
    let left = eventually(within, "the killed worker to disappear", || async {
        let w = live_workers(&c).await;
        (!w.iter().any(|w| pid_of(w) == Some(victim_pid))).then_some(w)
    })
    .await;
    let gone_after = killed_at.elapsed();
    let pids: Vec<i32> = left.iter().filter_map(pid_of).collect();
    assert_eq!(pids, vec![bystander_pid], "the live worker stays listed");
    assert!(gone_after <= within, "{gone_after:?}");
    stop_all(vec![victim, bystander]).await;
    fleet.teardown().await;
}
