//! Every AMQP name and Redis key of a fleet, in one place (docs/amqp-topology.md and
//! docs/redis-keys.md). Nothing else in the code base formats a key or a queue name.
//!
//! [`REDIS_KEYS`] lists the template of every key and channel; a unit test keeps it
//! equal to what the methods render and to the table of docs/redis-keys.md.
//!
//! Redis Cluster: every script call declares its keys in KEYS, and keys added since
//! issue 10 (`{ns}:type:{type}`, `{ns}:schedule:{name}`) are only ever touched one at a time (one script
//! call or one command per key), so they can live on any shard without a hash tag.

use crate::ids::{Namespace, TaskId, TaskType, WorkerId};

/// The template of every Redis key and pub/sub channel of a namespace, as
/// docs/redis-keys.md lists them (`{ns}`, `{id}`, `{type}`, `{worker_id}`, `{key}`,
/// `{name}` are placeholders).
pub const REDIS_KEYS: &[&str] = &[
    "{ns}:task:{id}",
    "{ns}:cancel:{id}",
    "{ns}:stats:{type}",
    "{ns}:types",
    "{ns}:type:{type}",
    "{ns}:rate:{type}",
    "{ns}:slots:{type}",
    "{ns}:slots:{type}:group:{group}",
    "{ns}:workers",
    "{ns}:worker:{worker_id}",
    "{ns}:running",
    "{ns}:idem:{key}",
    "{ns}:reaper",
    "{ns}:expiring",
    "{ns}:schedule:{name}",
    "{ns}:logs:{id}",
    "{ns}:deps:{id}",
    "{ns}:dependents:{id}",
    "{ns}:events",
    "{ns}:cancellations",
];

#[derive(Debug, Clone)]
pub struct Names {
    ns: Namespace,
}

impl Names {
    pub fn new(ns: Namespace) -> Self {
        Self { ns }
    }

    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    // --- AMQP ---

    /// Direct exchange, routing key = task type.
    pub fn tasks_exchange(&self) -> String {
        format!("{}.tasks", self.ns)
    }

    pub fn queue(&self, task_type: &TaskType) -> String {
        format!("{}.q.{}", self.ns, task_type)
    }

    /// Exchange and queue of the same name, for final failures and unparseable messages.
    pub fn dead(&self) -> String {
        format!("{}.dead", self.ns)
    }

    /// Broker-held retry delay for one delay value (see `amqp::delay`).
    pub fn delay_queue(&self, task_type: &TaskType, delay_ms: u64) -> String {
        format!("{}.delay.{}.{}", self.ns, task_type, delay_ms)
    }

    // --- Redis ---

    pub fn task_key(&self, id: &TaskId) -> String {
        format!("{}:task:{}", self.ns, id)
    }

    /// Prefix the scripts append an id to (they see ids, not keys, in some loops).
    pub fn task_key_prefix(&self) -> String {
        format!("{}:task:", self.ns)
    }

    pub fn cancel_key(&self, id: &TaskId) -> String {
        format!("{}:cancel:{}", self.ns, id)
    }

    pub fn cancel_key_prefix(&self) -> String {
        format!("{}:cancel:", self.ns)
    }

    pub fn stats_key(&self, task_type: &TaskType) -> String {
        format!("{}:stats:{}", self.ns, task_type)
    }

    pub fn stats_key_prefix(&self) -> String {
        format!("{}:stats:", self.ns)
    }

    pub fn types_key(&self) -> String {
        format!("{}:types", self.ns)
    }

    /// The effective settings of a type as the workers serving it declared them,
    /// `paused`, and `workers` (see `store::type_settings`).
    pub fn type_key(&self, task_type: &TaskType) -> String {
        format!("{}:type:{}", self.ns, task_type)
    }

    pub fn workers_key(&self) -> String {
        format!("{}:workers", self.ns)
    }

    pub fn worker_key(&self, id: &WorkerId) -> String {
        format!("{}:worker:{}", self.ns, id)
    }

    pub fn worker_key_prefix(&self) -> String {
        format!("{}:worker:", self.ns)
    }

    /// GCRA state of the type's `rate_limit`: the theoretical arrival time (µs).
    pub fn rate_key(&self, task_type: &TaskType) -> String {
        format!("{}:rate:{}", self.ns, task_type)
    }

    /// Slots of the type's `max_running`: task id → lease deadline (ms).
    pub fn slots_key(&self, task_type: &TaskType) -> String {
        format!("{}:slots:{}", self.ns, task_type)
    }

    /// Slots of one `--group` key under the type's `group_max_running`.
    pub fn group_slots_key(&self, task_type: &TaskType, group: &str) -> String {
        format!("{}:slots:{}:group:{}", self.ns, task_type, group)
    }

    pub fn running_key(&self) -> String {
        format!("{}:running", self.ns)
    }

    pub fn events_channel(&self) -> String {
        format!("{}:events", self.ns)
    }

    pub fn cancellations_channel(&self) -> String {
        format!("{}:cancellations", self.ns)
    }

    /// Idempotency key → task id, kept for the retention period.
    pub fn idempotency_key(&self, key: &str) -> String {
        format!("{}:idem:{}", self.ns, key)
    }

