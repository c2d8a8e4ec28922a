//! The processes of a local pod (its Envoy and its programs), either started by this
//! control plane or adopted from a previous one that was killed: sidecars outlive the
//! control plane (as in a cluster, where killing istiod or meshbridge never restarts pods),
//! keep serving with their last configuration, and are taken over by the next `local up`
//! on the same state directory.
//!
//! Adoption is Linux-only (it reads `/proc`): a process is adopted only when it is alive
//! (not a zombie) and its command line is exactly the one this control plane would run.

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// A pod process: a child of this process, or adopted (a child of a killed predecessor).
pub enum Proc {
    Child(Child),
    Adopted(u32),
}

impl Proc {
    /// `Some(description)` once the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self {
            Proc::Child(c) => match c.try_wait() {
                Ok(Some(s)) => Some(s.to_string()),
                _ => None,
            },
            Proc::Adopted(p) => (!alive(*p)).then(|| "exited".to_string()),
        }
    }

    /// Stops the process (SIGTERM, then SIGKILL after 5 s) and waits for it.
    pub async fn stop(&mut self) {
        match self {
            Proc::Child(c) => {
                let _ = c.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
            }
            Proc::Adopted(p) => terminate(*p).await,
        }
    }
}

/// Sends `sig` with kill(1) (this crate forbids unsafe code, so no libc::kill).
async fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
}

/// SIGTERM, wait up to 5 s, then SIGKILL.
pub async fn terminate(pid: u32) {
    if !alive(pid) {
        return;
    }
    signal(pid, "TERM").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if alive(pid) {
        signal(pid, "KILL").await;
    }
}

/// Whether `pid` runs (exists and is not a zombie: an orphan's exit may not be reaped).
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last `)`.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|s| s != "Z" && s != "X")
}

/// The command line of `pid` (argv), if readable.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// Whether `pid` is alive and runs exactly `argv`.
pub fn runs(pid: u32, argv: &[String]) -> bool {
    alive(pid) && cmdline(pid).is_some_and(|c| c == argv)
}

/// What a pod's directory records of its processes (`pids.json`): the pod spec's key and,
/// per process, its pid and argv.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PidFile {
    pub spec: String,
    pub procs: Vec<(u32, Vec<String>)>,
}

impl PidFile {
    pub fn read(dir: &Path) -> Option<PidFile> {
        let v: Value = serde_json::from_slice(&std::fs::read(dir.join("pids.json")).ok()?).ok()?;
        let spec = v["spec"].as_str()?.to_string();
        let procs = v["procs"]
            .as_array()?
            .iter()
            .filter_map(|p| {
                let pid = u32::try_from(p["pid"].as_u64()?).ok()?;
                let argv = p["argv"]
                    .as_array()?
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_string))
                    .collect();
                Some((pid, argv))
            })
            .collect();
        Some(PidFile { spec, procs })
    }

    pub fn write(&self, dir: &Path) -> Result<(), crate::Error> {
        let v = json!({
            "spec": self.spec,
            "procs": self.procs.iter().map(|(p, a)| json!({"pid": p, "argv": a})).collect::<Vec<_>>(),
        });
        let path = dir.join("pids.json");
        std::fs::write(&path, v.to_string()).map_err(crate::error::io(&path))
    }

    /// Stops every recorded process that still runs its recorded command line.
    pub async fn stop_all(&self) {
        for (pid, argv) in &self.procs {
            if runs(*pid, argv) {
                terminate(*pid).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_its_cmdline_is_read() {
        let me = std::process::id();
        assert!(alive(me));
        let argv = cmdline(me).unwrap();
        assert!(runs(me, &argv));
        assert!(!runs(me, &["something-else".to_string()]));
        assert!(!alive(u32::MAX));
    }

    #[test]
    fn pid_file_round_trips() {
        let d = std::env::temp_dir().join(format!("mb-pids-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = PidFile {
            spec: "abc".into(),
            procs: vec![(42, vec!["envoy".into(), "-c".into(), "b.json".into()])],
        };
        f.write(&d).unwrap();
        assert_eq!(PidFile::read(&d), Some(f));
        std::fs::write(d.join("pids.json"), "not json").unwrap();
        assert_eq!(PidFile::read(&d), None);
        let _ = std::fs::remove_dir_all(&d);
    }
}
