//! Several RabbitMQ nodes in one `amqp_url`: `amqp://u:p@h1:5672/%2f,amqp://u:p@h2:5672/%2f`,
//! or after the first full URL just `h2:5672` (same scheme, credentials, vhost and
//! query as the first). Connecting tries them in turn; a reconnect starts over from
//! the first, so a fleet returns to the preferred node once it is back.

/// The node URLs of `amqp_url`, in the order they are tried.
pub fn node_urls(amqp_url: &str) -> Vec<String> {
    let mut parts = amqp_url.split(',').map(str::trim).filter(|p| !p.is_empty());
    let Some(first) = parts.next() else {
        return vec![String::new()];
    };
    let mut urls = vec![first.to_owned()];
    for part in parts {
        if part.contains("://") {
            urls.push(part.to_owned());
        } else {
            urls.push(with_authority(first, part));
        }
    }
    urls
}

/// `base` with its host:port replaced by `authority`.
fn with_authority(base: &str, authority: &str) -> String {
    let Some(scheme_end) = base.find("://").map(|i| i + 3) else {
        return authority.to_owned();
    };
    let rest = &base[scheme_end..];
    let host_start = rest.find('@').map_or(0, |at| at + 1);
    let host_end = rest[host_start..]
        .find(['/', '?'])
        .map_or(rest.len(), |i| host_start + i);
    format!(
        "{}{}{}{}",
        &base[..scheme_end],
        &rest[..host_start],
        authority,
        &rest[host_end..]
    )
}

#[cfg(test)]
mod tests {
    use super::node_urls;

    #[test]
    fn one_url_is_one_node() {
        assert_eq!(
            node_urls("amqp://g:p@h:5672/%2f"),
            ["amqp://g:p@h:5672/%2f"]
        );
    }

    #[test]
    fn full_urls_are_kept_and_bare_hosts_borrow_the_first() {
        assert_eq!(
            node_urls("amqp://g:p@h1:5681/%2f?heartbeat=3, amqp://x:y@h2:5682/v ,h3:5683"),
            [
                "amqp://g:p@h1:5681/%2f?heartbeat=3",
                "amqp://x:y@h2:5682/v",
                "amqp://g:p@h3:5683/%2f?heartbeat=3"
            ]
        );
        assert_eq!(node_urls("amqp://h1,h2:1"), ["amqp://h1", "amqp://h2:1"]);
    }
}
