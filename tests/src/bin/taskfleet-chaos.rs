//! `scripts/chaos`: fault scenarios against the real servers, one verdict line each
//! (see `taskfleet_tests::chaos`).
//!
//!   taskfleet-chaos kill9|drain|sigstop|rabbitmq-restart|redis-restart|all
//!   taskfleet-chaos rabbitmq-node-kill|redis-failover   (on scripts/cluster up)
//!
//! rabbitmq-restart and redis-restart stop the SHARED servers (`all` runs them too);
//! the test suite never runs them. Env: TASKFLEET_AMQP_URL, TASKFLEET_REDIS_URL (the
//! servers); CHAOS_TASKS (N, 500); CHAOS_KEEP_LOGS=1 keeps the logs;
//! RABBITMQ_NODENAME (rabbitmqctl's node, for one other than the local default).

use taskfleet_tests::chaos::{EXIT_USAGE, Scenario, Settings};

const USAGE: &str = "usage: scripts/chaos kill9|drain|sigstop|rabbitmq-restart|redis-restart|all, or on scripts/cluster up: rabbitmq-node-kill|redis-failover";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenarios: Vec<Scenario> = match args.as_slice() {
        [one] if one == "all" => Scenario::ALL.to_vec(),
        [one] => match Scenario::parse(one) {
            Some(s) => vec![s],
            None => usage(),
        },
        _ => usage(),
    };
    let settings = Settings {
        tasks: match std::env::var("CHAOS_TASKS") {
            Ok(n) => n.parse().unwrap_or_else(|_| {
                eprintln!("chaos: CHAOS_TASKS must be a number of tasks, not {n:?}");
                std::process::exit(EXIT_USAGE)
            }),
            Err(_) => 500,
        },
        keep_logs: std::env::var("CHAOS_KEEP_LOGS").is_ok_and(|v| v == "1"),
    };
    let mut codes = Vec::new();
    for scenario in &scenarios {
        // A task of its own, so a panic in one scenario still ends in an exit code
        // (its workers, namespace and stopped servers are dealt with on drop).
        let (scenario, settings) = (*scenario, settings.clone());
        let code = tokio::spawn(async move { scenario.run(&settings).await })
            .await
            .unwrap_or(1);
        codes.push(code);
    }
    // One scenario: its own exit code; `all`: 1 if any of them failed.
    let rc = match codes.as_slice() {
        [one] => *one,
        all => i32::from(all.iter().any(|&c| c != 0)),
    };
    std::process::exit(rc);
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(EXIT_USAGE)
}
