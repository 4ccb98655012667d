//! taskfleet-common: what producers and workers share.
//!
//! # Layout
//! - `ids`: `TaskId` (UUID v7), `TaskType`, `WorkerId`, `Namespace` — validated once
//! - `state`: `TaskState` and its transition table (rendered into the Lua scripts)
//! - `envelope`: the message body, parsed once per delivery
//! - `names`: every AMQP name and Redis key, in one place
//! - `config`: the one typed configuration (defaults → file → env)
//! - `flow`: fleet-wide rate limits, concurrency caps and pausing of a type
//! - `retry`: the backoff policy of failed attempts
//! - `reconnect`: the one reconnect policy of every loop that waits for a server
//! - `store`: the Redis state store (`StateStore`), one Lua script per transition
//! - `amqp`: connecting, topology, broker-held delays, the confirmed publisher
//! - `tls`: TLS to RabbitMQ and Redis (`amqps://`, `rediss://`, `tls_ca_file`)
//! - `logging`: tracing-subscriber setup for the binaries

pub mod amqp;
pub mod config;
pub mod envelope;
pub mod flow;
pub mod ids;
pub mod logging;
pub mod names;
pub mod reconnect;
pub mod retry;
pub mod state;
pub mod store;
pub mod tls;

pub use config::Config;
pub use envelope::Envelope;
pub use ids::{Namespace, TaskId, TaskType, WorkerId};
pub use names::Names;
pub use state::TaskState;
pub use store::StateStore;

/// A command-line usage error (clap renders several lines) as the one line the
/// contract asks for: `PROGRAM: <first line> (see PROGRAM --help)`.
pub fn usage_error_line(program: &str, rendered: &str) -> String {
    let first = rendered
        .lines()
        .next()
        .unwrap_or("bad usage")
        .trim_start_matches("error: ");
    format!("{program}: {first} (see {program} --help)")
}

/// A URL fit for logs and error messages: any password is replaced by `***`.
pub fn redact_url(url: &str) -> String {
    // A list of nodes (`amqp_url` may name several) is redacted node by node.
    if url.contains(',') {
        return url.split(',').map(redact_url).collect::<Vec<_>>().join(",");
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            super::redact_url("amqp://g:s1@h1/%2f,amqp://g:s2@h2/%2f,h3:5683"),
            "amqp://g:***@h1/%2f,amqp://g:***@h2/%2f,h3:5683"
        );
        assert_eq!(
            super::redact_url("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(
            super::redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
