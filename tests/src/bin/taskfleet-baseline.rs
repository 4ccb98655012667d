//! The minimal lapin + Redis pipeline of `taskfleet_tests::baseline` on its own:
//! drains N pre-published messages and prints tasks/s. `scripts/bench` runs the same
//! code in its own run, next to the fleet.
//! Usage: taskfleet-baseline [TASKS] [WORKERS] [CONCURRENCY]   (20000 2 64)

use taskfleet_tests::baseline::Baseline;
use taskfleet_tests::{cleanup, test_config};

#[tokio::main]
async fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (tasks, workers, concurrency) = (arg(1, 20_000), arg(2, 2), arg(3, 64));
    let config = test_config();
    let mut b = Baseline::declare(
        &config.amqp_url,
        &config.redis_url,
        config.namespace.as_str(),
    )
    .await;
    let rate = b
        .drain(tasks, workers, concurrency.min(u16::MAX as usize) as u16)
        .await;
    println!("baseline drain: {tasks} tasks, {workers} x {concurrency}: {rate:.0} tasks/s");
    b.remove().await;
    cleanup(&config).await;
}
