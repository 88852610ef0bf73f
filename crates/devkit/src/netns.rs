//! Hosts of their own on one machine, for partition tests: a Linux network namespace per
//! "host", joined to this one by veth pairs (one per named link, each a /30 of
//! 10.213.0.0/16), and cut or healed by setting the host-side end of a link down or up.
//!
//! Why a link set down rather than a proxy that drops or resets: a cut link drops every
//! packet in the kernel, so what crosses it behaves as in a real partition. Established
//! connections stall (the sender retransmits, nothing comes back, nothing is reset) and
//! new connections stall in SYN_SENT; when the link comes back, retransmissions get
//! through and the stalled connections carry on. Each end of a link has a permanent
//! neighbour entry for the other, so a cut is never reported early as "no route to
//! host" by a failed ARP resolution: it stays a black hole, as a partition in a data
//! centre is.
//!
//! Latency cannot be made in the kernel here (`tc netem` is not in every kernel, this
//! CI's included); [`proxy::Proxy`] makes it in userspace, and also holds (never resets)
//! connections to services that have no link of their own, such as one upstream among
//! several that a replica reaches on its loopback.
//!
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and the `ip` command. Everything made is
//! removed on drop, also when a test panics; namespaces left by a process that was
//! killed are removed by the next process that makes one.

pub mod proxy;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context as _;

/// Names of this process's namespaces are `dossier-<pid>-<n>`.
const PREFIX: &str = "dossier-";
/// Every link is a /30 of this /16 (private, RFC 1918).
const RANGE: [u8; 2] = [10, 213];

static NEXT: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();

/// Why namespaces cannot be made here, or None when they can: made and removed once,
/// to find out (root alone is not enough in every container).
pub fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some(
            "not running as root (network namespaces need CAP_NET_ADMIN and CAP_SYS_ADMIN)".into(),
        );
    }
    match Namespace::create(&[]) {
        Ok(ns) => {
            drop(ns);
            None
        }
        Err(e) => Some(format!("cannot make a network namespace: {e:#}")),
    }
}

/// One end-to-end link between this namespace and a [`Namespace`].
#[derive(Debug, Clone)]
pub struct Link {
    pub name: String,
    /// The veth end left in this (the host's) namespace.
    pub host_if: String,
    /// The veth end inside the namespace.
    pub ns_if: String,
    pub host_ip: Ipv4Addr,
    pub ns_ip: Ipv4Addr,
}

/// A network namespace with its loopback up and one veth link per name given, removed
/// (with its links and any process still inside) on drop.
#[derive(Debug)]
pub struct Namespace {
    name: String,
    links: Vec<Link>,
}

impl Namespace {
    /// Makes a namespace with a link per name in `links` (e.g. `["svc", "db"]`), each
    /// up, with an address at both ends.
    pub fn create(links: &[&str]) -> anyhow::Result<Namespace> {
        SWEEP.call_once(sweep_leftovers);
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{pid}-{n}");
        ip(&["netns", "add", &name])?;
        // From here on, Drop removes whatever was made.
        let mut ns = Namespace {
            name,
            links: Vec::new(),
        };
        ns.ip_in(&["link", "set", "lo", "up"])?;
        for (i, link) in links.iter().enumerate() {
            ns.add_link(link, pid, n, i)?;
        }
        Ok(ns)
    }

