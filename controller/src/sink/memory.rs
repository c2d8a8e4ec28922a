//! An in-memory sink: a map of objects and a log of every write (tests, benchmarks).

use super::{PutOutcome, Sink, is_owned};
use crate::Result;
use crate::types::OutKey;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One write the sink executed.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    Put(OutKey),
    Delete(OutKey),
}

#[derive(Debug, Default)]
pub struct MemoryState {
    pub objects: BTreeMap<OutKey, Value>,
    pub writes: Vec<Write>,
}

/// Cloneable handle: tests keep one to inspect what was written.
#[derive(Clone, Debug)]
pub struct MemorySink {
    pub state: Arc<Mutex<MemoryState>>,
    controller_namespace: String,
}

impl MemorySink {
    pub fn new(controller_namespace: &str) -> MemorySink {
        MemorySink {
            state: Arc::default(),
            controller_namespace: controller_namespace.to_string(),
        }
    }

    /// Adds an object as if someone else had created it.
    pub fn insert_foreign(&self, v: Value) {
        if let Some(k) = OutKey::of_value(&v) {
            self.lock().objects.insert(k, v);
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drains the write log.
    pub fn take_writes(&self) -> Vec<Write> {
        std::mem::take(&mut self.lock().writes)
    }

    pub fn objects(&self) -> BTreeMap<OutKey, Value> {
        self.lock().objects.clone()
    }
}

#[async_trait::async_trait]
impl Sink for MemorySink {
    fn name(&self) -> String {
        "memory".into()
    }

    async fn list_owned(&mut self) -> Result<BTreeMap<OutKey, Value>> {
        let ns = self.controller_namespace.clone();
        Ok(self
            .lock()
            .objects
            .iter()
            .filter(|(_, v)| is_owned(v, &ns))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn put(&mut self, k: &OutKey, want: &Value, live: Option<&Value>) -> Result<PutOutcome> {
        let ns = self.controller_namespace.clone();
        let mut st = self.lock();
        if live.is_none()
            && let Some(existing) = st.objects.get(k)
            && !is_owned(existing, &ns)
        {
            return Ok(PutOutcome::Conflict(format!(
                "{k} exists and is not managed by meshbridge"
            )));
        }
        st.objects.insert(k.clone(), want.clone());
        st.writes.push(Write::Put(k.clone()));
        Ok(PutOutcome::Written(want.clone()))
    }

    async fn delete(&mut self, key: &OutKey, live: &Value) -> Result<()> {
        super::ensure_owned(key, live, &self.controller_namespace)?;
        let mut st = self.lock();
        st.objects.remove(key);
        st.writes.push(Write::Delete(key.clone()));
        Ok(())
    }
}
