//! Raw HTTP through a fake client: (status, JSON body), for exact assertions.
#![allow(dead_code)]

use serde_json::Value;

pub async fn call(
    c: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut b = http::Request::builder().method(method).uri(path);
    if !content_type.is_empty() {
        b = b.header("content-type", content_type);
    }
    let req = b
        .body(kube::client::Body::from(
            body.map(|v| serde_json::to_vec(&v).unwrap())
                .unwrap_or_default(),
        ))
        .unwrap();
    let resp = c.send(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

pub async fn get(c: &kube::Client, path: &str) -> (u16, Value) {
    call(c, "GET", path, "", None).await
}
pub async fn post(c: &kube::Client, path: &str, v: Value) -> (u16, Value) {
    call(c, "POST", path, "application/json", Some(v)).await
}
pub async fn put(c: &kube::Client, path: &str, v: Value) -> (u16, Value) {
    call(c, "PUT", path, "application/json", Some(v)).await
}
pub async fn merge(c: &kube::Client, path: &str, v: Value) -> (u16, Value) {
    call(c, "PATCH", path, "application/merge-patch+json", Some(v)).await
}
pub async fn apply(c: &kube::Client, path: &str, v: Value) -> (u16, Value) {
    call(c, "PATCH", path, "application/apply-patch+yaml", Some(v)).await
}
pub async fn delete(c: &kube::Client, path: &str, v: Option<Value>) -> (u16, Value) {
    call(c, "DELETE", path, "application/json", v).await
}

/// Reads watch events from a raw watch response until `n` arrived.
pub async fn watch_events(c: &kube::Client, path: &str, n: usize) -> Vec<Value> {
    use http_body_util::BodyExt;
    let req = http::Request::get(path)
        .body(kube::client::Body::from(Vec::new()))
        .unwrap();
    let resp = c.send(req).await.unwrap();
    let mut body = resp.into_body();
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(2), body.frame())
            .await
            .expect("an event in time");
        let Some(Ok(frame)) = frame else { break };
        let Ok(bytes) = frame.into_data() else {
            continue;
        };
        buf.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(i) = buf.find('\n') {
            let line: String = buf.drain(..=i).collect();
            out.push(serde_json::from_str(line.trim()).unwrap());
        }
    }
    out
}
