//! Headless Chromium driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: JSON messages ended by NUL on fds 3 and 4), so no
//! websocket client or browser crate is needed. Debian's `chromium` is installed
//! with apt-get when missing.

use crate::scratch::Scratch;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

pub struct Browser {
    _child: Child,
    stdin: ChildStdin,
    replies: mpsc::UnboundedReceiver<Value>,
    next_id: u64,
    session: String,
    _profile: Scratch,
}

/// `chromium`, installed with apt-get if it is not on PATH.
async fn ensure_chromium() {
    let found = Command::new("sh")
        .args(["-c", "command -v chromium"])
        .stdout(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if !found {
        let ok = Command::new("apt-get")
            .args(["install", "-y", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .await
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "chromium is missing and apt-get install -y chromium failed"
        );
    }
}

impl Browser {
    pub async fn launch() -> Self {
        ensure_chromium().await;
        let profile = Scratch::named("chromium");
        // fd 3 is what Chromium reads commands from, fd 4 where it writes replies:
        // the shell maps them onto our stdin and stdout pipes.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null 2>/dev/null"#)
            .arg("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1200,900",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.root().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        let stdin = child.stdin.take().expect("stdin pipe");
        let stdout = child.stdout.take().expect("stdout pipe");
        let (tx, replies) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(0, &mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        let mut b = Self {
            _child: child,
            stdin,
            replies,
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = b
            .send("Target.createTarget", json!({"url": "about:blank"}), false)
            .await;
        let target_id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = b
            .send(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
                false,
            )
            .await;
        b.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        b.call("Page.enable", json!({})).await;
        b.call("Runtime.enable", json!({})).await;
        b
    }

    async fn send(&mut self, method: &str, params: Value, in_session: bool) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if in_session {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(0);
        self.stdin
            .write_all(&bytes)
            .await
            .expect("write to chromium");
        let wait = async {
            while let Some(v) = self.replies.recv().await {
                if v["id"].as_u64() == Some(id) {
                    return v;
                }
            }
            panic!("chromium went away during {method}");
        };
        let reply = tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("chromium did not answer {method}"));
        assert!(reply.get("error").is_none(), "{method}: {reply}");
        reply["result"].clone()
    }

    /// A command of the page's session.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, true).await
    }

    pub async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
    }

    /// Evaluates `expr` in the page (promises awaited) and returns its value.
    pub async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is truthy, within `deadline`; returns its last value.
    pub async fn wait_for(&mut self, expr: &str, deadline: Duration, what: &str) -> Value {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let v = self.eval(expr).await;
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!("") && v != json!(0);
            if truthy {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "timed out waiting for {what} ({expr} = {v})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes a PNG of the page to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let r = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap_or_default())
            .expect("base64 PNG");
        if let Some(dir) = path.parent() {
            let _ = tokio::fs::create_dir_all(dir).await;
        }
        tokio::fs::write(path, png)
            .await
            .expect("screenshot written");
    }
}
