//! What only `rabbitmqctl` tells (the local broker's node; `RABBITMQ_NODENAME` picks
//! another): unacknowledged deliveries, and the queues a namespace declared under
//! computed names. Run with `tokio::process`, never blocking a runtime thread.

use tokio::process::Command;

/// The vhost of an AMQP URL (`/` when it names none).
pub fn vhost(amqp_url: &str) -> String {
    // A list of nodes (`a,b`) shares one vhost: read it from the first.
    let first = amqp_url.split(',').next().unwrap_or(amqp_url);
    first
        .parse::<lapin::uri::AMQPUri>()
        .map(|u| u.vhost)
        .unwrap_or_else(|_| "/".into())
}

/// `rabbitmqctl ARGS` (quiet): its stdout, or its stderr when it fails.
pub async fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("rabbitmqctl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// `rabbitmqctl list_queues COLUMNS...` in the URL's vhost: one row per queue, one
/// string per column (queue names never hold white space: types and namespaces
/// cannot).
pub async fn list_queues(amqp_url: &str, columns: &[&str]) -> Option<Vec<Vec<String>>> {
    let vhost = vhost(amqp_url);
    let mut args = vec!["list_queues", "-p", vhost.as_str(), "--no-table-headers"];
    args.extend_from_slice(columns);
    let out = run(&args).await.ok()?;
    Some(
        out.lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .filter(|row| row.len() == columns.len())
            .collect(),
    )
}

/// Unacknowledged deliveries of a queue.
pub async fn unacked(amqp_url: &str, queue: &str) -> Option<u64> {
    list_queues(amqp_url, &["name", "messages_unacknowledged"])
        .await?
        .into_iter()
        .find(|row| row[0] == queue)
        .and_then(|row| row[1].parse().ok())
}

/// Names of the queues that start with `prefix`.
pub async fn queues_with_prefix(amqp_url: &str, prefix: &str) -> Vec<String> {
    list_queues(amqp_url, &["name"])
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|mut row| row.pop())
        .filter(|name| name.starts_with(prefix))
        .collect()
}
