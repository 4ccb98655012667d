//! `Producer`: records a task in Redis, publishes it with a confirm, and only then
//! hands back its id. Cheap to clone; concurrent `enqueue` calls share one Redis
//! connection and one confirm channel, so a batch pipelines both.

use crate::error::{ProducerError, Result};
use crate::request::EnqueueRequest;
use crate::transient::retry_within;
use crate::type_info::{TypeInfo, TypeInfoCache, unserved_warning};
use std::time::Duration;
use taskfleet_common::amqp::{Publish, Publisher, Topology, delay};
use taskfleet_common::envelope::Envelope;
use taskfleet_common::store::{CancelResult, EnqueueOutcome, NewTask, TaskRecord};
use taskfleet_common::{Config, Names, StateStore, TaskId, TaskState};

/// How long a publish (or the Redis record) keeps trying, in multiples of the network
/// timeout, once the connection of a running producer broke (a restart takes seconds).
/// A producer that cannot connect at all fails at once in `connect`.
const PUBLISH_PATIENCE: u32 = 3;

#[derive(Debug, Clone)]
pub struct Producer {
    config: Config,
    store: StateStore,
    publisher: Publisher,
    types: TypeInfoCache,
}

/// The answer to an enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub id: TaskId,
    /// True when an idempotency key matched an earlier task: nothing was published.
    pub existing: bool,
    /// Set when no live worker serves the type: the task is kept, but waits.
    pub warning: Option<String>,
}

impl Producer {
    pub async fn connect(config: Config) -> Result<Self> {
        let store = Self::connect_store(&config).await?;
        let names = Names::new(config.namespace.clone());
        let topology = Topology::new(names, config.queue_type);
        let publisher = Publisher::connect(
            &config.amqp_url,
            "taskfleet-producer",
            topology,
            config.network_timeout,
            config.tls_ca_file.clone(),
        )
        .await?;
        Ok(Self {
            config,
            store,
            publisher,
            types: TypeInfoCache::default(),
        })
    }

    /// Only the Redis side, for commands that read state (`status`, `stats`, ...).
    pub async fn connect_store(config: &Config) -> Result<StateStore> {
        let names = Names::new(config.namespace.clone());
        Ok(StateStore::connect(
            &config.redis_url,
            names,
            config.retention,
            config.network_timeout,
            config.tls_ca_file.as_deref(),
        )
        .await?)
    }

    pub fn store(&self) -> &StateStore {
        &self.store
    }

    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What this producer knows of a type's declared settings (cached briefly).
    pub async fn type_info(&self, task_type: &taskfleet_common::TaskType) -> TypeInfo {
        self.types.get(&self.store, task_type).await
    }

