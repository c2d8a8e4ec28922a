//! `meshbridge init-net`: the sidecar's traffic interception rules, installed by the injected
//! init container (`meshbridge-init`) in the pod's network namespace, as Istio's
//! `istio-iptables` does. IPv4 only (the `iptables` command; Debian's is iptables-nft).
//!
//! Everything lives in four chains of the `nat` table, so that installing twice gives the same
//! rules and `--cleanup` removes exactly what was added:
//! - `MESHBRIDGE_OUTPUT` (jumped to from `OUTPUT -p tcp`): connections the pod opens. Not
//!   intercepted: those of the proxy's own UID (and GID with `--proxy-gid`), those to loopback
//!   (`127.0.0.0/8`), those to the control plane (`--xds-port`) and to the
//!   `--exclude-outbound-ports` / `--exclude-outbound-cidrs`; the rest goes to
//!   `MESHBRIDGE_REDIRECT` (`REDIRECT --to-ports <outbound-port>`). A connection of the
//!   application to the pod's own (non-loopback) address leaves through `lo` too and *is*
//!   intercepted: it goes through the sidecar like any other; the proxy's own connections
//!   are never redirected. (Istio's `istio-iptables` differs there: it lets the app's `lo`
//!   traffic through directly and hairpins the proxy's connections to its own pod IP into
//!   the inbound listener, which needs its `127.0.0.6` passthrough source address to avoid
//!   a loop; the inbound side of this mesh forwards to the app on `127.0.0.1`, and the
//!   simpler rule set needs no such special address.)
//! - `MESHBRIDGE_INBOUND` (jumped to from `PREROUTING -p tcp`): connections to the pod. Not
//!   intercepted: the proxy's admin (15000) and health (15021) ports, the outbound and inbound
//!   listener ports and `--exclude-inbound-ports`; the rest (all ports with
//!   `--include-inbound-ports '*'`, else only the listed ones) goes to `MESHBRIDGE_IN_REDIRECT`
//!   (`REDIRECT --to-ports <inbound-port>`).
//!
//! Each run first removes what a previous run installed (the jumps, every occurrence; then
//! the chains), then creates the chains, fills them, and adds the jumps last (nothing is
//! intercepted before the chains are complete). The removal commands (`-D`, `-F`, `-X`) run
//! only for what exists (checked with `-C` / `-S`), so a first run and `--cleanup` of a clean
//! namespace succeed; every other command must succeed.

use std::process::Command;

const TABLE: &str = "nat";
pub const OUTPUT_CHAIN: &str = "MESHBRIDGE_OUTPUT";
pub const REDIRECT_CHAIN: &str = "MESHBRIDGE_REDIRECT";
pub const INBOUND_CHAIN: &str = "MESHBRIDGE_INBOUND";
pub const IN_REDIRECT_CHAIN: &str = "MESHBRIDGE_IN_REDIRECT";
/// Every chain this command owns, in the order they are removed.
const CHAINS: [&str; 4] = [
    INBOUND_CHAIN,
    IN_REDIRECT_CHAIN,
    OUTPUT_CHAIN,
    REDIRECT_CHAIN,
];
// Never intercepted inbound: Envoy's admin port and the sidecar's health port.
use meshbridge_envoy::inject::{HEALTH_PORT, INBOUND_PORT, PROXY_UID, parse_cidrs, parse_ports};
use meshbridge_envoy::sidecar::{ADMIN_PORT, OUTBOUND_PORT};

#[derive(clap::Args, Debug, Clone)]
pub struct InitNetArgs {
    /// UID of the proxy (Envoy) process: its connections are never intercepted.
    #[arg(long, default_value_t = PROXY_UID as u32)]
    pub proxy_uid: u32,
    /// GID of the proxy process: when set, its connections are not intercepted either.
    #[arg(long)]
    pub proxy_gid: Option<u32>,
    /// The sidecar's outbound listener port (outbound TCP is redirected there).
    #[arg(long, default_value_t = OUTBOUND_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub outbound_port: u16,
    /// The sidecar's inbound listener port (inbound TCP is redirected there).
    #[arg(long, default_value_t = INBOUND_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub inbound_port: u16,
    /// The control plane's (xDS) port: outbound connections to it are never intercepted.
    #[arg(long, default_value_t = 15012, value_parser = clap::value_parser!(u16).range(1..))]
    pub xds_port: u16,
    /// Inbound ports not intercepted, comma separated (besides 15000, 15021 and the
    /// outbound and inbound ports, always excluded).
    #[arg(long, default_value = "", value_name = "PORTS")]
    pub exclude_inbound_ports: String,
    /// Outbound destination ports not intercepted, comma separated (besides --xds-port,
    /// always excluded).
    #[arg(long, default_value = "", value_name = "PORTS")]
    pub exclude_outbound_ports: String,
    /// Outbound destinations not intercepted: IPv4 CIDRs (or addresses), comma separated.
    #[arg(long, default_value = "", value_name = "CIDRS")]
    pub exclude_outbound_cidrs: String,
    /// Inbound ports intercepted: `*` (all but the excluded ones), or a comma-separated list
    /// (empty: no inbound interception).
    #[arg(long, default_value = "*", value_name = "PORTS")]
    pub include_inbound_ports: String,
    /// Print the iptables commands, one per line, without running them.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove the rules and chains this command installs (and nothing else).
    #[arg(long)]
    pub cleanup: bool,
    /// The iptables binary.
    #[arg(long, default_value = "iptables", value_name = "PATH")]
    pub iptables: String,
}