    /// Lock held by the one worker that reaps expired leases.
    pub fn reaper_lock(&self) -> String {
        format!("{}:reaper", self.ns)
    }

    /// Tasks with an `expires_at` that had not started when enqueued: id → expires_at
    /// (ms), for the expiry sweep.
    pub fn expiring_key(&self) -> String {
        format!("{}:expiring", self.ns)
    }

    /// A schedule's state (`next_at last_at last_id leader ...`), also its leader lease:
    /// each schedule is led on its own key, so its scripts touch one key (one slot).
    pub fn schedule_key(&self, name: &str) -> String {
        format!("{}:schedule:{}", self.ns, name)
    }

    /// A task's log lines (exec stderr, `ctx.log`), a bounded list that expires
    /// like the record. Written one key per call, so it may live on any shard.
    pub fn task_logs_key(&self, id: &TaskId) -> String {
        format!("{}:logs:{}", self.ns, id)
    }

    /// Pattern matching every schedule's key (`taskfleet schedules` scans it).
    pub fn schedule_pattern(&self) -> String {
        format!("{}:schedule:*", self.ns)
    }

    /// Pattern matching every Redis key of the namespace (for cleanup and tests).
    /// The parents a `waiting` task still waits for (docs/workflows.md).
    pub fn deps_key(&self, id: &TaskId) -> String {
        format!("{}:deps:{}", self.ns, id)
    }

    /// The tasks waiting for this one.
    pub fn dependents_key(&self, id: &TaskId) -> String {
        format!("{}:dependents:{}", self.ns, id)
    }

    /// What the scripts prefix to `task:{id}`, `stats:{type}`, `deps:{id}` and
    /// `dependents:{id}` for keys they only learn while running (a task's dependents).
    pub fn key_prefix(&self) -> String {
        format!("{}:", self.ns)
    }

    pub fn redis_pattern(&self) -> String {
        format!("{}:*", self.ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let n = Names::new("shop".parse().expect("valid namespace"));
        let t: TaskType = "email.send".parse().expect("valid type");
        let id: TaskId = "01934f9e-7a3b-7c00-8000-000000000000"
            .parse()
            .expect("valid id");
        assert_eq!(n.tasks_exchange(), "shop.tasks");
        assert_eq!(n.queue(&t), "shop.q.email.send");
        assert_eq!(n.dead(), "shop.dead");
        assert_eq!(
            n.task_key(&id),
            "shop:task:01934f9e-7a3b-7c00-8000-000000000000"
        );
        assert_eq!(
            n.cancel_key(&id),
            "shop:cancel:01934f9e-7a3b-7c00-8000-000000000000"
        );
        assert_eq!(n.stats_key(&t), "shop:stats:email.send");
        assert_eq!(n.types_key(), "shop:types");
        assert_eq!(n.workers_key(), "shop:workers");
        assert_eq!(n.running_key(), "shop:running");
        assert_eq!(n.events_channel(), "shop:events");
        assert_eq!(n.cancellations_channel(), "shop:cancellations");
        assert_eq!(n.type_key(&t), "shop:type:email.send");
    }

    /// Every template of [`REDIS_KEYS`] is what a method renders, and every method
    /// that renders a key has its template listed.
    #[test]
    fn key_templates_match_the_methods() {
        let n = Names::new("shop".parse().expect("valid namespace"));
        let t: TaskType = "email.send".parse().expect("valid type");
        let id: TaskId = "01934f9e-7a3b-7c00-8000-000000000000"
            .parse()
            .expect("valid id");
        let w = WorkerId::from("host-1-abc".to_owned());
        let rendered: Vec<String> = vec![
            n.task_key(&id),
            n.cancel_key(&id),
            n.stats_key(&t),
            n.types_key(),
            n.type_key(&t),
            n.rate_key(&t),
            n.slots_key(&t),
            n.group_slots_key(&t, "acme"),
            n.workers_key(),
            n.worker_key(&w),
            n.running_key(),
            n.idempotency_key("k1"),
            n.reaper_lock(),
            n.expiring_key(),
            n.schedule_key("nightly"),
            n.task_logs_key(&id),
            n.deps_key(&id),
            n.dependents_key(&id),
            n.events_channel(),
            n.cancellations_channel(),
        ];
        let from_templates: Vec<String> = REDIS_KEYS
            .iter()
            .map(|k| {
                k.replace("{ns}", "shop")
                    .replace("{id}", &id.to_string())
                    .replace("{type}", t.as_str())
                    .replace("{name}", "nightly")
                    .replace("{worker_id}", w.as_str())
                    .replace("{key}", "k1")
                    .replace("{group}", "acme")
            })
            .collect();
        assert_eq!(rendered, from_templates);
    }

    /// The key table of docs/redis-keys.md lists exactly [`REDIS_KEYS`].
    #[test]
    fn the_documented_key_table_lists_every_key() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/redis-keys.md");
        let doc = std::fs::read_to_string(path).expect("docs/redis-keys.md is readable");
        let documented: std::collections::BTreeSet<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .filter(|k| k.starts_with("{ns}:"))
            .collect();
        let listed: std::collections::BTreeSet<&str> = REDIS_KEYS.iter().copied().collect();
        assert_eq!(
            documented, listed,
            "docs/redis-keys.md and names::REDIS_KEYS disagree"
        );
    }
}
