//! `meshbridge init-net` (the init container's interception rules): the exact `--dry-run`
//! command lists (inline goldens), flag errors (exit 2, flag named, nothing run), a failing
//! iptables command (exit 1, command and stderr named), and — as root with `iptables`,
//! `ip`, `setpriv` and `/usr/bin/python3` — real traffic in network namespaces made by the
//! test: outbound and inbound interception with the original destination preserved
//! (`SO_ORIGINAL_DST`), every exclusion, idempotence and `--cleanup`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_meshbridge");

fn init_net(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("init-net")
        .args(args)
        .output()
        .unwrap()
}

fn lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// What every run starts with: removing a previous installation (each command run only
/// when what it removes exists).
const REMOVAL: &[&str] = &[
    "iptables -t nat -D PREROUTING -p tcp -j MESHBRIDGE_INBOUND",
    "iptables -t nat -D OUTPUT -p tcp -j MESHBRIDGE_OUTPUT",
    "iptables -t nat -F MESHBRIDGE_INBOUND",
    "iptables -t nat -F MESHBRIDGE_IN_REDIRECT",
    "iptables -t nat -F MESHBRIDGE_OUTPUT",
    "iptables -t nat -F MESHBRIDGE_REDIRECT",
    "iptables -t nat -X MESHBRIDGE_INBOUND",
    "iptables -t nat -X MESHBRIDGE_IN_REDIRECT",
    "iptables -t nat -X MESHBRIDGE_OUTPUT",
    "iptables -t nat -X MESHBRIDGE_REDIRECT",
];