    /// Records and publishes a task. The envelope carries only what the caller set:
    /// the worker that runs the task resolves the rest from its configuration
    /// (docs/envelope.md). The record and the AMQP priority use the type's declared
    /// settings (`{ns}:type:{type}`) until a worker claims it.
    pub async fn enqueue(&self, req: &EnqueueRequest) -> Result<Enqueued> {
        req.validate(self.config.payload_limit)?;
        let info = self.type_info(&req.task_type).await;
        let envelope = Envelope {
            id: TaskId::new(),
            task_type: req.task_type.clone(),
            payload: req.payload.clone(),
            attempt: 1,
            max_attempts: req.max_attempts,
            priority: req.priority,
            timeout_ms: req
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            created_at: None,
            trace_id: req.trace_id.clone(),
            run_at: req.run_at,
            expires_at: req.expires_at,
            group: req.group.clone(),
            after: dedup(&req.after),
        };
        // Published only when its parents completed: kept in the record until then.
        let stored = (!envelope.after.is_empty())
            .then(|| String::from_utf8_lossy(&envelope.to_bytes()).into_owned());
        let declared = info.settings;
        let task = NewTask {
            id: envelope.id,
            task_type: &envelope.task_type,
            payload: envelope.payload.get(),
            max_attempts: req.max_attempts.or(declared.map(|d| d.max_attempts)),
            priority: req.priority.or(declared.map(|d| d.priority)),
            trace_id: envelope.trace_id.as_deref(),
            created_at: None,
            idempotency_key: req.idempotency_key.as_deref(),
            run_at: req.run_at,
            expires_at: req.expires_at,
            group: req.group.as_deref(),
            after: &envelope.after,
            envelope: stored.as_deref(),
        };
        let warning =
            (info.served == Some(false)).then(|| unserved_warning(&self.store, &req.task_type));
        let outcome = self.record(&task).await?;
        match outcome {
            // Our own id: an earlier try of this very call wrote it before its reply was
            // lost. The message is still ours to publish.
            EnqueueOutcome::Exists(id) if id == envelope.id => {}
            EnqueueOutcome::Exists(id) => {
                return Ok(Enqueued {
                    id,
                    existing: true,
                    warning: None,
                });
            }
            EnqueueOutcome::Created => {}
            EnqueueOutcome::Held { .. } => {
                return Ok(Enqueued {
                    id: envelope.id,
                    existing: false,
                    warning,
                });
            }
            EnqueueOutcome::UnknownParent(parent) => {
                return Err(ProducerError::NotFound(format!(
                    "task {parent} named in --after not found: check the id (records of finished tasks expire after the retention period)"
                )));
            }
        }
        if let Err(e) = self.publish(&envelope).await {
            // The broker never confirmed it: the record must not claim `pending`.
            if let Err(undo) = self
                .store
                .abandon(
                    &envelope.id,
                    &envelope.task_type,
                    req.idempotency_key.as_deref(),
                )
                .await
            {
                tracing::error!(id = %envelope.id, error = %undo, "could not remove the record of an unpublished task");
            }
            return Err(e);
        }
        metrics::counter!("taskfleet_enqueued_total", "type" => envelope.task_type.to_string())
            .increment(1);
        Ok(Enqueued {
            id: envelope.id,
            existing: false,
            warning,
        })
    }

    /// Writes the record, trying again (within the same patience as publishes) while
    /// Redis is restarting or unreachable: a running producer rides out a restart.
    async fn record(&self, task: &NewTask<'_>) -> Result<EnqueueOutcome> {
        let patience = self.config.network_timeout * PUBLISH_PATIENCE;
        let outcome = retry_within(patience, "recording the task", task.id, || {
            self.store.enqueue(task)
        })
        .await?;
        Ok(outcome)
    }

    /// Publishes an envelope to `{ns}.tasks` and waits for the confirm, reconnecting
    /// with backoff for a bounded time when the connection broke. A copy that did reach
    /// the broker before the break is harmless: workers drop duplicates of a running
    /// attempt and fence on the task's state. The AMQP priority is the envelope's, else
    /// the type's declared one, else 0.
    pub async fn publish(&self, envelope: &Envelope) -> Result<()> {
        let declared = match envelope.priority {
            Some(_) => None,
            None => self.type_info(&envelope.task_type).await.settings,
        };
        let priority = envelope
            .priority
            .or(declared.map(|d| d.priority))
            .unwrap_or(0);
        let body = envelope.to_bytes();
        let id = envelope.id.to_string();
        // A scheduled task's first hop: the longest delay tier before its run_at (the
        // workers send it on until due). Anything due now goes straight to the type.
        let tier = envelope
            .run_at
            .map(|at| Duration::from_millis(at.saturating_sub(crate::request::now_ms())))
            .and_then(delay::tier);
        let patience = self.config.network_timeout * PUBLISH_PATIENCE;
        let (publisher, body, id) = (&self.publisher, &body, &id);
        retry_within(
            patience,
            "publishing the task",
            envelope.id,
            || async move {
                let names = publisher.topology().names();
                publisher.ensure_type(&envelope.task_type).await?;
                let (exchange, routing_key) = match tier {
                    Some(ms) => {
                        let channel = publisher.channel().await?;
                        let queue = delay::declare(
                            &channel,
                            names,
                            publisher.topology().queue_type(),
                            &envelope.task_type,
                            ms,
                        );
                        (String::new(), queue.await?)
                    }
                    None => (names.tasks_exchange(), envelope.task_type.to_string()),
                };
                let msg = Publish {
                    exchange: &exchange,
                    routing_key: &routing_key,
                    body,
                    message_id: id,
                    task_type: envelope.task_type.as_str(),
                    priority,
                    headers: envelope
                        .traceparent()
                        .map(|t| ("traceparent", t))
                        .into_iter()
                        .collect(),
                };
                publisher.publish(&msg).await
            },
        )
        .await?;
        Ok(())
    }

