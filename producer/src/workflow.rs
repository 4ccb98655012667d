//! Whole DAGs (`taskfleet workflow submit`, `POST /v1/workflows`,
//! `Producer::submit_workflow`; docs/workflows.md). Keys are local to the file. The
//! file is validated whole before anything is written — unknown keys, cycles,
//! self-dependencies and invalid tasks refuse it — then its tasks are enqueued level
//! by level, parents first, each `--after` the ids its parents got.

use crate::error::{ProducerError, Result};
use crate::request::EnqueueRequest;
use crate::{Enqueued, Producer};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::time::Duration;
use taskfleet_common::TaskId;

/// Most tasks in one workflow file.
pub const MAX_WORKFLOW_TASKS: usize = 10_000;
/// Longest key, in characters.
const MAX_KEY: usize = 128;

/// A workflow file: `{"tasks":[{"key":"a","type":"echo","payload":{},"after":[]}]}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    #[schema(min_items = 1, max_items = 10000)]
    pub tasks: Vec<WorkflowTask>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowTask {
    #[schema(min_length = 1, max_length = 128)]
    pub key: String,
    #[serde(rename = "type")]
    #[schema(
        pattern = "^[a-z0-9][a-z0-9._-]{0,63}$",
        min_length = 1,
        max_length = 64
    )]
    pub task_type: String,
    #[serde(default)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub payload: Option<Box<RawValue>>,
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub priority: Option<u8>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Time limit of one attempt, e.g. `"30s"`.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// A validated workflow: each task's request and its parents (indexes), and the
/// order to enqueue them in (levels: every parent in an earlier level).
#[derive(Debug)]
pub struct Plan {
    keys: Vec<String>,
    requests: Vec<EnqueueRequest>,
    parents: Vec<Vec<usize>>,
    levels: Vec<Vec<usize>>,
}

impl Workflow {
    pub fn parse(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| ProducerError::Invalid(format!("workflow is not valid: {e}")))
    }

    /// Checks the whole file; nothing is written until it passes.
    pub fn plan(&self, payload_limit: usize) -> Result<Plan> {
        let n = self.tasks.len();
        if n == 0 {
            return Err(ProducerError::Invalid("workflow has no tasks".into()));
        }
        if n > MAX_WORKFLOW_TASKS {
            return Err(ProducerError::TooLarge(format!(
                "workflow has {n} tasks; at most {MAX_WORKFLOW_TASKS} are allowed (split it)"
            )));
        }
        let mut index = HashMap::with_capacity(n);
        for (i, t) in self.tasks.iter().enumerate() {
            if t.key.is_empty() || t.key.chars().count() > MAX_KEY {
                return Err(ProducerError::Invalid(format!(
                    "task {}: key must be 1-{MAX_KEY} characters",
                    i + 1
                )));
            }
            if index.insert(t.key.as_str(), i).is_some() {
                return Err(ProducerError::Invalid(format!(
                    "key {:?} is used twice",
                    t.key
                )));
            }
        }
        let mut requests = Vec::with_capacity(n);
        let mut parents = Vec::with_capacity(n);
        for t in &self.tasks {
            let mut ps = Vec::with_capacity(t.after.len());
            for a in &t.after {
                if *a == t.key {
                    return Err(ProducerError::Invalid(format!(
                        "task {:?} depends on itself",
                        t.key
                    )));
                }
                let Some(&p) = index.get(a.as_str()) else {
                    return Err(ProducerError::Invalid(format!(
                        "task {:?} is after unknown key {a:?}",
                        t.key
                    )));
                };
                ps.push(p);
            }
            requests.push(t.request(payload_limit)?);
            parents.push(ps);
        }
        let levels = levels(&self.tasks, &parents)?;
        Ok(Plan {
            keys: self.tasks.iter().map(|t| t.key.clone()).collect(),
            requests,
            parents,
            levels,
        })
    }
}

impl WorkflowTask {
    fn request(&self, payload_limit: usize) -> Result<EnqueueRequest> {
        let payload = self.payload.as_ref().map_or("{}", |p| p.get());
        let invalid = |e: ProducerError| match e {
            ProducerError::TooLarge(m) => {
                ProducerError::TooLarge(format!("task {:?}: {m}", self.key))
            }
            other => ProducerError::Invalid(format!("task {:?}: {other}", self.key)),
        };
        let mut req = EnqueueRequest::new(&self.task_type, payload).map_err(invalid)?;
        req.priority = self.priority;
        req.max_attempts = self.max_attempts;
        req.timeout = match &self.timeout {
            Some(t) => Some(humantime::parse_duration(t).map_err(|e| {
                ProducerError::Invalid(format!("task {:?}: timeout {t:?}: {e}", self.key))
            })?),
            None => None::<Duration>,
        };
        // `after` is filled with ids at enqueue time; its bound is checked here.
        req.after = vec![TaskId::new(); self.after.len()];
        req.validate(payload_limit).map_err(invalid)?;
        req.after.clear();
        Ok(req)
    }
}