fn expected(install: &[&str]) -> Vec<String> {
    REMOVAL
        .iter()
        .chain(install)
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn dry_run_default_flags() {
    let o = init_net(&["--dry-run"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        lines(&o),
        expected(&[
            "iptables -t nat -N MESHBRIDGE_REDIRECT",
            "iptables -t nat -A MESHBRIDGE_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
            "iptables -t nat -N MESHBRIDGE_IN_REDIRECT",
            "iptables -t nat -A MESHBRIDGE_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
            "iptables -t nat -N MESHBRIDGE_INBOUND",
            "iptables -t nat -A MESHBRIDGE_INBOUND -p tcp --dport 15000 -j RETURN",
            "iptables -t nat -A MESHBRIDGE_INBOUND -p tcp --dport 15021 -j RETURN",
            "iptables -t nat -A MESHBRIDGE_INBOUND -p tcp --dport 15001 -j RETURN",
            "iptables -t nat -A MESHBRIDGE_INBOUND -p tcp --dport 15006 -j RETURN",
            "iptables -t nat -A MESHBRIDGE_INBOUND -p tcp -j MESHBRIDGE_IN_REDIRECT",
            "iptables -t nat -N MESHBRIDGE_OUTPUT",
            "iptables -t nat -A MESHBRIDGE_OUTPUT -m owner --uid-owner 1337 -j RETURN",
            "iptables -t nat -A MESHBRIDGE_OUTPUT -d 127.0.0.0/8 -j RETURN",
            "iptables -t nat -A MESHBRIDGE_OUTPUT -p tcp --dport 15012 -j RETURN",
            "iptables -t nat -A MESHBRIDGE_OUTPUT -j MESHBRIDGE_REDIRECT",
            "iptables -t nat -A PREROUTING -p tcp -j MESHBRIDGE_INBOUND",
            "iptables -t nat -A OUTPUT -p tcp -j MESHBRIDGE_OUTPUT",
        ])
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn dry_run_with_exclusions() {
    let o = init_net(&[
        "--dry-run",
        "--proxy-uid=2000",
        "--proxy-gid=2001",
        "--outbound-port=16001",
        "--inbound-port=16006",
        "--xds-port=16012",
        // Duplicates and always-excluded ports appear once; spaces and a trailing comma are fine.
        "--exclude-inbound-ports=9100, 15021,9100,",
        "--exclude-outbound-ports=5432,16012",
        // Host bits are cleared (what iptables stores); a bare address is a /32.
        "--exclude-outbound-cidrs=10.96.0.1/12,169.254.169.254",
        "--iptables=/usr/sbin/iptables-nft",
    ]);
    assert!(o.status.success(), "{o:?}");
    let want: Vec<String> = expected(&[
        "iptables -t nat -N MESHBRIDGE_REDIRECT",
        "iptables -t nat -A MESHBRIDGE_REDIRECT -p tcp -j REDIRECT --to-ports 16001",
        "iptables -t nat -N MESHBRIDGE_IN_REDIRECT",
        "iptables -t nat -A MESHBRIDGE_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006",
        "iptables -t nat -N MESHBRIDGE_INBOUND",
        "iptables -t nat -A MESHBRIDGE_INBOUND -p tcp --dport 15000 -j RETURN",
        "iptables -t nat -A MESHBRIDGE_INBOUND -p tcp --dport 15021 -j RETURN",
        "iptables -t nat -A MESHBRIDGE_INBOUND -p tcp --dport 16001 -j RETURN",
        "iptables -t nat -A MESHBRIDGE_INBOUND -p tcp --dport 16006 -j RETURN",
        "iptables -t nat -A MESHBRIDGE_INBOUND -p tcp --dport 9100 -j RETURN",
        "iptables -t nat -A MESHBRIDGE_INBOUND -p tcp -j MESHBRIDGE_IN_REDIRECT",
        "iptables -t nat -N MESHBRIDGE_OUTPUT",
        "iptables -t nat -A MESHBRIDGE_OUTPUT -m owner --uid-owner 2000 -j RETURN",
        "iptables -t nat -A MESHBRIDGE_OUTPUT -m owner --gid-owner 2001 -j RETURN",
        "iptables -t nat -A MESHBRIDGE_OUTPUT -d 127.0.0.0/8 -j RETURN",
        "iptables -t nat -A MESHBRIDGE_OUTPUT -p tcp --dport 16012 -j RETURN",
        "iptables -t nat -A MESHBRIDGE_OUTPUT -p tcp --dport 5432 -j RETURN",
        "iptables -t nat -A MESHBRIDGE_OUTPUT -d 10.96.0.0/12 -j RETURN",
        "iptables -t nat -A MESHBRIDGE_OUTPUT -d 169.254.169.254/32 -j RETURN",
        "iptables -t nat -A MESHBRIDGE_OUTPUT -j MESHBRIDGE_REDIRECT",
        "iptables -t nat -A PREROUTING -p tcp -j MESHBRIDGE_INBOUND",
        "iptables -t nat -A OUTPUT -p tcp -j MESHBRIDGE_OUTPUT",
    ])
    .into_iter()
    .map(|l| l.replacen("iptables ", "/usr/sbin/iptables-nft ", 1))
    .collect();
    assert_eq!(lines(&o), want);

    // An explicit include list: only those ports, an excluded one stays excluded.
    let o = init_net(&[
        "--dry-run",
        "--include-inbound-ports=8080,9100,15021",
        "--exclude-inbound-ports=9100",
    ]);
    assert!(o.status.success(), "{o:?}");
    let inbound: Vec<String> = lines(&o)
        .into_iter()
        .filter(|l| l.contains("-A MESHBRIDGE_INBOUND"))
        .collect();
    assert_eq!(
        inbound,
        ["iptables -t nat -A MESHBRIDGE_INBOUND -p tcp --dport 8080 -j MESHBRIDGE_IN_REDIRECT"]
    );
    // Empty include list: no inbound interception (the chain exists, empty).
    let o = init_net(&["--dry-run", "--include-inbound-ports="]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        !lines(&o)
            .iter()
            .any(|l| l.contains("-A MESHBRIDGE_INBOUND"))
    );
}

#[test]
fn dry_run_cleanup() {
    let o = init_net(&["--dry-run", "--cleanup", "--exclude-inbound-ports=9100"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(lines(&o), expected(&[]));
}

#[test]
fn bad_flags_exit_2_naming_the_flag_and_value() {
    // A missing binary: had anything been run, the exit would be 1 ("cannot run").
    let nothing = "--iptables=/nonexistent/iptables";
    for (args, needle) in [
        (
            vec!["--exclude-inbound-ports=80,http"],
            "--exclude-inbound-ports: invalid port \"http\"",
        ),
        (
            vec!["--exclude-outbound-ports=70000"],
            "--exclude-outbound-ports: invalid port \"70000\"",
        ),
        (
            vec!["--include-inbound-ports=0"],
            "--include-inbound-ports: invalid port \"0\"",
        ),
        (
            vec!["--exclude-outbound-cidrs=10.0.0.0/8,10.1.0.0/40"],
            "--exclude-outbound-cidrs: invalid IPv4 CIDR \"10.1.0.0/40\"",
        ),
        (
            vec!["--exclude-outbound-cidrs=fd00::/8"],
            "--exclude-outbound-cidrs: invalid IPv4 CIDR \"fd00::/8\"",
        ),
        (vec!["--outbound-port=abc"], "--outbound-port"),
        (vec!["--inbound-port=0"], "--inbound-port"),
        (vec!["--proxy-uid=-1"], "--proxy-uid"),
    ] {
        for dry in [false, true] {
            let mut a = args.clone();
            a.push(nothing);
            if dry {
                a.push("--dry-run");
            }
            let o = init_net(&a);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{a:?}: {err}");
            assert!(err.contains(needle), "{a:?}: {err}");
            assert!(o.stdout.is_empty(), "{a:?}");
        }
    }
}

#[test]
fn failing_iptables_command_is_reported() {
    let dir = std::env::temp_dir().join(format!("meshbridge-init-net-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("iptables");
    // Probes (-C, -S) say "absent"; everything else fails with a message on stderr.
    std::fs::write(
        &fake,
        "#!/bin/sh\ncase \"$3\" in -C|-S) exit 1;; esac\necho \"iptables: fake failure for $*\" >&2\nexit 4\n",
    )
    .unwrap();
    let _ = Command::new("chmod").arg("+x").arg(&fake).status();
    let o = init_net(&[&format!("--iptables={}", fake.display())]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{} -t nat -N MESHBRIDGE_REDIRECT failed",
            fake.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("iptables: fake failure for -t nat -N MESHBRIDGE_REDIRECT"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- real traffic in network namespaces -------------------------------------------------

fn find_exe(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Runs a command, killed after `secs`; panics on timeout.
fn bounded(mut cmd: Command, secs: u64) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: no exit within {secs}s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ok(cmd: Command) -> String {
    let what = format!("{cmd:?}");
    let o = bounded(cmd, 20);
    assert!(
        o.status.success(),
        "{what}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ip(args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(args);
    c
}

/// `ip netns exec NS PROGRAM ARGS…`
fn in_ns(ns: &str, program: &str, args: &[&str]) -> Command {
    let mut c = ip(&["netns", "exec", ns, program]);
    c.args(args);
    c
}

/// The namespaces the test made, deleted on drop (also on panic). Declared before the
/// servers, so dropped after them.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A listener process (python3) in a namespace: for each `NAME=HOST:PORT` it accepts
/// connections and answers `NAME ORIGINAL_DST\n` (`SO_ORIGINAL_DST`, IPv4; the local
/// address when the namespace tracks no connections). It exits when
/// its stdin closes (the test process gone) or is killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SERVER_PY: &str = r#"
import socket, struct, sys, threading
def orig(c):
    try:
        raw = c.getsockopt(socket.SOL_IP, 80, 16)
        return "%s:%d" % (socket.inet_ntoa(raw[4:8]), struct.unpack("!H", raw[2:4])[0])
    except OSError:
        # No conntrack entry (a namespace without NAT rules): the address it was sent to.
        return "%s:%d" % c.getsockname()
def serve(s, name):
    while True:
        c, _ = s.accept()
        c.settimeout(3)
        try:
            c.sendall(("%s %s\n" % (name, orig(c))).encode())
        except OSError:
            pass
        finally:
            c.close()
for spec in sys.argv[1:]:
    name, addr = spec.split("=")
    host, port = addr.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(16)
    threading.Thread(target=serve, args=(s, name), daemon=True).start()
print("READY", flush=True)
sys.stdin.read()
"#;

const CLIENT_PY: &str = r#"
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    s.settimeout(3)
    data = b""
    while not data.endswith(b"\n"):
        d = s.recv(256)
        if not d:
            break
        data += d
    print(data.decode().strip() or "closed")
except OSError as e:
    print("error %s" % e)
"#;

fn server(python: &Path, ns: &str, specs: &[String]) -> Server {
    let mut args = vec!["-I", "-c", SERVER_PY];
    args.extend(specs.iter().map(String::as_str));
    let mut child = in_ns(ns, python.to_str().unwrap(), &args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let srv = Server(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("listener not ready within 10s");
    assert_eq!(line.trim(), "READY", "listener in {ns} failed: {specs:?}");
    srv
}

/// Connects from namespace `ns` as `uid:gid` (None: root) to HOST:PORT; the first line the
/// listener answered, or `error …`.
fn connect(python: &Path, ns: &str, ids: Option<(u32, u32)>, host: &str, port: u16) -> String {
    let port = port.to_string();
    let py = python.to_str().unwrap();
    let cmd = match ids {
        None => in_ns(ns, py, &["-I", "-c", CLIENT_PY, host, &port]),
        Some((uid, gid)) => {
            let (u, g) = (uid.to_string(), gid.to_string());
            in_ns(
                ns,
                "setpriv",
                &[
                    "--reuid",
                    &u,
                    "--regid",
                    &g,
                    "--clear-groups",
                    py,
                    "-I",
                    "-c",
                    CLIENT_PY,
                    host,
                    &port,
                ],
            )
        }
    };
    let o = bounded(cmd, 10);
    assert!(
        o.status.success(),
        "client: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A traffic case: its name, who connects (uid, gid; `None`: root), host, port, the answer.
type Case<'a> = (&'a str, Option<(u32, u32)>, &'a str, u16, String);

/// `iptables-save -t nat` without its comment lines and counters.
fn nat_rules(save: &Path, ns: &str) -> String {
    let out = ok(in_ns(ns, save.to_str().unwrap(), &["-t", "nat"]));
    let counters = regex::Regex::new(r"\[\d+:\d+\]").unwrap();
    out.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| counters.replace_all(l, "[0:0]").into_owned() + "\n")
        .collect()
}

#[test]
fn intercepts_real_traffic_in_a_network_namespace() {
    if !is_root() {
        println!("SKIP: not root (network namespaces and iptables need it)");
        return;
    }
    let Some(iptables) = find_exe("iptables") else {
        println!("SKIP: no iptables binary (Debian package `iptables`)");
        return;
    };
    let Some(save) = find_exe("iptables-save") else {
        println!("SKIP: no iptables-save binary (Debian package `iptables`)");
        return;
    };
    for tool in ["ip", "setpriv"] {
        if find_exe(tool).is_none() {
            println!("SKIP: no `{tool}` binary");
            return;
        }
    }
    // Not a pyenv shim under /root: the clients run as unprivileged users.
    let python = PathBuf::from("/usr/bin/python3");
    if !python.is_file() {
        println!("SKIP: no /usr/bin/python3");
        return;
    }
    let ipt = iptables.to_str().unwrap().to_string();

    let pid = std::process::id();
    let x = 1 + pid % 250;
    let pod = format!("mbinit-{pid}");
    let peer = format!("mbinit-{pid}-peer");
    let (pod_ip, peer_ip, peer_excl_ip) = (
        format!("10.250.{x}.2"),
        format!("10.250.{x}.1"),
        format!("10.250.{x}.129"),
    );
    let absent = format!("10.250.{x}.9");
    for ns in [&pod, &peer] {
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(Stdio::null())
            .status();
    }
    let mut guard = Namespaces(Vec::new());
    for ns in [&pod, &peer] {
        ok(ip(&["netns", "add", ns]));
        guard.0.push(ns.clone());
        ok(ip(&["-n", ns, "link", "set", "lo", "up"]));
    }
    // The veth pair is created inside the pod namespace, its peer end moved to the peer
    // namespace: nothing touches the host's namespace.
    ok(ip(&[
        "-n", &pod, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &peer,
    ]));
    for (ns, addr) in [(&pod, &pod_ip), (&peer, &peer_ip), (&peer, &peer_excl_ip)] {
        ok(ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]));
    }
    for ns in [&pod, &peer] {
        ok(ip(&["-n", ns, "link", "set", "eth0", "up"]));
    }

    // A rule that is not ours: it must survive install and cleanup.
    ok(in_ns(
        &pod,
        &ipt,
        &[
            "-t", "nat", "-A", "OUTPUT", "-p", "udp", "--dport", "9999", "-j", "RETURN",
        ],
    ));
    let before = nat_rules(&save, &pod);

    let flags = [
        "--proxy-gid=1338",
        "--exclude-inbound-ports=9100",
        "--exclude-outbound-ports=9200",
        &format!("--exclude-outbound-cidrs={peer_excl_ip}/25"),
        &format!("--iptables={ipt}"),
    ]
    .map(|s| s.to_string());
    let install = |extra: &[&str]| {
        let mut a: Vec<&str> = vec!["init-net"];
        a.extend(flags.iter().map(String::as_str));
        a.extend(extra);
        ok(in_ns(&pod, BIN, &a))
    };

    install(&[]);
    let first = nat_rules(&save, &pod);
    install(&[]);
    let second = nat_rules(&save, &pod);
    assert_eq!(first, second, "a second run changed the rules");
    for chain in [
        "MESHBRIDGE_OUTPUT",
        "MESHBRIDGE_REDIRECT",
        "MESHBRIDGE_INBOUND",
        "MESHBRIDGE_IN_REDIRECT",
    ] {
        assert!(first.contains(&format!(":{chain} - [0:0]")), "{first}");
    }
    for jump in [
        "-A OUTPUT -p tcp -j MESHBRIDGE_OUTPUT\n",
        "-A PREROUTING -p tcp -j MESHBRIDGE_INBOUND\n",
        "-A OUTPUT -p udp -m udp --dport 9999 -j RETURN\n",
    ] {
        assert_eq!(first.matches(jump).count(), 1, "{jump}in\n{first}");
    }

    // Listeners: the sidecar's (outbound on loopback, inbound on all addresses), the app's
    // and the excluded ports in the pod; "remote" services in the peer.
    let _pod_srv = server(
        &python,
        &pod,
        &[
            "outbound=127.0.0.1:15001".into(),
            "inbound=0.0.0.0:15006".into(),
            "app=0.0.0.0:8080".into(),
            "excluded-in=0.0.0.0:9100".into(),
            "health=0.0.0.0:15021".into(),
        ],
    );
    let _peer_srv = server(
        &python,
        &peer,
        &[
            "remote=0.0.0.0:8080".into(),
            "remote-excluded-port=0.0.0.0:9200".into(),
            "xds=0.0.0.0:15012".into(),
        ],
    );

    let app = Some((1000, 1000));
    let proxy = Some((1337, 1337));
    let proxy_group = Some((1000, 1338));
    let cases: Vec<Case> = vec![
        // Outbound from the app: intercepted, original destination kept — also to an
        // address nothing answers and to the pod's own address (through the sidecar).
        (
            "app → absent address",
            app,
            &absent,
            8080,
            format!("outbound {absent}:8080"),
        ),
        (
            "app → remote",
            app,
            &peer_ip,
            8080,
            format!("outbound {peer_ip}:8080"),
        ),
        (
            "app → own pod IP",
            app,
            &pod_ip,
            8080,
            format!("outbound {pod_ip}:8080"),
        ),
        // Not intercepted.
        (
            "proxy uid → remote",
            proxy,
            &peer_ip,
            8080,
            format!("remote {peer_ip}:8080"),
        ),
        (
            "proxy uid → own pod IP",
            proxy,
            &pod_ip,
            8080,
            format!("app {pod_ip}:8080"),
        ),
        (
            "proxy gid → remote",
            proxy_group,
            &peer_ip,
            8080,
            format!("remote {peer_ip}:8080"),
        ),
        (
            "app → loopback",
            app,
            "127.0.0.1",
            8080,
            "app 127.0.0.1:8080".into(),
        ),
        (
            "app → excluded port",
            app,
            &peer_ip,
            9200,
            format!("remote-excluded-port {peer_ip}:9200"),
        ),
        (
            "app → xds port",
            app,
            &peer_ip,
            15012,
            format!("xds {peer_ip}:15012"),
        ),
        (
            "app → excluded CIDR",
            app,
            &peer_excl_ip,
            8080,
            format!("remote {peer_excl_ip}:8080"),
        ),
    ];
    let mut failures = Vec::new();
    for (what, ids, host, port, want) in &cases {
        let got = connect(&python, &pod, *ids, host, *port);
        if &got != want {
            failures.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    }
    // Inbound, from the peer namespace.
    for (what, port, want) in [
        ("inbound 8080", 8080, format!("inbound {pod_ip}:8080")),
        (
            "inbound excluded port",
            9100,
            format!("excluded-in {pod_ip}:9100"),
        ),
        (
            "inbound health port",
            15021,
            format!("health {pod_ip}:15021"),
        ),
    ] {
        let got = connect(&python, &peer, None, &pod_ip, port);
        if got != want {
            failures.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nrules:\n{first}",
        failures.join("\n")
    );

    // Cleanup removes exactly what was added; a second cleanup finds nothing to do.
    install(&["--cleanup"]);
    let after = nat_rules(&save, &pod);
    assert!(!after.contains("MESHBRIDGE"), "{after}");
    assert_eq!(after, before);
    install(&["--cleanup"]);
    assert_eq!(nat_rules(&save, &pod), before);
}
