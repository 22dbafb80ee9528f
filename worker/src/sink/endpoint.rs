//! The egress check of a sink's network endpoint (an S3 store, an AMQP broker): the URL's
//! literal host and every address its name has now must pass the worker's deny-list, as
//! every URL a pipeline names does. The client connects by name afterwards, so a name whose
//! addresses change between this check and the connection is not caught (the HTTP client
//! of the source checks at connection time instead; these clients have no resolver hook).

use crate::fetch::Egress;
use crate::sink::SinkError;

/// Checks `url` (the value of the spec key `key`, for the messages) against `egress`.
pub async fn check(key: &str, url: &url::Url, egress: &Egress) -> Result<(), SinkError> {
    egress
        .check_url(url)
        .map_err(|e| SinkError::User(format!("{key}: {e}")))?;
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| SinkError::Transient(format!("{key} {host}: {e}")))?;
    for addr in addrs {
        egress
            .check_ip(addr.ip())
            .map_err(|e| SinkError::User(format!("{key}: {e}")))?;
    }
    Ok(())
}