/// Kahn's algorithm, level by level; a task left over sits on a cycle.
fn levels(tasks: &[WorkflowTask], parents: &[Vec<usize>]) -> Result<Vec<Vec<usize>>> {
    let n = tasks.len();
    let mut waiting: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut children = vec![Vec::new(); n];
    for (c, ps) in parents.iter().enumerate() {
        for &p in ps {
            children[p].push(c);
        }
    }
    let mut level: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut levels = Vec::new();
    let mut placed = 0;
    while !level.is_empty() {
        placed += level.len();
        let mut next = Vec::new();
        for &i in &level {
            for &c in &children[i] {
                waiting[c] -= 1;
                if waiting[c] == 0 {
                    next.push(c);
                }
            }
        }
        levels.push(std::mem::replace(&mut level, next));
    }
    if placed < n {
        let on_cycle = (0..n)
            .find(|&i| waiting[i] > 0)
            .map_or("?", |i| tasks[i].key.as_str());
        return Err(ProducerError::Invalid(format!(
            "workflow has a cycle through key {on_cycle:?}: nothing was enqueued"
        )));
    }
    Ok(levels)
}

impl Producer {
    /// Validates `workflow` whole, then enqueues it; each key with its task's id, in
    /// the file's order.
    pub async fn submit_workflow(&self, workflow: &Workflow) -> Result<Vec<(String, TaskId)>> {
        let plan = workflow.plan(self.config().payload_limit)?;
        self.submit_plan(plan).await
    }

    async fn submit_plan(&self, plan: Plan) -> Result<Vec<(String, TaskId)>> {
        let mut ids: Vec<Option<TaskId>> = vec![None; plan.keys.len()];
        let mut done = 0;
        for level in &plan.levels {
            let enqueues = level.iter().map(|&i| {
                let mut req = plan.requests[i].clone();
                req.after = plan.parents[i].iter().filter_map(|&p| ids[p]).collect();
                async move { self.enqueue(&req).await.map(|e: Enqueued| (i, e.id)) }
            });
            let results = futures_util::future::join_all(enqueues).await;
            for r in results {
                match r {
                    Ok((i, id)) => {
                        ids[i] = Some(id);
                        done += 1;
                    }
                    Err(e) => {
                        return Err(ProducerError::Refused(format!(
                            "workflow stopped after {done} of {} tasks were enqueued: {e}",
                            plan.keys.len()
                        )));
                    }
                }
            }
        }
        Ok(plan
            .keys
            .into_iter()
            .zip(ids)
            .filter_map(|(k, id)| Some((k, id?)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<Plan> {
        Workflow::parse(text)?.plan(1024)
    }

    #[test]
    fn a_fan_out_fan_in_plans_in_three_levels() {
        let p = plan(
            r#"{"tasks":[{"key":"a","type":"echo"},{"key":"b","type":"echo","after":["a"]},
            {"key":"c","type":"echo","after":["a"]},{"key":"d","type":"echo","after":["b","c"]}]}"#,
        )
        .expect("valid");
        assert_eq!(p.levels, vec![vec![0], vec![1, 2], vec![3]]);
    }

    #[test]
    fn bad_workflows_are_refused_whole() {
        for (text, says) in [
            (
                r#"{"tasks":[{"key":"a","type":"echo","after":["b"]},{"key":"b","type":"echo","after":["a"]}]}"#,
                "cycle",
            ),
            (
                r#"{"tasks":[{"key":"a","type":"echo","after":["a"]}]}"#,
                "itself",
            ),
            (
                r#"{"tasks":[{"key":"a","type":"echo","after":["zz"]}]}"#,
                "unknown key",
            ),
            (r#"{"tasks":[{"key":"a","type":"Bad Type"}]}"#, "task \"a\""),
            (
                r#"{"tasks":[{"key":"a","type":"echo"},{"key":"a","type":"echo"}]}"#,
                "twice",
            ),
            (
                r#"{"tasks":[{"key":"a","type":"echo","colour":1}]}"#,
                "unknown field",
            ),
        ] {
            let e = plan(text).expect_err(text);
            assert!(e.to_string().contains(says), "{text}: {e}");
            assert_eq!(e.kind(), crate::ErrorKind::Invalid, "{text}");
        }
    }
}
