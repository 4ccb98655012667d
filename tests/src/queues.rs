//! Waiting for a fleet's queues to reach a state: consumers attached or gone, every
//! delivery settled.

use crate::{Fleet, amqp, rabbitmqctl, task_type, wait::eventually};
use std::time::Duration;

impl Fleet {
    /// Waits until `n` consumers listen on the queue of `task_type` (a worker has
    /// declared its queues and is consuming).
    pub async fn wait_for_consumers(&self, task_type_name: &str, n: u32) {
        let queue = self.names().queue(&task_type(task_type_name));
        let url = self.config.amqp_url.clone();
        eventually(
            Duration::from_secs(15),
            &format!("{n} consumers on {queue}"),
            || async {
                amqp::queue_depth(&url, &queue)
                    .await
                    .filter(|(_, c)| *c >= n)
                    .map(|_| ())
            },
        )
        .await;
    }

    /// Waits until RabbitMQ lists no consumer on the queue of `task_type` (it saw a
    /// killed worker's connection go).
    pub async fn wait_for_no_consumers(&self, task_type_name: &str) {
        let queue = self.names().queue(&task_type(task_type_name));
        let url = self.config.amqp_url.clone();
        eventually(
            Duration::from_secs(10),
            "RabbitMQ notices the dead consumer",
            || async {
                amqp::queue_depth(&url, &queue)
                    .await
                    .filter(|(_, c)| *c == 0)
                    .map(|_| ())
            },
        )
        .await;
    }

    /// Waits until the queue of `task_type` holds no message, ready or unacknowledged,
    /// with `consumers` consumers: every delivery of it was settled.
    pub async fn wait_for_settled_queue(&self, task_type_name: &str, consumers: u32) {
        let queue = self.names().queue(&task_type(task_type_name));
        let url = self.config.amqp_url.clone();
        eventually(
            Duration::from_secs(15),
            &format!("{queue} empty, every delivery acknowledged"),
            || async {
                let depth = amqp::queue_depth(&url, &queue).await;
                (depth == Some((0, consumers))
                    && rabbitmqctl::unacked(&url, &queue).await == Some(0))
                .then_some(())
            },
        )
        .await;
    }
}