fn ports(flag: &str, value: &str) -> Result<Vec<u16>, String> {
    parse_ports(value).map_err(|e| format!("--{flag}: {e}"))
}

fn cidrs(flag: &str, value: &str) -> Result<Vec<String>, String> {
    parse_cidrs(value).map_err(|e| format!("--{flag}: {e}"))
}

fn cmd(args: &[&str]) -> Vec<String> {
    let mut v = vec!["-t".to_string(), TABLE.to_string()];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// `-A chain <matches> -j <target and its options>`, in the nat table.
fn append<M: AsRef<str>, T: AsRef<str>>(chain: &str, matches: &[M], target: &[T]) -> Vec<String> {
    let mut v = cmd(&["-A", chain]);
    v.extend(matches.iter().map(|m| m.as_ref().to_string()));
    v.push("-j".to_string());
    v.extend(target.iter().map(|t| t.as_ref().to_string()));
    v
}

/// The jumps from the built-in chains into ours.
fn jumps() -> [Vec<String>; 2] {
    [
        cmd(&["-A", "PREROUTING", "-p", "tcp", "-j", INBOUND_CHAIN]),
        cmd(&["-A", "OUTPUT", "-p", "tcp", "-j", OUTPUT_CHAIN]),
    ]
}

/// What removes a previous installation: the jumps, then our chains (flushed first: they
/// refer to each other).
fn removal() -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = jumps()
        .into_iter()
        .map(|mut j| {
            j[2] = "-D".to_string();
            j
        })
        .collect();
    out.extend(CHAINS.iter().map(|c| cmd(&["-F", c])));
    out.extend(CHAINS.iter().map(|c| cmd(&["-X", c])));
    out
}

/// The iptables commands (argv without the binary), in order: with `--cleanup` the removal
/// only, else the removal of a previous installation then the installation. Removal
/// commands (`-D`, `-F`, `-X`) are run only for what exists ([`run`]). Errors name the flag
/// and the value.
pub fn plan(args: &InitNetArgs) -> Result<Vec<Vec<String>>, String> {
    let mut in_excl: Vec<u16> = Vec::new();
    for p in [
        ADMIN_PORT,
        HEALTH_PORT,
        args.outbound_port,
        args.inbound_port,
    ]
    .into_iter()
    .chain(ports("exclude-inbound-ports", &args.exclude_inbound_ports)?)
    {
        if !in_excl.contains(&p) {
            in_excl.push(p);
        }
    }
    let mut out_excl = vec![args.xds_port];
    for p in ports("exclude-outbound-ports", &args.exclude_outbound_ports)? {
        if !out_excl.contains(&p) {
            out_excl.push(p);
        }
    }
    let out_cidrs = cidrs("exclude-outbound-cidrs", &args.exclude_outbound_cidrs)?;
    let include = match args.include_inbound_ports.trim() {
        "*" => None,
        v => Some(ports("include-inbound-ports", v)?),
    };

    let mut out = removal();
    if args.cleanup {
        return Ok(out);
    }
    let tcp_port = |p: &u16| {
        [
            "-p".to_string(),
            "tcp".into(),
            "--dport".into(),
            p.to_string(),
        ]
    };
    let owner = |flag: &str, id: u32| {
        [
            "-m".to_string(),
            "owner".into(),
            flag.into(),
            id.to_string(),
        ]
    };

    out.push(cmd(&["-N", REDIRECT_CHAIN]));
    let to = args.outbound_port.to_string();
    out.push(append(
        REDIRECT_CHAIN,
        &["-p", "tcp"],
        &["REDIRECT", "--to-ports", &to],
    ));
    out.push(cmd(&["-N", IN_REDIRECT_CHAIN]));
    let to = args.inbound_port.to_string();
    out.push(append(
        IN_REDIRECT_CHAIN,
        &["-p", "tcp"],
        &["REDIRECT", "--to-ports", &to],
    ));

    out.push(cmd(&["-N", INBOUND_CHAIN]));
    match include {
        None => {
            for p in &in_excl {
                out.push(append(INBOUND_CHAIN, &tcp_port(p), &["RETURN"]));
            }
            out.push(append(INBOUND_CHAIN, &["-p", "tcp"], &[IN_REDIRECT_CHAIN]));
        }
        // Only the listed ports; an excluded port stays excluded.
        Some(list) => {
            for p in list.iter().filter(|p| !in_excl.contains(p)) {
                out.push(append(INBOUND_CHAIN, &tcp_port(p), &[IN_REDIRECT_CHAIN]));
            }
        }
    }

    out.push(cmd(&["-N", OUTPUT_CHAIN]));
    out.push(append(
        OUTPUT_CHAIN,
        &owner("--uid-owner", args.proxy_uid),
        &["RETURN"],
    ));
    if let Some(gid) = args.proxy_gid {
        out.push(append(
            OUTPUT_CHAIN,
            &owner("--gid-owner", gid),
            &["RETURN"],
        ));
    }
    out.push(append(OUTPUT_CHAIN, &["-d", "127.0.0.0/8"], &["RETURN"]));
    for p in &out_excl {
        out.push(append(OUTPUT_CHAIN, &tcp_port(p), &["RETURN"]));
    }
    for c in &out_cidrs {
        out.push(append(OUTPUT_CHAIN, &["-d", c], &["RETURN"]));
    }
    out.push(append(OUTPUT_CHAIN, &[] as &[&str], &[REDIRECT_CHAIN]));

    out.extend(jumps());
    Ok(out)
}

