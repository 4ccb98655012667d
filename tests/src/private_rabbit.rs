//! A RabbitMQ node of a test's own, on free ports, with settings the shared node must
//! keep (a `consumer_timeout` of a few seconds, checked every second). Started from
//! the locally installed `rabbitmq-server` (scripts/services installs it) in a
//! scratch directory; stopped and removed on `stop` (or, best effort, on drop).

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;
use tokio::process::Command;

pub struct PrivateRabbit {
    node: String,
    port: u16,
    dir: PathBuf,
    stopped: bool,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

impl PrivateRabbit {
    /// Starts a node whose channels are closed by the broker when a delivery stays
    /// unacknowledged longer than `consumer_timeout`.
    pub async fn start(consumer_timeout: Duration) -> Self {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let node = format!("tf{tag}@localhost");
        let (port, dist_port) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(format!("taskfleet-rabbit-{tag}"));
        tokio::fs::create_dir_all(&dir).await.expect("scratch dir");
        let conf = format!(
            "listeners.tcp.default = 127.0.0.1:{port}\nconsumer_timeout = {}\nloopback_users = none\n",
            consumer_timeout.as_millis()
        );
        tokio::fs::write(dir.join("rabbitmq.conf"), conf)
            .await
            .expect("write rabbitmq.conf");
        // The broker checks consumer timeouts on each channel tick (60 s by default).
        tokio::fs::write(
            dir.join("advanced.config"),
            "[{rabbit, [{channel_tick_interval, 1000}]}].\n",
        )
        .await
        .expect("write advanced.config");
        // rabbitmq-server drops to the `rabbitmq` user when started as root.
        let _ = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&dir)
            .status()
            .await;
        let d = |name: &str| dir.join(name).display().to_string();
        let log = std::fs::File::create(dir.join("server.out")).expect("server log");
        Command::new("rabbitmq-server")
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d("advanced.config"))
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("plugins"))
            .env("RABBITMQ_PID_FILE", d("pid"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .kill_on_drop(false)
            .spawn()
            .expect("rabbitmq-server starts (is rabbitmq-server installed? scripts/services installs it)");
        let node_ = Self {
            node,
            port,
            dir,
            stopped: false,
        };
        let url = node_.amqp_url();
        crate::eventually(
            Duration::from_secs(90),
            "the private RabbitMQ node to accept connections",
            || {
                let url = url.clone();
                async move {
                    let connect =
                        lapin::Connection::connect(&url, lapin::ConnectionProperties::default());
                    // A node still booting may accept the socket and never answer.
                    tokio::time::timeout(Duration::from_secs(5), connect)
                        .await
                        .ok()?
                        .ok()
                        .map(drop)
                }
            },
        )
        .await;
        node_
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Whether the broker closed a channel for a delivery held past `consumer_timeout`.
    pub async fn closed_a_channel_for_consumer_timeout(&self) -> bool {
        let mut logs = match tokio::fs::read_dir(self.dir.join("log")).await {
            Ok(d) => d,
            Err(_) => return false,
        };
        while let Ok(Some(entry)) = logs.next_entry().await {
            let text = tokio::fs::read_to_string(entry.path())
                .await
                .unwrap_or_default();
            if text.contains("delivery acknowledgement on channel") {
                return true;
            }
        }
        false
    }

    /// Stops the node and removes its directory.
    pub async fn stop(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(60),
            Command::new("rabbitmqctl")
                .args(["-n", &self.node, "stop"])
                .output(),
        )
        .await;
        let _ = tokio::fs::remove_dir_all(&self.dir).await;
        self.stopped = true;
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        // A failed test still stops its node (from a thread: drop may run in async code).
        let (node, dir) = (self.node.clone(), self.dir.clone());
        let _ = std::thread::spawn(move || {
            let _ = std::process::Command::new("rabbitmqctl")
                .args(["-n", &node, "stop"])
                .output();
            let _ = std::fs::remove_dir_all(dir);
        })
        .join();
    }
}
