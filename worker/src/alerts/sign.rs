//! `X-Taskfleet-Signature: t=<ms>,sha256=<hex>`: HMAC-SHA256 with `alerts.secret`
//! over `<ms>.<body>`. The timestamp is signed too, so a receiver can refuse replays
//! of an old alert (docs/alerts.md shows how to check it).

use ring::hmac;

/// The header value for `body` sent at `at_ms`.
pub fn signature(secret: &[u8], at_ms: u64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, format!("{at_ms}.{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={at_ms},sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn matches_a_known_hmac_sha256() {
        // printf '1.{}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature(b"key", 1, "{}"),
            "t=1,sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }
}
