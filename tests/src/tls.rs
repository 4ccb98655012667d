//! TLS endpoints of a test's own: a private CA and a server certificate for
//! 127.0.0.1/localhost made with `openssl`, a `redis-server` speaking TLS on a port
//! of its own (`--tls-port`), and `stunnel4` terminating TLS in front of the shared
//! RabbitMQ (installed with apt-get when missing). Killed and removed on drop.
//!
//! ```no_run
//! # async fn f() {
//! use taskfleet_tests::tls::{TestCa, TlsRabbit, TlsRedis};
//! let ca = TestCa::generate().await;
//! let redis = TlsRedis::start(&ca).await;
//! let rabbit = TlsRabbit::start(&ca, &taskfleet_tests::amqp_url()).await;
//! let (amqps, rediss) = (rabbit.url(), redis.url());
//! # }
//! ```

use crate::private_redis::PrivateRedis;
use crate::scratch::Scratch;
use crate::wait::poll_until;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// How long a fresh TLS endpoint may take to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(15);

/// A CA of the test's own and a server certificate it signed, valid for
/// `127.0.0.1` and `localhost` (EC P-256 keys: quick to make).
pub struct TestCa {
    dir: Scratch,
}

impl TestCa {
    pub async fn generate() -> Self {
        let dir = Scratch::named("tls-ca");
        let ext = dir
            .write(
                "server.ext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
            )
            .await;
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let ca = |f: &str| dir.path(f).display().to_string();
        openssl(&[
            &["req", "-x509", "-nodes", "-days", "2"][..],
            &ec,
            &["-subj", "/CN=taskfleet test CA", "-keyout", &ca("ca.key")],
            &["-out", &ca("ca.pem")],
            &["-addext", "basicConstraints=critical,CA:TRUE"],
            &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ])
        .await;
        openssl(&[
            &["req", "-nodes"][..],
            &ec,
            &["-subj", "/CN=localhost", "-keyout", &ca("server.key")],
            &["-out", &ca("server.csr")],
        ])
        .await;
        openssl(&[
            &["x509", "-req", "-days", "2", "-in", &ca("server.csr")][..],
            &[
                "-CA",
                &ca("ca.pem"),
                "-CAkey",
                &ca("ca.key"),
                "-CAcreateserial",
            ],
            &[
                "-out",
                &ca("server.pem"),
                "-extfile",
                &ext.display().to_string(),
            ],
        ])
        .await;
        Self { dir }
    }

    /// The CA certificate (what `tls_ca_file` names).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path("ca.pem")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.dir.path("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.path("server.key")
    }
}

async fn openssl(parts: &[&[&str]]) {
    let args: Vec<&str> = parts.concat();
    let out = Command::new("openssl")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("openssl runs (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private `redis-server` with a plain port (for checks and cleanup) and a TLS port
/// whose certificate `ca` signed.
pub struct TlsRedis {
    pub redis: PrivateRedis,
    tls_port: u16,
}

impl TlsRedis {
    pub async fn start(ca: &TestCa) -> Self {
        let tls_port = crate::free_port().await;
        let path = |p: PathBuf| p.display().to_string();
        let args = vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            path(ca.server_cert()),
            "--tls-key-file".into(),
            path(ca.server_key()),
            "--tls-ca-cert-file".into(),
            path(ca.ca_file()),
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        let redis = PrivateRedis::start_with(args).await;
        wait_for_port(tls_port, "redis-server --tls-port").await;
        Self { redis, tls_port }
    }

    /// `rediss://127.0.0.1:TLS_PORT`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }

    /// The plain port of the same server.
    pub fn plain_url(&self) -> String {
        self.redis.url()
    }
}

/// `stunnel4` accepting TLS on a free port and forwarding it to a plain RabbitMQ.
pub struct TlsRabbit {
    // Declared first: killed before its directory is removed.
    _child: Child,
    port: u16,
    upstream: String,
    _dir: Scratch,
}

impl TlsRabbit {
    /// Terminates TLS for the broker of `amqp_url` (`amqp://USER:PW@HOST:PORT/VHOST`).
    pub async fn start(ca: &TestCa, amqp_url: &str) -> Self {
        ensure_stunnel().await;
        let port = crate::free_port().await;
        let dir = Scratch::named("stunnel");
        let upstream_addr = host_port(amqp_url);
        let conf = dir
            .write(
                "stunnel.conf",
                &format!(
                    "foreground = yes\npid =\ndebug = 4\n[amqps]\naccept = 127.0.0.1:{port}\n\
                     connect = {upstream_addr}\ncert = {}\nkey = {}\n",
                    ca.server_cert().display(),
                    ca.server_key().display()
                ),
            )
            .await;
        let log = crate::files::create(dir.path("stunnel.log")).await;
        let err = log.try_clone().expect("stunnel log file");
        let child = Command::new("stunnel4")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("stunnel4 starts");
        let up = poll_until(START_DEADLINE, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        let log = dir.text("stunnel.log").await.unwrap_or_default();
        assert!(
            up.is_some(),
            "stunnel4 did not listen on {port} within {START_DEADLINE:?}: {log}"
        );
        Self {
            _child: child,
            port,
            upstream: amqp_url.to_owned(),
            _dir: dir,
        }
    }

    /// The upstream URL with `amqps://` and the TLS port.
    pub fn url(&self) -> String {
        let (_, rest) = self
            .upstream
            .split_once("://")
            .unwrap_or(("", &self.upstream));
        let (userinfo, hostpart) = rest.rsplit_once('@').map_or(("", rest), |(u, h)| (u, h));
        let path = hostpart.find('/').map_or("", |i| &hostpart[i..]);
        let at = if userinfo.is_empty() { "" } else { "@" };
        format!("amqps://{userinfo}{at}127.0.0.1:{}{path}", self.port)
    }
}

/// `HOST:PORT` of an AMQP URL (port 5672 when it names none).
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostpart = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let authority = hostpart.split('/').next().unwrap_or(hostpart);
    if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:5672")
    }
}

async fn wait_for_port(port: u16, what: &str) {
    let up = poll_until(START_DEADLINE, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    assert!(
        up.is_some(),
        "{what} did not listen on {port} within {START_DEADLINE:?}"
    );
}

/// Installs Debian's `stunnel4` when it is missing (CI machines start without it).
async fn ensure_stunnel() {
    let present = |out: std::io::Result<std::process::Output>| out.is_ok();
    if present(Command::new("stunnel4").arg("-version").output().await) {
        return;
    }
    let apt = |args: &'static [&'static str]| async move {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .await
            .is_ok_and(|o| o.status.success())
    };
    if !apt(&["install", "-y", "-qq", "stunnel4"]).await {
        apt(&["update", "-qq"]).await;
        apt(&["install", "-y", "-qq", "stunnel4"]).await;
    }
    assert!(
        present(Command::new("stunnel4").arg("-version").output().await),
        "stunnel4 is missing and apt-get install stunnel4 failed: install it to run the TLS tests"
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_upstream_address_is_read_from_the_url() {
        assert_eq!(
            super::host_port("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "127.0.0.1:5672"
        );
        assert_eq!(super::host_port("amqp://h"), "h:5672");
    }
}
