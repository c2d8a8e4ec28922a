//! The one loop under every kube-rs watcher of the controller (the input kinds of
//! `--source kube`, the owned output kinds of `--output kube`): a relisting is buffered and
//! sent as one replacing message, other events as they come, and `Synced(id)` follows the
//! first complete listing.

use crate::types::Msg;
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use std::fmt::Display;
use tokio::sync::mpsc;

/// How the events of one watched kind become messages.
pub(crate) trait WatchMessages {
    /// What an object of a listing contributes to the message replacing the kind.
    type Listed;
    /// The kind, for logs.
    fn kind(&self) -> &dyn Display;
    /// An object of a (re)listing.
    fn listed(&self, o: &DynamicObject) -> Vec<Self::Listed>;
    /// The message replacing everything known of the kind once a listing is complete.
    fn replace(&self, listed: Vec<Self::Listed>) -> Msg;
    /// An object created or changed.
    fn applied(&self, o: &DynamicObject) -> Vec<Msg>;
    /// An object deleted.
    fn deleted(&self, o: &DynamicObject) -> Option<Msg>;
}

/// Watches `api` forever (default backoff; errors are logged as `<what> error; retrying`),
/// sending what `m` makes of each event; returns once `tx` is closed.
pub(crate) async fn forward<M: WatchMessages>(
    api: Api<DynamicObject>,
    cfg: watcher::Config,
    what: &str,
    m: M,
    tx: mpsc::UnboundedSender<Msg>,
    sync_id: usize,
) {
    let mut stream = watcher(api, cfg).default_backoff().boxed();
    let mut buffer = Vec::new();
    let mut synced = false;
    while let Some(ev) = stream.next().await {
        let msgs = match ev {
            Ok(watcher::Event::Init) => {
                buffer.clear();
                continue;
            }
            Ok(watcher::Event::InitApply(o)) => {
                buffer.extend(m.listed(&o));
                continue;
            }
            Ok(watcher::Event::InitDone) => {
                let replace = m.replace(std::mem::take(&mut buffer));
                if tx.send(replace).is_err() {
                    return;
                }
                if !synced {
                    synced = true;
                    if tx.send(Msg::Synced(sync_id)).is_err() {
                        return;
                    }
                }
                continue;
            }
            Ok(watcher::Event::Apply(o)) => m.applied(&o),
            Ok(watcher::Event::Delete(o)) => m.deleted(&o).into_iter().collect(),
            Err(e) => {
                tracing::warn!(kind = %m.kind(), error = %e, "{what} error; retrying");
                continue;
            }
        };
        for msg in msgs {
            if tx.send(msg).is_err() {
                return;
            }
        }
    }
}
