//! `redis_url = "redis+sentinel://[user:password@]H:P,H:P,H:P/MASTER"`: the Sentinels
//! are asked which server is the primary of MASTER; the store connects there and a
//! follower asks again every half second, moving the store to the new primary after
//! a failover. Credentials in the URL are the primary's; the Sentinels are asked
//! without them. TLS to Sentinel is not supported (`rediss+sentinel` is refused).
//!
//! Moving on the Sentinels' answer, not on errors alone, means a demoted primary that
//! still answers (as a replica: `READONLY`) is left within a poll; the commands that
//! failed meanwhile are retried by their callers as any Redis outage is.

use super::StoreError;
use std::time::Duration;

/// How often the follower asks the Sentinels who the primary is.
pub(super) const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SentinelUrl {
    /// `host:port` of each Sentinel, asked in turn.
    sentinels: Vec<String>,
    master: String,
    /// `user:password@` (or `:password@`) of the primary, kept for its URL.
    userinfo: String,
}

impl SentinelUrl {
    /// `None` for a URL of another scheme; `Some(Err)` for a malformed Sentinel URL.
    pub(super) fn parse(url: &str) -> Option<Result<Self, String>> {
        let (scheme, rest) = url.split_once("://")?;
        if scheme.eq_ignore_ascii_case("rediss+sentinel") {
            return Some(Err(
                "rediss+sentinel:// is not supported: use redis+sentinel:// (TLS to Sentinel is not implemented)".into(),
            ));
        }
        if !scheme.eq_ignore_ascii_case("redis+sentinel") {
            return None;
        }
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (format!("{u}@"), r),
            None => (String::new(), rest),
        };
        let (hosts, master) = rest.split_once('/').unwrap_or((rest, ""));
        let master = master.split(['?', '/']).next().unwrap_or("").to_owned();
        let sentinels: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| {
                if h.contains(':') {
                    h.to_owned()
                } else {
                    format!("{h}:26379")
                }
            })
            .collect();
        Some(if sentinels.is_empty() {
            Err("a Sentinel URL needs at least one host: redis+sentinel://H:P,H:P/MASTER".into())
        } else if master.is_empty() {
            Err("a Sentinel URL needs the master's name: redis+sentinel://H:P,H:P/MASTER".into())
        } else {
            Ok(Self {
                sentinels,
                master,
                userinfo,
            })
        })
    }

    pub(super) fn master(&self) -> &str {
        &self.master
    }

    /// The `redis://` URL of MASTER's primary as the first Sentinel that answers names
    /// it, each asked within `timeout`.
    pub(super) async fn primary(&self, timeout: Duration) -> Result<String, StoreError> {
        let mut failures = Vec::new();
        for sentinel in &self.sentinels {
            match ask(sentinel, &self.master, timeout).await {
                Ok(Some((host, port))) => {
                    return Ok(format!("redis://{}{host}:{port}", self.userinfo));
                }
                Ok(None) => failures.push(format!(
                    "{sentinel}: knows no master named {:?} (check the name after the last / in redis_url)",
                    self.master
                )),
                Err(reason) => failures.push(format!("{sentinel}: {reason}")),
            }
        }
        Err(StoreError::Unreachable {
            url: format!(
                "the Sentinels of {:?} ({})",
                self.master,
                self.sentinels.join(",")
            ),
            reason: failures.join("; "),
        })
    }
}

/// `SENTINEL get-master-addr-by-name MASTER` on one Sentinel.
async fn ask(
    sentinel: &str,
    master: &str,
    timeout: Duration,
) -> Result<Option<(String, u16)>, String> {
    let client = redis::Client::open(format!("redis://{sentinel}")).map_err(|e| e.to_string())?;
    let asking = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(master)
            .query_async::<Option<(String, u16)>>(&mut conn)
            .await
    };
    tokio::time::timeout(timeout, asking)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::SentinelUrl;

    #[test]
    fn parses_hosts_master_and_credentials() {
        let u = SentinelUrl::parse("redis+sentinel://:pw@a:26381,b,c:3/mymaster")
            .expect("a sentinel url")
            .expect("valid");
        assert_eq!(u.sentinels, ["a:26381", "b:26379", "c:3"]);
        assert_eq!(u.master, "mymaster");
        assert_eq!(u.userinfo, ":pw@");
        assert_eq!(SentinelUrl::parse("redis://h:6379"), None);
    }

    #[test]
    fn refuses_what_it_cannot_follow() {
        for bad in [
            "redis+sentinel://a:1,b:2",
            "redis+sentinel:///m",
            "rediss+sentinel://a:1/m",
        ] {
            assert!(
                matches!(SentinelUrl::parse(bad), Some(Err(_))),
                "{bad} must be refused"
            );
        }
    }
}
