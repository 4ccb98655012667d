//! One signed POST of an alert: HTTP/1.1 over TCP (`http://`) or TLS (`https://`,
//! the system roots), `Connection: close`, bounded by one timeout from connect to the
//! status line. Any 2xx is delivered; anything else is a failed try.

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub(crate) struct Request<'a> {
    pub url: &'a str,
    pub body: &'a str,
    pub signature: &'a str,
    /// The same for every try of one alert: receivers drop duplicates by it.
    pub delivery: &'a str,
    pub timeout: Duration,
}

pub(crate) async fn post(req: &Request<'_>) -> Result<(), String> {
    tokio::time::timeout(req.timeout, send(req))
        .await
        .map_err(|_| format!("no answer within {:?}", req.timeout))?
}

async fn send(req: &Request<'_>) -> Result<(), String> {
    let url = url::Url::parse(req.url).map_err(|e| format!("bad URL: {e}"))?;
    let host = url.host_str().ok_or("URL without a host")?.to_owned();
    let port = url.port_or_known_default().ok_or("URL without a port")?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: taskfleet-alerts\r\nX-Taskfleet-Signature: {}\r\nX-Taskfleet-Delivery: {}\r\nConnection: close\r\n\r\n",
        req.body.len(),
        req.signature,
        req.delivery
    );
    match url.scheme() {
        "http" => exchange(tcp, &head, req.body).await,
        "https" => {
            let tls = connector()?;
            let name = rustls::pki_types::ServerName::try_from(host)
                .map_err(|e| format!("server name: {e}"))?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            exchange(stream, &head, req.body).await
        }
        other => Err(format!("scheme {other:?} is neither http nor https")),
    }
}

/// Writes the request and reads the status line.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    head: &str,
    body: &str,
) -> Result<(), String> {
    s.write_all(head.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    s.write_all(body.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    s.flush().await.map_err(|e| format!("write: {e}"))?;
    // One line of at most 1 KiB: a receiver cannot make the sender buffer much.
    let mut line = Vec::new();
    BufReader::new(s.take(1024))
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let status = String::from_utf8_lossy(&line);
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {:?}", status.trim()))?;
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(format!("answered {code}"))
    }
}

fn connector() -> Result<tokio_rustls::TlsConnector, String> {
    taskfleet_common::tls::install_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}
