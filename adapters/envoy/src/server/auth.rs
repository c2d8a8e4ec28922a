//! Who is on a stream: the SPIFFE URI of the peer's client certificate, the node its first
//! request claims, and the binding of the two (a proxy cannot speak for another node, so it
//! can never obtain another identity's secret).

use super::{Event, SnapshotSource};
use tonic::{Request, Status, Streaming};

/// URI SANs of the peer's client certificate.
pub(super) fn peer_identity<T>(req: &Request<T>) -> Option<String> {
    let certs = req.peer_certs()?;
    let leaf = certs.first()?;
    crate::ca::uri_sans(leaf.as_ref())
        .into_iter()
        .find(|u| u.starts_with("spiffe://"))
}

/// The first request and the node id it carries (`None`: the stream ended first).
pub(super) async fn first_node<T>(
    inbound: &mut Streaming<T>,
    node_of: impl Fn(&T) -> Option<&str>,
) -> Result<Option<(String, T)>, Status> {
    match inbound.message().await? {
        None => Ok(None),
        Some(req) => match node_of(&req) {
            Some(n) if !n.is_empty() => Ok(Some((n.to_string(), req))),
            _ => Err(Status::invalid_argument(
                "the first request must carry node.id",
            )),
        },
    }
}

/// Checks the node against the peer certificate. Err = status to close the stream with.
pub(super) fn authorize<S: SnapshotSource>(
    source: &S,
    node: &str,
    peer: &Option<String>,
    require: bool,
) -> Result<(), Status> {
    let reject = |reason: String, status: fn(String) -> Status| {
        source.event(Event::Rejected {
            node: node.into(),
            reason: reason.clone(),
        });
        Err(status(reason))
    };
    let Some(expected) = source.identity(node) else {
        return reject(format!("unknown node `{node}`"), Status::not_found);
    };
    if require && peer.as_deref() != Some(expected.as_str()) {
        let reason = format!(
            "node `{node}` runs as {expected} but the client certificate says {}",
            peer.as_deref().unwrap_or("nothing")
        );
        return reject(reason, Status::permission_denied);
    }
    Ok(())
}
