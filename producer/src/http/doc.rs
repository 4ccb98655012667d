//! The OpenAPI document (`GET /openapi.json`): every route with every status it can
//! answer and the schema of what it really returns. The schemas of records built
//! from Redis hashes (task records, workers, counters) are described here, beside
//! the handlers' own types in `routes`; tests keep the two in agreement.

use super::error::ErrorBody;
use super::routes::{self, BatchItem, BatchRequest, BatchResult, CancelResponse, TaskRequest};
use serde::Serialize;
use std::collections::BTreeMap;
use taskfleet_common::TaskState;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

/// A task's record (`{ns}:task:{id}`), numbers as numbers and JSON fields as JSON.
/// Fields appear once they have a value.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes JSON built from a Redis hash; never constructed
pub(crate) struct TaskRecord {
    #[schema(format = Uuid)]
    id: String,
    #[serde(rename = "type")]
    task_type: String,
    state: StateName,
    attempt: Option<u64>,
    max_attempts: Option<u64>,
    priority: Option<u64>,
    /// The payload as enqueued (any JSON)
    payload: Option<serde_json::Value>,
    /// The handler's result (any JSON)
    result: Option<serde_json::Value>,
    error: Option<String>,
    /// 0-100
    progress: Option<u64>,
    progress_message: Option<String>,
    /// The last checkpoint (any JSON)
    checkpoint: Option<serde_json::Value>,
    worker: Option<String>,
    trace_id: Option<String>,
    /// Milliseconds since the Unix epoch (Redis clock), like every `*_at` field
    created_at: Option<u64>,
    started_at: Option<u64>,
    finished_at: Option<u64>,
    updated_at: Option<u64>,
    cancel_requested_at: Option<u64>,
    next_attempt_at: Option<u64>,
    /// Not to start before this time (a delayed task: `scheduled` until then)
    run_at: Option<u64>,
    /// Never started after this time (then `cancelled`, reason `expired`)
    expires_at: Option<u64>,
    /// Why a `cancelled` task was: `requested`, `expired`, `dependency_failed`
    reason: Option<String>,
    deliveries: Option<u64>,
    fence: Option<String>,
}

/// A task state's name, rendered from `TaskState::ALL` (a type for the document only).
#[derive(Serialize)]
pub(crate) struct StateName;

impl PartialSchema for StateName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .enum_values(Some(TaskState::ALL.iter().map(|s| s.as_str())))
            .into()
    }
}

impl ToSchema for StateName {}

/// A live worker: its registry hash (`{ns}:worker:{id}`, every value a string) with
/// its id and the age of its last heartbeat.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes JSON built from a Redis hash; never constructed
pub(crate) struct Worker {
    id: String,
    /// Milliseconds since its last heartbeat (Redis clock)
    heartbeat_age_ms: u64,
    host: Option<String>,
    pid: Option<String>,
    /// Comma-separated task types
    types: Option<String>,
    concurrency: Option<String>,
    started_at: Option<String>,
    heartbeat_at: Option<String>,
    inflight: Option<String>,
    /// `running` or `draining`
    status: Option<String>,
}

/// Counters per task type (`{ns}:stats:{type}`).
#[derive(Serialize, ToSchema)]
pub(crate) struct Stats {
    types: BTreeMap<String, TypeCounters>,
}

