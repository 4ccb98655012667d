//! Issue 13: flow control across the fleet — pause/resume, `max_running`,
//! `group_max_running`, `rate_limit`, bad limits (docs/flow-control.md). Every
//! bound is computed from the records' `started_at`/`finished_at` (Redis clock).

use std::time::{Duration, Instant};
use taskfleet_common::config::TypeConfig;
use taskfleet_common::store::TaskRecord;
use taskfleet_common::{Config, TaskId, TaskState};
use taskfleet_producer::EnqueueRequest;
use taskfleet_tests::process::{WorkerProcess, cli};
use taskfleet_tests::scratch::Scratch;
use taskfleet_tests::{Fleet, eventually, test_config};

/// The test configuration with `[types.NAME]` set by `f`.
fn config_with(name: &str, f: impl FnOnce(&mut TypeConfig)) -> Config {
    let mut c = test_config();
    f(c.types.entry(name.to_owned()).or_default());
    c
}

async fn enqueue(fleet: &Fleet, task_type: &str, payload: &str, group: Option<&str>) -> TaskId {
    let mut req = EnqueueRequest::new(task_type, payload).expect("valid request");
    req.group = group.map(str::to_owned);
    fleet.producer.enqueue(&req).await.expect("enqueue").id
}

async fn records(fleet: &Fleet, ids: &[TaskId]) -> Vec<TaskRecord> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(fleet.record(id).await.expect("a record"));
    }
    out
}

async fn all_completed(fleet: &Fleet, ids: &[TaskId], deadline: Duration) -> Vec<TaskRecord> {
    eventually(deadline, "every task completed", || async {
        let rs = records(fleet, ids).await;
        rs.iter()
            .all(|r| r.state() == Some(TaskState::Completed))
            .then_some(rs)
    })
    .await
}

fn ms(r: &TaskRecord, field: &str) -> Option<u64> {
    r.get(field).and_then(|v| v.parse().ok())
}

