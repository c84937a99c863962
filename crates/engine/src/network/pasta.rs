//! Rootless networking through `pasta` (Debian's passt): a user-mode
//! TCP/IP stack that gives the container's own network namespace a tap
//! device with the host's addresses, and carries its traffic over
//! ordinary sockets of the host. No bridge, veth or nftables rule, so no
//! privilege of the host's root. Published ports are sockets pasta binds
//! on the host and splices into the namespace.
//!
//! Why pasta over slirp4netns: it needs no NAT table of its own (the
//! container sees the host's address and routes), it forwards published
//! ports itself (slirp4netns needs an API socket and a call per port),
//! and it is the default of podman 5.

use super::*;
use std::os::fd::{AsRawFd, OwnedFd};

/// A running pasta, stopped when dropped (the container is gone).
#[derive(Debug)]
pub struct Pasta {
    pidfd: OwnedFd,
}

impl Drop for Pasta {
    fn drop(&mut self) {
        let _ = capsa_sys::process::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGTERM);
    }
}

/// pasta's port spec for `ports` of one protocol: `none`, or
/// `[ADDR/]HOST:CONTAINER,...`.
fn spec(ports: &[capsa_network::Published], proto: capsa_network::ports::Proto) -> String {
    let list: Vec<String> = ports
        .iter()
        .filter(|p| p.proto == proto)
        .map(|p| {
            let addr = p.host_ip.map(|a| format!("{a}/")).unwrap_or_default();
            format!("{addr}{}:{}", p.host_port, p.container_port)
        })
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(",")
    }
}

/// Connect the network namespace of `pid` through pasta, publishing
/// `ports` (a host port of 0 gets a free one first). Returns once pasta
/// has configured the namespace and bound the ports.
pub fn start(
    dir: &std::path::Path,
    pid: i32,
    ports: &mut [capsa_network::Published],
) -> Result<Pasta> {
    for p in ports
        .iter_mut()
        .filter(|p| p.host_port == 0 || p.host_port_max.is_some())
    {
        // A free port, found by binding it; pasta binds it again.
        drop(capsa_network::ports::reserve(p).map_err(net_err)?);
    }
    if !crate::rootless::tun_usable() {
        return Err(Error::Refused {
            what: "pasta".into(),
            reason: "/dev/net/tun cannot be opened by this user (udev makes it mode 0666; as root: chmod 666 /dev/net/tun); or use --network none or host".into(),
        });
    }
    let pidfile = dir.join("pasta.pid");
    let _ = std::fs::remove_file(&pidfile);
    use capsa_network::ports::Proto;
    // pasta drops CAP_SYS_PTRACE before it opens the namespace, and a
    // container's /proc/PID/ns is then out of its reach: it gets the
    // namespace as its stdin instead, opened here, and reopens it through
    // its own fd table.
    let ns_path = format!("/proc/{pid}/ns/net");
    let ns = std::fs::File::open(&ns_path).at("open", &ns_path)?;
    let out = std::process::Command::new("pasta")
        // We are root of the user namespace, that is the user on the host:
        // pasta would drop to "nobody" there, who cannot open the netns.
        .args(["--config-net", "--quiet", "--netns-only", "--runas", "0:0"])
        .args(["--netns", "/proc/self/fd/0"])
        // Security (CVE-2020-8558's class): the host's loopback services
        // stay out of the container's reach: no gateway address mapped to
        // the host, no ports forwarded from the namespace to the host.
        .args(["--no-map-gw", "-T", "none", "-U", "none"])
        .args(["-t", &spec(ports, Proto::Tcp), "-u", &spec(ports, Proto::Udp)])
        .arg("--pid")
        .arg(&pidfile)
        .stdin(ns)
        .output()
        .map_err(|e| Error::Refused {
            what: "pasta".into(),
            reason: format!("{e}: rootless networking needs it (Debian's passt package), or use --network none or host"),
        })?;
    if !out.status.success() {
        return Err(Error::Refused {
            what: "pasta".into(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    // pasta forks into the background once the namespace is set up; the
    // pid it wrote is its own, a child of ours no longer.
    let daemon: i32 = std::fs::read_to_string(&pidfile)
        .at("read", &pidfile)?
        .trim()
        .parse()
        .map_err(|_| Error::Data {
            what: pidfile.display().to_string(),
            message: "not a pid".into(),
        })?;
    match capsa_sys::process::pidfd_open(nix::unistd::Pid::from_raw(daemon)) {
        Ok(pidfd) => Ok(Pasta { pidfd }),
        Err(e) => {
            // Not left running for a container that will not start.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(daemon),
                nix::sys::signal::Signal::SIGTERM,
            );
            Err(Error::sys("pidfd_open", "pasta", e))
        }
    }
}
