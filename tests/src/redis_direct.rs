//! Direct Redis access for tests, the way `redis-cli` would (as `amqp` is for
//! RabbitMQ): a connection with a deadline, PING, key scans.

use redis::aio::MultiplexedConnection;
use std::time::Duration;

/// How long connecting may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A connection to `url`, or why there is none (within a few seconds).
pub async fn connect(url: &str) -> Result<MultiplexedConnection, String> {
    // A Sentinel URL reads the primary it names now, as the fleet does.
    let url = taskfleet_common::store::current_server(url, CONNECT_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
    tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())
}

/// A connection to `url`; panics if the server does not answer.
pub async fn connection(url: &str) -> MultiplexedConnection {
    connect(url)
        .await
        .unwrap_or_else(|e| panic!("Redis reachable at {url}: {e}"))
}

/// Whether the server answers PING with PONG.
pub async fn answers(url: &str) -> bool {
    let Ok(mut conn) = connect(url).await else {
        return false;
    };
    let cmd = redis::cmd("PING");
    let ping = cmd.query_async::<String>(&mut conn);
    matches!(tokio::time::timeout(CONNECT_TIMEOUT, ping).await, Ok(Ok(p)) if p == "PONG")
}

/// Every key matching `pattern` (SCAN, so the server is never blocked).
pub async fn keys_matching(
    conn: &mut MultiplexedConnection,
    pattern: &str,
) -> redis::RedisResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}
