//! `taskfleet pause TYPE` / `taskfleet resume TYPE`: fleet-wide, no new task of TYPE
//! starts while it is paused (docs/flow-control.md).

use crate::Producer;
use crate::error::Result;
use taskfleet_common::{Config, TaskType};

pub async fn run(config: Config, task_type: &str, paused: bool) -> Result<()> {
    let task_type: TaskType = task_type.parse()?;
    let producer = Producer::connect(config).await?;
    let result = producer.store().set_paused(&task_type, paused).await;
    producer.close().await;
    result?;
    println!("{task_type} {}", if paused { "paused" } else { "resumed" });
    Ok(())
}