    pub async fn status(&self, id: &TaskId) -> Result<TaskRecord> {
        status(&self.store, id).await
    }

    pub async fn cancel(&self, id: &TaskId) -> Result<TaskState> {
        cancel(&self.store, id).await
    }

    /// Waits until the task is terminal (`TimedOut` after `timeout`): its record.
    pub async fn wait(&self, id: &TaskId, timeout: Duration) -> Result<TaskRecord> {
        crate::wait::wait(&self.store, id, timeout).await
    }

    pub async fn close(&self) {
        self.publisher.close().await;
    }
}

/// The ids once each, in their first order (an edge is a set member).
fn dedup(ids: &[TaskId]) -> Vec<TaskId> {
    let mut seen = std::collections::HashSet::new();
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

/// The record of a task, or `NotFound`.
pub async fn status(store: &StateStore, id: &TaskId) -> Result<TaskRecord> {
    store.get(id).await?.ok_or_else(|| {
        ProducerError::NotFound(format!(
            "task {id} not found (records of finished tasks expire after the retention period)"
        ))
    })
}

/// Requests cancellation; returns the state the task is in afterwards.
pub async fn cancel(store: &StateStore, id: &TaskId) -> Result<TaskState> {
    cancel_with(store, id, false).await
}

/// The same; `with_dependents` also cancels every task waiting for it, transitively.
pub async fn cancel_with(
    store: &StateStore,
    id: &TaskId,
    with_dependents: bool,
) -> Result<TaskState> {
    match store.cancel_with(id, with_dependents).await? {
        CancelResult::NotFound => Err(ProducerError::NotFound(format!(
            "task {id} not found: check the id (records of finished tasks expire after the retention period)"
        ))),
        CancelResult::State(s) => Ok(s),
    }
}

/// `{"types": {TYPE: {pending, running, ...}}}`, as `stats --json` and `GET /v1/stats` show it.
pub async fn stats_json(store: &StateStore) -> Result<serde_json::Value> {
    let types: serde_json::Map<String, serde_json::Value> = store
        .stats()
        .await?
        .iter()
        .map(|(t, s)| (t.to_string(), serde_json::to_value(s).unwrap_or_default()))
        .collect();
    Ok(serde_json::json!({ "types": types }))
}

/// Live workers with the age of their last beat (Redis clock), as `workers --json` and
/// `GET /v1/workers` show them.
pub async fn workers_json(store: &StateStore) -> Result<serde_json::Value> {
    let now = store.server_time_ms().await?;
    let list = store
        .workers()
        .await?
        .iter()
        .map(|w| {
            let mut v = serde_json::to_value(&w.fields).unwrap_or_default();
            v["id"] = w.id.clone().into();
            v["heartbeat_age_ms"] = now.saturating_sub(w.heartbeat_at).into();
            v
        })
        .collect();
    Ok(serde_json::Value::Array(list))
}

/// `{"schedules": [{name, type, cron|every, next_at, last_at, last_id, leader}]}`, as
/// `schedules --json` and `GET /v1/schedules` show them.
pub async fn schedules_json(store: &StateStore) -> Result<serde_json::Value> {
    let list: Vec<serde_json::Value> = store
        .schedules()
        .await?
        .into_iter()
        .map(|s| {
            let mut v = serde_json::Map::new();
            v.insert("name".into(), s.name.into());
            for (k, val) in s.fields {
                let value = match k.as_str() {
                    "next_at" | "last_at" | "leader_until" => val
                        .parse::<u64>()
                        .map(serde_json::Value::from)
                        .unwrap_or(serde_json::Value::String(val)),
                    _ => serde_json::Value::String(val),
                };
                v.insert(k, value);
            }
            serde_json::Value::Object(v)
        })
        .collect();
    Ok(serde_json::json!({ "schedules": list }))
}