/// The most runs at once: [started_at, finished_at) intervals, an end before a start
/// at the same millisecond.
fn max_overlap(rs: &[TaskRecord]) -> usize {
    let mut edges: Vec<(u64, i32)> = Vec::new();
    for r in rs {
        let (s, f) = (ms(r, "started_at"), ms(r, "finished_at"));
        edges.push((s.expect("started_at"), 1));
        edges.push((f.expect("finished_at"), -1));
    }
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

/// Redis server time (ms): the clock of every record.
async fn redis_now(fleet: &Fleet) -> u64 {
    let mut c = taskfleet_tests::redis_direct::connection(&fleet.config.redis_url).await;
    let (s, us): (u64, u64) = redis::cmd("TIME").query_async(&mut c).await.expect("TIME");
    s * 1000 + us / 1000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_new_starts_within_a_second_across_restarts_and_resume_finishes_all() {
    let mut fleet = Fleet::with_config(test_config()).await;
    // Queued first: the pause lands in the middle of the run, not of the enqueueing.
    let mut ids = Vec::new();
    for _ in 0..160 {
        ids.push(enqueue(&fleet, "sleep", r#"{"ms":300}"#, None).await);
    }
    // Resuming a type that is not paused changes nothing (and builds the CLI now, not
    // in the middle of the run).
    let (code, _, err) = cli(&fleet.config, &["resume", "sleep"], None).await;
    assert_eq!(code, 0, "{err}");
    fleet.start_worker().await;
    fleet.start_worker().await;
    // Some have started: pause in the middle of the run.
    eventually(Duration::from_secs(10), "a first start", || async {
        (fleet.stats("sleep").await.completed > 0).then_some(())
    })
    .await;
    let (code, out, err) = cli(&fleet.config, &["pause", "sleep"], None).await;
    assert_eq!((code, out.trim()), (0, "sleep paused"), "{err}");
    let paused_at = redis_now(&fleet).await;

    let (code, out, err) = cli(&fleet.config, &["types", "--json"], None).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["types"]["sleep"]["paused"], true, "{v}");

    // A worker restart does not forget the pause.
    fleet.take_worker(0).stop().await;
    fleet.start_worker().await;
    let hold_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < hold_until {
        let late: Vec<_> = records(&fleet, &ids)
            .await
            .into_iter()
            .filter(|r| ms(r, "started_at").is_some_and(|s| s > paused_at + 1000))
            .collect();
        assert!(late.is_empty(), "started while paused: {late:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let states: Vec<_> = records(&fleet, &ids)
        .await
        .iter()
        .map(|r| r.state())
        .collect();
    let waiting = states
        .iter()
        .filter(|s| **s == Some(TaskState::Pending))
        .count();
    assert!(
        waiting > 0,
        "the pause came too late to hold any task back: {states:?}"
    );

    let (code, out, err) = cli(&fleet.config, &["resume", "sleep"], None).await;
    assert_eq!((code, out.trim()), (0, "sleep resumed"), "{err}");
    all_completed(&fleet, &ids, Duration::from_secs(60)).await;
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_over_http_need_the_write_scope() {
    let mut config = test_config();
    config.http.tokens = vec!["s3cret".into()];
    let fleet = Fleet::with_config(config).await;
    let (addr, stop) = taskfleet_tests::http::serve(&fleet).await;
    use taskfleet_tests::http::call;
    let (status, _) = call(addr, "POST", "/v1/types/sleep/pause", None, None).await;
    assert_eq!(status, 401);
    let (status, body) = call(addr, "POST", "/v1/types/sleep/pause", Some("s3cret"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["paused"], true, "{body}");
    let (_, types) = call(addr, "GET", "/v1/types", Some("s3cret"), None).await;
    assert_eq!(types["types"]["sleep"]["paused"], true, "{types}");
    let (status, body) = call(
        addr,
        "POST",
        "/v1/types/Bad%20Type/pause",
        Some("s3cret"),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(addr, "POST", "/v1/types/sleep/resume", Some("s3cret"), None).await;
    assert_eq!((status, &body["paused"]), (200, &serde_json::json!(false)));
    let (_, types) = call(addr, "GET", "/v1/types", Some("s3cret"), None).await;
    assert_eq!(types["types"]["sleep"]["paused"], false, "{types}");
    stop.cancel();
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_running_holds_fleet_wide_and_every_task_completes() {
    let config = config_with("sleep", |t| t.max_running = Some(3));
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    fleet.start_worker().await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(enqueue(&fleet, "sleep", r#"{"ms":100}"#, None).await);
    }
    let rs = all_completed(&fleet, &ids, Duration::from_secs(60)).await;
    let most = max_overlap(&rs);
    assert!(most <= 3, "{most} ran at once under max_running = 3");
    assert!(
        most >= 2,
        "the cap left slots unused: at most {most} at once"
    );
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holder_gives_its_slot_back_within_the_lease() {
    let scratch = Scratch::new();
    let config = config_with("sleep", |t| t.max_running = Some(1));
    let mut fleet = Fleet::with_config(config).await;
    let file = scratch
        // Parked at once: the killed run leaves no delivery for RabbitMQ to hand back
        // before its parked copy returns (3 leases on), so only the lease frees the slot.
        .write(
            "w.toml",
            "[worker]\npark_after = \"200ms\"\nlease = \"2s\"\nheartbeat_interval = \"300ms\"\n\
             [types.sleep]\nmax_running = 1\n",
        )
        .await;
    let mut holder = WorkerProcess::start(
        &fleet.config,
        &["--config", &file.display().to_string()],
        &scratch.path("holder.log"),
    )
    .await;
    fleet.wait_for_consumers("sleep", 1).await;
    let long = enqueue(&fleet, "sleep", r#"{"ms":60000}"#, None).await;
    fleet
        .wait_for_state(&long, TaskState::Running, Duration::from_secs(15))
        .await;
    fleet.start_worker().await;
    let short = enqueue(&fleet, "sleep", r#"{"ms":10}"#, None).await;
    // Held back by the cap while the holder lives.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        fleet.record(&short).await.and_then(|r| r.state()),
        Some(TaskState::Pending)
    );
    holder.kill().await;
    let killed_at = redis_now(&fleet).await;
    // Cancelled, so that its own takeover does not take the slot back first.
    let (code, _, err) = cli(&fleet.config, &["cancel", &long.to_string()], None).await;
    assert_eq!(code, 0, "{err}");
    let r = fleet
        .wait_for_state(&short, TaskState::Completed, Duration::from_secs(20))
        .await;
    let waited = ms(&r, "started_at").expect("started_at") - killed_at;
    let bound = fleet.config.worker.lease.as_millis() as u64 + 1500;
    assert!(
        waited <= bound,
        "the slot came back {waited} ms after the kill (lease + hop bound {bound} ms)"
    );
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_group_is_not_stuck_behind_a_large_one() {
    let config = config_with("sleep", |t| t.group_max_running = Some(2));
    let mut fleet = Fleet::with_config(config).await;
    // Queued before any worker runs: B's tasks are behind all of A's in the queue.
    let mut a = Vec::new();
    for _ in 0..200 {
        a.push(enqueue(&fleet, "sleep", r#"{"ms":100}"#, Some("a")).await);
    }
    let mut b = Vec::new();
    for _ in 0..5 {
        b.push(enqueue(&fleet, "sleep", r#"{"ms":100}"#, Some("b")).await);
    }
    fleet.start_worker().await;
    fleet.start_worker().await;
    let bs = all_completed(&fleet, &b, Duration::from_secs(60)).await;
    let b_done = bs.iter().filter_map(|r| ms(r, "finished_at")).max();
    let a_before = records(&fleet, &a)
        .await
        .iter()
        .filter(|r| ms(r, "finished_at").is_some_and(|f| Some(f) <= b_done))
        .count();
    assert!(a_before < 50, "{a_before} of A finished before B's last");
    assert_eq!(bs[0].get("group"), Some("b"), "{:?}", bs[0]);
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_fleet_wide() {
    let mut config = config_with("echo", |t| t.rate_limit = Some("20/s".into()));
    config.worker.concurrency = 16;
    let mut fleet = Fleet::with_config(config).await;
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(enqueue(&fleet, "echo", &i.to_string(), None).await);
    }
    fleet.start_worker().await;
    fleet.start_worker().await;
    let rs = all_completed(&fleet, &ids, Duration::from_secs(60)).await;
    let mut starts: Vec<u64> = rs.iter().filter_map(|r| ms(r, "started_at")).collect();
    starts.sort_unstable();
    let span = starts[starts.len() - 1] - starts[0];
    assert!(span >= 4500, "100 starts at 20/s took only {span} ms");
    let busiest = (0..starts.len())
        .map(|i| {
            starts[i..]
                .iter()
                .take_while(|s| **s < starts[i] + 1000)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(busiest <= 22, "{busiest} starts in one second under 20/s");
    eprintln!("100 starts in {span} ms, at most {busiest} in any second");
    fleet.teardown().await;
}

/// `taskfleet-worker` with `[types.echo]` set to `line`: its exit code and stderr.
async fn worker_with_type_line(line: &str) -> (Option<i32>, String) {
    let scratch = Scratch::new();
    let file = scratch
        .write("w.toml", &format!("[types.echo]\n{line}\n"))
        .await;
    let log = scratch.path("w.log");
    let mut w = WorkerProcess::start(
        &test_config(),
        &["--config", &file.display().to_string()],
        &log,
    )
    .await;
    let code = w.wait_exit(Duration::from_secs(20)).await;
    w.kill().await;
    (
        code.flatten(),
        scratch.text("w.log").await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_limits_stop_the_worker_naming_the_key() {
    for (line, key) in [
        ("rate_limit = \"fast\"", "types.echo.rate_limit"),
        ("rate_limit = \"0/s\"", "types.echo.rate_limit"),
        ("max_running = 0", "types.echo.max_running"),
        ("group_max_running = 0", "types.echo.group_max_running"),
    ] {
        let (code, err) = worker_with_type_line(line).await;
        assert_eq!(code, Some(2), "{line}: {err}");
        assert!(err.contains(key), "{line}: the error names {key}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disagreeing_workers_warn_and_the_stricter_cap_holds() {
    let scratch = Scratch::new();
    let mut fleet = Fleet::with_config(config_with("sleep", |t| t.max_running = Some(5))).await;
    fleet.start_worker().await;
    let file = scratch
        .write("w.toml", "[types.sleep]\nmax_running = 2\n")
        .await;
    let log = scratch.path("strict.log");
    let _strict = WorkerProcess::start(
        &fleet.config,
        &["--config", &file.display().to_string()],
        &log,
    )
    .await;
    fleet.wait_for_consumers("sleep", 2).await;
    eventually(
        Duration::from_secs(10),
        "the disagreement warning",
        || async {
            scratch
                .text("strict.log")
                .await
                .filter(|l| l.contains("disagree on the fleet-wide limits"))
        },
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(enqueue(&fleet, "sleep", r#"{"ms":100}"#, None).await);
    }
    let rs = all_completed(&fleet, &ids, Duration::from_secs(60)).await;
    let most = max_overlap(&rs);
    assert!(
        most <= 2,
        "{most} ran at once: the looser worker's cap held"
    );
    fleet.teardown().await;
}

async fn scrape(addr: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_deliveries_show_in_metrics_and_in_types() {
    let scratch = Scratch::new();
    let addr = format!("127.0.0.1:{}", taskfleet_tests::free_port().await);
    let mut config = config_with("echo", |t| t.max_running = Some(7));
    config.worker.metrics_listen = Some(addr.clone());
    let fleet = Fleet::with_config(config).await;
    let file = scratch
        .write("w.toml", "[types.echo]\nmax_running = 7\n")
        .await;
    let _worker = WorkerProcess::start(
        &fleet.config,
        &["--config", &file.display().to_string()],
        &scratch.path("w.log"),
    )
    .await;
    fleet.wait_for_consumers("echo", 1).await;
    fleet
        .store
        .set_paused(&taskfleet_tests::task_type("echo"), true)
        .await
        .expect("pause");
    let id = fleet.enqueue("echo", "1").await;
    let text = eventually(
        Duration::from_secs(15),
        "the paused wait exported",
        || async {
            scrape(&addr).await.filter(|t| {
                t.lines().any(|l| {
                    l.starts_with("taskfleet_flow_waits_total") && l.contains("reason=\"paused\"")
                }) && t
                    .lines()
                    .any(|l| l.starts_with("taskfleet_type_paused") && l.ends_with(" 1"))
            })
        },
    )
    .await;
    assert!(text.contains("type=\"echo\""), "{text}");
    let (code, out, err) = cli(&fleet.config, &["types", "--json"], None).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let echo = &v["types"]["echo"];
    assert_eq!(echo["paused"], true, "{v}");
    assert_eq!(echo["limits"]["max_running"], 7, "{v}");
    assert!(echo["waits"]["paused"].as_u64() >= Some(1), "{v}");
    let (code, out, _) = cli(&fleet.config, &["types"], None).await;
    assert_eq!(code, 0);
    assert!(out.contains("WAITS"), "{out}");
    fleet
        .store
        .set_paused(&taskfleet_tests::task_type("echo"), false)
        .await
        .expect("resume");
    fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(15))
        .await;
    fleet.teardown().await;
}