fn shell_line(bin: &str, argv: &[String]) -> String {
    std::iter::once(bin)
        .chain(argv.iter().map(String::as_str))
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,*+@".contains(c))
                && a != "*"
            {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs one command (its output captured).
fn exec(bin: &str, argv: &[String]) -> Result<std::process::Output, String> {
    Command::new(bin)
        .args(argv)
        .output()
        .map_err(|e| format!("{}: cannot run: {e}", shell_line(bin, argv)))
}

fn must(bin: &str, argv: &[String]) -> Result<(), String> {
    let out = exec(bin, argv)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed ({}): {}",
            shell_line(bin, argv),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether what a removal command removes exists: `-C` for a rule, `-S CHAIN` for a chain.
fn present(bin: &str, argv: &[String]) -> Result<bool, String> {
    let mut probe = argv.to_vec();
    match probe[2].as_str() {
        "-D" => probe[2] = "-C".to_string(),
        _ => probe[2] = "-S".to_string(),
    }
    Ok(exec(bin, &probe)?.status.success())
}

fn execute(bin: &str, cmds: &[Vec<String>]) -> Result<(), String> {
    for argv in cmds {
        match argv[2].as_str() {
            // Every occurrence of a jump (an older tool may have added it twice).
            "-D" => {
                let mut n = 0;
                while present(bin, argv)? {
                    must(bin, argv)?;
                    n += 1;
                    if n > 100 {
                        return Err(format!("{}: still present", shell_line(bin, argv)));
                    }
                }
            }
            "-F" | "-X" => {
                if present(bin, argv)? {
                    must(bin, argv)?;
                }
            }
            _ => must(bin, argv)?,
        }
    }
    Ok(())
}

/// `meshbridge init-net`: exit 0, 2 (bad flags: nothing run) or 1 (an iptables command failed).
pub fn run(args: InitNetArgs) -> i32 {
    let cmds = match plan(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if args.dry_run {
        // Written without println!: a closed pipe (`| head`) is not a panic.
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for argv in &cmds {
            if writeln!(out, "{}", shell_line(&args.iptables, argv)).is_err() {
                return 1;
            }
        }
        return 0;
    }
    match execute(&args.iptables, &cmds) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: InitNetArgs,
    }

    fn args(v: &[&str]) -> InitNetArgs {
        T::parse_from(std::iter::once("t").chain(v.iter().copied())).a
    }

    #[test]
    fn cidrs_are_normalized_and_checked() {
        assert_eq!(
            cidrs("f", "10.1.2.3/8, 192.168.0.1,10.0.0.0/8").unwrap(),
            ["10.0.0.0/8", "192.168.0.1/32"]
        );
        for bad in ["10.0.0.0/33", "10.0.0/8", "fe80::/10", "x"] {
            let e = cidrs("f", bad).unwrap_err();
            assert!(e.starts_with("--f: ") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn include_list_skips_excluded_ports() {
        let p = plan(&args(&["--include-inbound-ports", "8080,15021"])).unwrap();
        let redirects: Vec<_> = p
            .iter()
            .filter(|c| c[2] == "-A" && c[3] == INBOUND_CHAIN)
            .collect();
        assert_eq!(redirects.len(), 1);
        assert!(redirects[0].contains(&"8080".to_string()));
    }
}
