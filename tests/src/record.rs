//! Reading a task's record: timestamps and JSON fields.

use serde_json::Value;
use taskfleet_common::store::TaskRecord;

/// A numeric field (a timestamp in ms, from the Redis clock); panics naming it.
pub fn ms(r: &TaskRecord, field: &str) -> u64 {
    r.get(field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("record has no numeric {field}: {:?}", r.fields))
}

/// A field that holds JSON, parsed.
pub fn json_of(text: Option<&str>) -> Value {
    serde_json::from_str(text.expect("field present")).expect("field holds JSON")
}
