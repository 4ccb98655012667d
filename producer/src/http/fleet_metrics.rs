//! Fleet-wide gauges rendered with each `GET /metrics` scrape of the API: what no
//! single worker knows. Per type: `taskfleet_queue_depth` (messages ready in
//! `{ns}.q.{type}`, the autoscaling signal), `taskfleet_tasks` by live `state`
//! (from `{ns}:stats:{type}`); and `taskfleet_workers` (live workers). A scrape
//! that cannot reach RabbitMQ or Redis keeps the last values (and logs why).

use crate::Producer;

pub(crate) async fn refresh(producer: &Producer) {
    if let Err(e) = try_refresh(producer).await {
        tracing::debug!(error = %e, "fleet gauges not refreshed");
    }
}

async fn try_refresh(producer: &Producer) -> crate::error::Result<()> {
    for (t, view) in crate::fleet_types::types(producer).await? {
        if let Some(depth) = view.queue_depth {
            metrics::gauge!("taskfleet_queue_depth", "type" => t.to_string()).set(depth as f64);
        }
    }
    let store = producer.store();
    for (t, s) in store.stats().await? {
        let live = [
            ("pending", s.pending),
            ("running", s.running),
            ("retrying", s.retrying),
            ("scheduled", s.scheduled),
        ];
        for (state, n) in live {
            metrics::gauge!("taskfleet_tasks", "type" => t.to_string(), "state" => state)
                .set(n as f64);
        }
    }
    metrics::gauge!("taskfleet_workers").set(store.workers().await?.len() as f64);
    Ok(())
}
