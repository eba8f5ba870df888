//! The DNS-rebinding guard. A web page at `evil.example` can point its own name at 127.0.0.1
//! and then read a loopback server's answers as same-origin; only the Host header still says
//! `evil.example`. So a server that checks Hosts (bound to loopback, or given --allowed-host)
//! answers only loopback names and the names allowed, on any port, and others get a 403.
//! A request with no Host at all passes: browsers always send one.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::HOST;
use axum::middleware::Next;
use axum::response::Response;

use super::ApiError;

/// The Host names answered besides loopback ones, in lower case.
#[derive(Clone)]
pub struct AllowedHosts(Arc<Vec<String>>);

impl AllowedHosts {
    pub fn new(names: &[String]) -> Self {
        AllowedHosts(Arc::new(names.iter().map(|n| normalize(n)).filter(|n| !n.is_empty()).collect()))
    }

    fn allows(&self, host: &str) -> bool {
        let name = normalize(strip_port(host));
        let unbracketed = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(&name);
        name == "localhost" || unbracketed.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) || self.0.contains(&name)
    }
}

pub async fn check_host(
    State(allowed): State<AllowedHosts>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(host) = request.headers().get(HOST) {
        let host = String::from_utf8_lossy(host.as_bytes());
        if !allowed.allows(&host) {
            return Err(ApiError::host_not_allowed(&host));
        }
    }
    Ok(next.run(request).await)
}

/// `name:8080` → `name`, `[::1]:8080` → `[::1]`; a bare IPv6 address has no port to strip.
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port))
            if port.bytes().all(|b| b.is_ascii_digit()) && (!name.contains(':') || name.ends_with(']')) =>
        {
            name
        }
        _ => host,
    }
}

/// Lower case, without the trailing dot of a fully qualified name (`localhost.`).
fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_pass_with_any_port_and_others_only_when_allowed() {
        let allowed = AllowedHosts::new(&["Box.Lan".into(), "".into()]);
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:80",
            "127.1.2.3:9",
            "[::1]",
            "[::1]:8080",
            "box.lan:8080",
        ] {
            assert!(allowed.allows(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.1:8080",
            "[::2]:80",
            "",
            "127.0.0.1.evil",
        ] {
            assert!(!allowed.allows(host), "{host}");
        }
    }
}
