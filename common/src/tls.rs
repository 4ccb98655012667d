//! TLS to RabbitMQ (`amqps://`) and Redis (`rediss://`), through rustls: the server's
//! certificate is verified against the system roots plus the private CA of
//! `tls_ca_file`, for the host named in the URL. A certificate that does not verify
//! fails the connection with an error naming TLS (`AmqpError::Tls`,
//! `StoreError::Tls`); nothing ever falls back to a plain connection, and a plain
//! `amqp://` or `redis://` URL never speaks TLS.

use std::path::Path;

/// What a TLS error tells the operator to check.
pub const CA_HINT: &str = "check tls_ca_file (TASKFLEET_TLS_CA_FILE): the server's certificate must be signed by that CA or a system root and name the host of the URL";

/// Installs rustls' ring provider as the process default, once (later calls do
/// nothing). lapin and redis then agree on it whatever features other crates enable.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Whether `url` asks for TLS: `amqps://` or `rediss://`.
pub fn is_tls_url(url: &str) -> bool {
    let scheme = url.split("://").next().unwrap_or("");
    scheme.eq_ignore_ascii_case("amqps") || scheme.eq_ignore_ascii_case("rediss")
}

/// The PEM text of a CA file, refused when it holds no certificate (a wrong path or
/// a key file would otherwise only show up as a certificate that does not verify).
pub async fn read_ca(path: &Path) -> Result<String, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("cannot read tls_ca_file {}: {e}", path.display()))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "tls_ca_file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(text)
}

/// Why a connection attempt timed out; over TLS, a peer that does not speak TLS
/// (a plain port) also just waits, so the reason says so.
pub fn no_answer(tls: bool, timeout: std::time::Duration) -> String {
    if tls {
        format!("no TLS handshake or answer within {timeout:?} (does that port serve TLS?)")
    } else {
        format!("no answer within {timeout:?}")
    }
}

/// Whether a connection failure of a TLS URL is TLS's own (a handshake that failed,
/// a certificate that did not verify, a peer that does not speak TLS) rather than a
/// server that is down.
pub fn is_tls_failure(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    [
        "certificate",
        "tls",
        "handshake",
        "corrupt message",
        "alert",
        "unknownissuer",
        "notvalidforname",
    ]
    .iter()
    .any(|word| r.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_amqps_and_rediss_ask_for_tls() {
        assert!(is_tls_url("amqps://guest:guest@h:5671/%2f"));
        assert!(is_tls_url("rediss://h:6380"));
        assert!(is_tls_url("REDISS://h"));
        assert!(!is_tls_url("amqp://h:5672"));
        assert!(!is_tls_url("redis://h"));
        assert!(!is_tls_url("redis+sentinel://h:1/m"));
    }

    #[test]
    fn certificate_failures_are_told_from_servers_that_are_down() {
        assert!(is_tls_failure(
            "IO error: invalid peer certificate: UnknownIssuer"
        ));
        assert!(is_tls_failure(
            "received corrupt message of type InvalidContentType"
        ));
        assert!(!is_tls_failure("Connection refused (os error 111)"));
    }

    #[tokio::test]
    async fn a_ca_file_without_a_certificate_is_refused() {
        let dir = std::env::temp_dir().join(format!("tls-ca-{}", std::process::id()));
        tokio::fs::create_dir_all(&dir).await.expect("dir");
        let file = dir.join("not-a-ca.pem");
        tokio::fs::write(&file, "-----BEGIN PRIVATE KEY-----\n")
            .await
            .expect("write");
        let e = read_ca(&file).await.expect_err("no certificate");
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = read_ca(&dir.join("missing.pem"))
            .await
            .expect_err("missing");
        assert!(e.contains("cannot read tls_ca_file"), "{e}");
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
}
