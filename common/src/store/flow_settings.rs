//! The flow limits in `{ns}:type:{type}` (`rate_limit max_running group_max_running`):
//! the stricter of the live workers' declarations. `flow.lua` tightens each worker's
//! own limits with them, so workers that disagree obey the stricter one.

use super::{Result, StateStore};
use crate::flow::FlowLimits;
use crate::ids::TaskType;
use std::collections::BTreeMap;

const FIELDS: [&str; 3] = ["rate_limit", "max_running", "group_max_running"];

/// The flow limits of a stored type hash (an unreadable field counts as none).
pub(crate) fn flow_of(f: &BTreeMap<String, String>) -> FlowLimits {
    let cap = |k: &str| {
        f.get(k)
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|n| *n > 0)
    };
    FlowLimits {
        rate: f.get("rate_limit").and_then(|r| r.parse().ok()),
        max_running: cap("max_running"),
        group_max_running: cap("group_max_running"),
    }
}

impl StateStore {
    /// The flow limits the type's hash holds now.
    pub async fn declared_flow(&self, task_type: &TaskType) -> Result<FlowLimits> {
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.names.type_key(task_type))
            .arg(&FIELDS[..])
            .query_async(&mut self.conn())
            .await?;
        let fields: BTreeMap<String, String> = FIELDS
            .iter()
            .zip(values)
            .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), v)))
            .collect();
        Ok(flow_of(&fields))
    }

    /// Writes `limits` as the type's flow limits (an absent limit removes its field).
    pub async fn set_declared_flow(&self, task_type: &TaskType, limits: &FlowLimits) -> Result<()> {
        let key = self.names.type_key(task_type);
        let values = [
            limits.rate.map(|r| r.to_string()),
            limits.max_running.map(|n| n.to_string()),
            limits.group_max_running.map(|n| n.to_string()),
        ];
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (field, value) in FIELDS.iter().zip(values) {
            match value {
                Some(v) => pipe.hset(&key, *field, v).ignore(),
                None => pipe.hdel(&key, *field).ignore(),
            };
        }
        let () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_limits_read_back() {
        let f: BTreeMap<String, String> = [
            ("rate_limit", "20/s burst 3"),
            ("max_running", "3"),
            ("group_max_running", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let l = flow_of(&f);
        assert_eq!(l.rate.map(|r| r.to_string()), Some("20/s burst 3".into()));
        assert_eq!(l.max_running, Some(3));
        assert_eq!(l.group_max_running, None);
    }
}