    fn add_link(&mut self, link: &str, pid: u32, n: u32, i: usize) -> anyhow::Result<()> {
        // Interface names have at most 15 bytes: "dv" + pid + n + link index + end.
        let stem = format!("dv{pid:x}{n:x}{i:x}");
        anyhow::ensure!(stem.len() < 15, "interface name {stem} too long");
        let (host_if, ns_if) = (format!("{stem}h"), format!("{stem}n"));
        let (host_ip, ns_ip) = free_subnet(&(pid, n, i))?;
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        // Recorded at once so that Drop deletes the pair even if a later step fails.
        self.links.push(Link {
            name: link.to_owned(),
            host_if: host_if.clone(),
            ns_if: ns_if.clone(),
            host_ip,
            ns_ip,
        });
        ip(&["link", "set", &ns_if, "netns", &self.name])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if])?;
        ip(&["link", "set", &host_if, "up"])?;
        self.ip_in(&["addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if])?;
        self.ip_in(&["link", "set", &ns_if, "up"])?;
        // Permanent neighbours: a cut must look like silence, not "no route to host".
        let host_mac = mac(None, &host_if)?;
        let ns_mac = mac(Some(&self.name), &ns_if)?;
        self.ip_in(&[
            "neigh",
            "replace",
            &host_ip.to_string(),
            "lladdr",
            &host_mac,
            "dev",
            &ns_if,
            "nud",
            "permanent",
        ])?;
        ip(&[
            "neigh",
            "replace",
            &ns_ip.to_string(),
            "lladdr",
            &ns_mac,
            "dev",
            &host_if,
            "nud",
            "permanent",
        ])?;
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The link made under `name`.
    pub fn link(&self, name: &str) -> &Link {
        self.links
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("namespace {} has no link {name}", self.name))
    }

    /// Cuts link `name`: every packet either way is dropped until [`Namespace::heal`].
    pub fn cut(&self, name: &str) -> anyhow::Result<()> {
        ip(&["link", "set", &self.link(name).host_if, "down"])
    }

    /// Restores link `name`; stalled connections resume with their next retransmission.
    pub fn heal(&self, name: &str) -> anyhow::Result<()> {
        ip(&["link", "set", &self.link(name).host_if, "up"])
    }

    /// A TCP listener on the namespace's own loopback (`127.0.0.1:port`, 0 for any),
    /// owned by this process: a thread enters the namespace (setns(2) applies to the
    /// calling thread only), binds, and ends; the socket stays in the namespace it was
    /// made in. For services a process inside must reach on loopback (Dossier refuses
    /// plain HTTP upstreams elsewhere); a [`proxy::Proxy`] on it forwards out.
    pub fn listen_inside(&self, port: u16) -> anyhow::Result<std::net::TcpListener> {
        let path = format!("/var/run/netns/{}", self.name);
        let handle = std::fs::File::open(&path).with_context(|| format!("cannot open {path}"))?;
        std::thread::scope(|s| {
            s.spawn(|| -> anyhow::Result<std::net::TcpListener> {
                nix::sched::setns(&handle, nix::sched::CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("setns into {path}"))?;
                let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                    .context("bind 127.0.0.1 inside the namespace")?;
                listener.set_nonblocking(true)?;
                Ok(listener)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the thread entering {path} panicked"))?
        })
    }

    fn ip_in(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        remove(&self.name, &self.links);
    }
}

/// Kills what still runs inside (only this process's own namespaces get here), deletes
/// the veth pairs (both ends go together) and the namespace's name. Errors are ignored:
/// this is cleanup, and it runs during unwinding too.
fn remove(name: &str, links: &[Link]) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    for link in links {
        let _ = quiet(&["link", "del", &link.host_if]);
    }
    let _ = quiet(&["netns", "del", name]);
}

/// Removes namespaces named by a process of ours that no longer runs (a test binary
/// killed before its drops ran).
fn sweep_leftovers() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            remove(name, &[]);
        }
    }
}

/// A /30 of [`RANGE`] that no interface here uses: (host end, namespace end). The start
/// is a hash of who asks, so that parallel test processes rarely try the same one.
fn free_subnet(seed: &impl Hash) -> anyhow::Result<(Ipv4Addr, Ipv4Addr)> {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .context("cannot run `ip -4 addr show`")?;
    let used = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut h = DefaultHasher::new();
    seed.hash(&mut h);
    let start = (h.finish() % 16384) as u32;
    for k in 0..16384u32 {
        let subnet = (start + k) % 16384;
        let base = u32::from_be_bytes([RANGE[0], RANGE[1], 0, 0]) + subnet * 4;
        let host = Ipv4Addr::from(base + 1);
        if !used.contains(&format!(" {host}/")) {
            return Ok((host, Ipv4Addr::from(base + 2)));
        }
    }
    anyhow::bail!("no free /30 left in {}.{}.0.0/16", RANGE[0], RANGE[1])
}

fn mac(netns: Option<&str>, interface: &str) -> anyhow::Result<String> {
    let mut args = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-o", "link", "show", interface]);
    let out = Command::new("ip").args(&args).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(str::to_owned)
        .with_context(|| format!("no MAC address for {interface} in `ip link show`: {text}"))
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run `ip` (iproute2)")?;
    anyhow::ensure!(
        out.status.success(),
        "`ip {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

fn quiet(args: &[&str]) -> std::io::Result<std::process::ExitStatus> {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}
