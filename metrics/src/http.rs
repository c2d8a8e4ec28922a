//! A small HTTP/1.1 GET client for plain-HTTP endpoints on the local network: Envoy's admin
//! interface and Prometheus' query API.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error("{0}: not an http:// URL")]
    Url(String),
    #[error("{url}: {reason}")]
    Io { url: String, reason: String },
    #[error("{url}: timed out after {ms} ms")]
    Timeout { url: String, ms: u128 },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
}

/// `url` if this client can reach it: `http://HOST[:PORT][/PATH]` (plain HTTP only; a
/// trailing `/` is dropped), else why not.
pub fn base_url(url: &str) -> Result<String, String> {
    let host = url
        .strip_prefix("http://")
        .map(|r| r.split('/').next().unwrap_or_default())
        .ok_or_else(|| {
            format!("{url}: only plain http:// URLs are supported (e.g. http://prometheus.istio-system:9090)")
        })?;
    if host.is_empty() || host.starts_with(':') || host.contains(char::is_whitespace) {
        return Err(format!("{url}: no host"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// GETs `url` (`http://host:port/path?query`) and returns the body of a 2xx answer.
pub async fn get(url: &str, timeout: Duration) -> Result<Bytes, GetError> {
    match tokio::time::timeout(timeout, get_inner(url)).await {
        Ok(r) => r,
        Err(_) => Err(GetError::Timeout {
            url: url.to_string(),
            ms: timeout.as_millis(),
        }),
    }
}

async fn get_inner(url: &str) -> Result<Bytes, GetError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| GetError::Url(url.to_string()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let io_err = |e: &dyn std::fmt::Display| GetError::Io {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| io_err(&e))?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| io_err(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::get(path)
        .header("host", authority)
        .header("accept", "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| io_err(&e))?;
    let resp = send.send_request(req).await.map_err(|e| io_err(&e))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| io_err(&e))?
        .to_bytes();
    if !(200..300).contains(&status) {
        return Err(GetError::Status {
            url: url.to_string(),
            status,
            body: String::from_utf8_lossy(&body).chars().take(300).collect(),
        });
    }
    Ok(body)
}

/// Percent-encodes a query parameter value.
pub fn encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            base_url("http://prometheus.istio-system:9090/").unwrap(),
            "http://prometheus.istio-system:9090"
        );
        assert_eq!(
            base_url("http://127.0.0.1:9090/prom").unwrap(),
            "http://127.0.0.1:9090/prom"
        );
        for bad in [
            "https://p:9090",
            "notaurl",
            "http://",
            "http://:9090",
            "http:///x",
        ] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
    }
}