/// The counters of one type: live `scheduled waiting pending running retrying cancelling`, totals the rest.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // mirrors `store::TypeStats`; a test keeps them in agreement
pub(crate) struct TypeCounters {
    scheduled: i64,
    waiting: i64,
    pending: i64,
    running: i64,
    retrying: i64,
    cancelling: i64,
    enqueued: i64,
    completed: i64,
    failed: i64,
    cancelled: i64,
    retried: i64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok` (a Redis that does not answer gets 503)
    status: String,
}

/// `bearer`: a static token or a JWT; the scopes listed per route are the JWT scopes
/// that allow it (`admin` allows every route).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("static token or JWT".into());
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "taskfleet",
        description = "Enqueue, inspect and cancel taskfleet tasks. Errors are {\"error\":{\"code\",\"message\"}}."
    ),
    paths(
        routes::create_task,
        routes::create_batch,
        super::workflows::submit,
        routes::get_task,
        routes::task_logs,
        routes::cancel_task,
        routes::stats,
        routes::types,
        super::pause::pause_type,
        super::pause::resume_type,
        routes::schedules,
        routes::workers,
        routes::metrics,
        routes::healthz,
        super::live::events,
        super::dead_routes::list,
        super::dead_routes::replay
    ),
    components(schemas(
        TaskRequest,
        super::dead_routes::ReplayRequest,
        super::dead_routes::ReplayOne,
        super::dead_routes::ReplayAll,
        BatchRequest,
        BatchResult,
        BatchItem,
        CancelResponse,
        ErrorBody,
        TaskRecord,
        StateName,
        Worker,
        Stats,
        TypeCounters,
        Health
    )),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The document, with the limits of this server's configuration filled in.
pub(crate) fn openapi(max_batch: usize) -> Document {
    let mut doc = ApiDoc::openapi();
    let batch = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("BatchRequest"));
    if let Some(RefOr::T(Schema::Object(batch))) = batch
        && let Some(RefOr::T(Schema::Array(tasks))) = batch.properties.get_mut("tasks")
    {
        tasks.max_items = Some(max_batch);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::to_value(openapi(1000)).expect("serializes")
    }

    #[test]
    fn every_route_lists_the_statuses_it_can_answer() {
        let doc = doc();
        let statuses = |path: &str, method: &str| -> Vec<String> {
            let r = &doc["paths"][path][method]["responses"];
            r.as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default()
        };
        let protected = [
            ("/v1/tasks", "post"),
            ("/v1/tasks/batch", "post"),
            ("/v1/tasks/{id}", "get"),
            ("/v1/tasks/{id}/cancel", "post"),
            ("/v1/stats", "get"),
            ("/v1/workers", "get"),
            ("/metrics", "get"),
        ];
        for (path, method) in protected {
            let got = statuses(path, method);
            for want in ["401", "403", "503"] {
                assert!(got.iter().any(|s| s == want), "{method} {path}: {got:?}");
            }
        }
        for (path, method) in [("/v1/tasks", "post"), ("/v1/tasks/batch", "post")] {
            let got = statuses(path, method);
            for want in ["202", "400", "413"] {
                assert!(got.iter().any(|s| s == want), "{method} {path}: {got:?}");
            }
        }
        assert!(statuses("/v1/tasks/{id}", "get").contains(&"404".to_owned()));
    }

    #[test]
    fn workers_are_described_as_an_array() {
        let doc = doc();
        let schema = &doc["paths"]["/v1/workers"]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"];
        assert_eq!(schema["type"], "array", "{schema}");
    }

    #[test]
    fn the_counters_schema_names_every_counter_of_the_store() {
        let doc = doc();
        let props = doc["components"]["schemas"]["TypeCounters"]["properties"]
            .as_object()
            .expect("properties");
        let mut documented: Vec<&String> = props.keys().collect();
        documented.sort();
        let counters = serde_json::to_value(taskfleet_common::store::TypeStats::default())
            .expect("serializes");
        let mut real: Vec<&String> = counters.as_object().expect("object").keys().collect();
        real.sort();
        assert_eq!(documented, real);
    }

    #[test]
    fn states_are_rendered_from_the_state_machine() {
        let doc = doc();
        let state = &doc["components"]["schemas"]["TaskRecord"]["properties"]["state"];
        assert_eq!(state["$ref"], "#/components/schemas/StateName");
        let states = &doc["components"]["schemas"]["StateName"]["enum"];
        assert_eq!(states.as_array().map(Vec::len), Some(TaskState::ALL.len()));
    }

    #[test]
    fn the_batch_bound_is_the_configured_one() {
        let doc = serde_json::to_value(openapi(7)).expect("serializes");
        assert_eq!(
            doc["components"]["schemas"]["BatchRequest"]["properties"]["tasks"]["maxItems"],
            7
        );
    }
}
