//! `declare.lua` and `forget.lua`: the settings a worker declares for a type it
//! serves, and the `workers` list of the type's hash.

use super::{Call, Context, Invocation};
use crate::ids::{TaskType, WorkerId};
use crate::store::reply::{array, optional, text};
use crate::store::scripts::Scripts;
use crate::store::type_settings::{Declaration, DeclaredSettings};
use redis::{Script, Value};

#[derive(Debug)]
pub(crate) struct DeclareArgs<'a> {
    pub worker: &'a WorkerId,
    pub task_type: &'a TaskType,
    pub settings: &'a DeclaredSettings,
}

/// The `workers` field: comma-separated ids, empty for none.
pub(crate) fn worker_list(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Call for DeclareArgs<'_> {
    const SCRIPT: &'static str = "declare";
    const KEYS: &'static [&'static str] = &["type"];
    const ARGV: &'static [&'static str] = &["worker", "max_attempts", "timeout_ms", "priority"];
    type Reply = Declaration;

    fn script(scripts: &Scripts) -> &Script {
        &scripts.declare
    }

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation) {
        inv.key(cx.names.type_key(self.task_type));
        inv.arg(self.worker.as_str())
            .arg(self.settings.max_attempts)
            .arg(self.settings.timeout_ms)
            .arg(self.settings.priority);
    }

    fn read(&self, reply: &Value) -> Option<Declaration> {
        // Hash fields come back as strings.
        let number = |v: &Value| text(v).and_then(|t| t.parse::<u64>().ok());
        match array(reply)? {
            [by, max_attempts, timeout_ms, priority, workers] => {
                let by = optional(by, |v| text(v).map(str::to_owned))?;
                let settings = match (
                    optional(max_attempts, number)?,
                    optional(timeout_ms, number)?,
                    optional(priority, number)?,
                ) {
                    (Some(m), Some(t), Some(p)) => Some(DeclaredSettings {
                        max_attempts: u32::try_from(m).ok()?,
                        timeout_ms: t,
                        priority: u8::try_from(p).ok()?,
                    }),
                    _ => None,
                };
                Some(Declaration {
                    previous: by.zip(settings),
                    workers: worker_list(text(workers)?),
                })
            }
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct ForgetArgs<'a> {
    pub task_type: &'a TaskType,
    pub workers: &'a [String],
}

impl Call for ForgetArgs<'_> {
    const SCRIPT: &'static str = "forget";
    const KEYS: &'static [&'static str] = &["type"];
    const ARGV: &'static [&'static str] = &[];
    const VARIADIC: bool = true;
    type Reply = Vec<String>;

    fn script(scripts: &Scripts) -> &Script {
        &scripts.forget
    }

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation) {
        inv.key(cx.names.type_key(self.task_type));
        for w in self.workers {
            inv.arg(w.as_str());
        }
    }

    fn read(&self, reply: &Value) -> Option<Vec<String>> {
        text(reply).map(worker_list)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn declare_fills_what_the_header_lists_and_reads_its_replies() {
        let worker = WorkerId::from("w1".to_owned());
        let t: TaskType = "echo".parse().expect("type");
        let settings = DeclaredSettings {
            max_attempts: 3,
            timeout_ms: 1000,
            priority: 2,
        };
        let call = DeclareArgs {
            worker: &worker,
            task_type: &t,
            settings: &settings,
        };
        assert_fills_its_header(&call);
        let first = call
            .parse(arr(vec![
                Value::Nil,
                Value::Nil,
                Value::Nil,
                Value::Nil,
                s("w1"),
            ]))
            .expect("a first declaration");
        assert_eq!(first.previous, None);
        assert_eq!(first.workers, vec!["w1".to_owned()]);
        let second = call
            .parse(arr(vec![s("w0"), s("5"), s("300000"), s("0"), s("w0,w1")]))
            .expect("a replaced declaration");
        assert_eq!(
            second.previous,
            Some((
                "w0".to_owned(),
                DeclaredSettings {
                    max_attempts: 5,
                    timeout_ms: 300_000,
                    priority: 0
                }
            ))
        );
        assert_eq!(second.workers, vec!["w0".to_owned(), "w1".to_owned()]);
        for bad in [
            arr(vec![s("w0"), s("x"), s("1"), s("0"), s("w1")]),
            arr(vec![s("w0"), s("5"), s("1"), s("300"), s("w1")]),
            arr(vec![Value::Nil, Value::Nil, Value::Nil, Value::Nil]),
            Value::Nil,
        ] {
            assert_protocol("declare", call.parse(bad));
        }
    }

    #[test]
    fn forget_fills_what_the_header_lists_and_reads_its_replies() {
        let t: TaskType = "echo".parse().expect("type");
        let gone = vec!["w0".to_owned(), "w9".to_owned()];
        let call = ForgetArgs {
            task_type: &t,
            workers: &gone,
        };
        assert_fills_its_header(&call);
        assert_eq!(call.parse(s("")).expect("empty"), Vec::<String>::new());
        assert_eq!(call.parse(s("w1,w2")).expect("two"), vec!["w1", "w2"]);
        assert_protocol("forget", call.parse(Value::Int(1)));
    }
}
