//! The hosts files: a container's own, and on user networks its peers',
//! rewritten in place as containers come and go.

use super::*;

/// A container on a user network, as the others' hosts files name it.
struct Member {
    id: String,
    name: String,
    hostname: String,
    /// Its hosts lines on this network (IPv4, and IPv6 when it has one).
    lines: String,
}

/// Who runs on each user network, read once per command (each lease file
/// and record once, however many hosts files are written). A created or
/// stopped container is not named, as docker's resolver does not name it.
#[derive(Default)]
struct Rosters(std::collections::HashMap<String, Vec<Member>>);

impl Rosters {
    fn of(&mut self, engine: &Engine, network: &str) -> &[Member] {
        self.0.entry(network.to_string()).or_insert_with(|| {
            leases(engine, network)
                .into_iter()
                .filter_map(|(dir, ep)| {
                    let id = dir.file_name()?.to_string_lossy().into_owned();
                    let c = engine
                        .load(&id)
                        .ok()
                        .filter(|c| matches!(c.state.status, Status::Running | Status::Paused))?;
                    let lines = std::iter::once(std::net::IpAddr::from(ep.ip))
                        .chain(ep.ip6.map(Into::into))
                        .map(|ip| {
                            let mut names = vec![c.name.clone(), c.short_id().to_string()];
                            names.extend(ep.aliases.iter().cloned());
                            format!("{ip}\t{}\n", names.join(" "))
                        })
                        .collect();
                    Some(Member {
                        hostname: c.hostname(),
                        name: c.name,
                        id,
                        lines,
                    })
                })
                .collect()
        })
    }

    /// The hosts file of container `id`: itself, then (on user networks)
    /// the other containers of its networks.
    fn hosts_file(
        &mut self,
        engine: &Engine,
        id: &str,
        hostname: &str,
        name: &str,
        eps: &[Endpoint],
        extra: &str,
    ) -> String {
        let mut s =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        match eps.first() {
            Some(e) => {
                s.push_str(&format!("{}\t{hostname} {name}\n", e.ip));
                if let Some(ip6) = e.ip6 {
                    s.push_str(&format!("{ip6}\t{hostname} {name}\n"));
                }
            }
            None => s.push_str(&format!("127.0.1.1\t{hostname}\n")),
        }
        for ep in eps.iter().filter(|e| e.network != DEFAULT) {
            for m in self.of(engine, &ep.network).iter().filter(|m| m.id != id) {
                s.push_str(&m.lines);
            }
        }
        s.push_str(extra);
        s
    }
}

/// The hosts file of a container: itself, then (on user networks) the
/// other containers of its networks.
pub fn hosts_file(
    engine: &Engine,
    id: &str,
    hostname: &str,
    name: &str,
    eps: &[Endpoint],
    extra: &str,
) -> String {
    Rosters::default().hosts_file(engine, id, hostname, name, eps, extra)
}

/// The lines `--add-host` asks for, in /etc/hosts's form.
pub fn added_hosts(o: &crate::RunOptions) -> String {
    o.add_hosts
        .iter()
        .map(|h| format!("{}\t{}\n", h.get().ip, h.get().name))
        .collect()
}

/// Rewrite the hosts files of every other container running on `c`'s user
/// `networks` (after `c` joined, left, started or stopped), and with
/// `own` (its endpoints) `c`'s own too: in place, since each is a bind
/// mount in its container. One roster for all of them.
pub fn refresh_peers(
    engine: &Engine,
    c: &Container,
    networks: &[String],
    own: Option<&[Endpoint]>,
) {
    let mut rosters = Rosters::default();
    let hosts = |id: &str| engine.run.join("files").join(id).join("hosts");
    if let Some(eps) = own {
        let path = hosts(&c.id);
        if path.exists() {
            let extra = added_hosts(&c.options);
            let text = rosters.hosts_file(engine, &c.id, &c.hostname(), &c.name, eps, &extra);
            rewrite_in_place(&path, &text);
        }
    }
    for net in networks.iter().filter(|n| n.as_str() != DEFAULT) {
        let peers: Vec<(String, String, String)> = rosters
            .of(engine, net)
            .iter()
            .filter(|m| m.id != c.id)
            .map(|m| (m.id.clone(), m.hostname.clone(), m.name.clone()))
            .collect();
        for (id, hostname, name) in peers {
            let path = hosts(&id);
            if !path.exists() {
                continue;
            }
            let eps = endpoints(&engine.containers().join(&id));
            let extra = engine
                .load(&id)
                .map(|p| added_hosts(&p.options))
                .unwrap_or_default();
            let text = rosters.hosts_file(engine, &id, &hostname, &name, &eps, &extra);
            rewrite_in_place(&path, &text);
        }
    }
}

/// Replace a hosts file's text in place (it is bind-mounted in its
/// container: a rename would leave the container the old file). Left
/// alone when the text is the same, as at most starts; else written from
/// the start, then cut to length, so that a process reading it meanwhile
/// never finds it empty (a truncate first made a container starting on a
/// network find none of its peers: CI saw `ping6: bad address`).
fn rewrite_in_place(path: &std::path::Path, text: &str) {
    use std::io::{Seek, Write};
    if std::fs::read(path).is_ok_and(|old| old == text.as_bytes()) {
        return;
    }
    let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path) else {
        return;
    };
    let _ = f
        .seek(std::io::SeekFrom::Start(0))
        .and_then(|_| f.write_all(text.as_bytes()))
        .and_then(|()| f.set_len(text.len() as u64));
}

/// `c` started or stopped (its record says so), on endpoints `eps`: its
/// own hosts file and those of the others on its user networks now name
/// whoever runs. Nothing to do (and no I/O) without a user network.
pub fn running_changed(engine: &Engine, c: &Container, eps: &[Endpoint]) {
    let networks: Vec<String> = eps
        .iter()
        .map(|e| e.network.clone())
        .filter(|n| n != DEFAULT)
        .collect();
    if !networks.is_empty() {
        refresh_peers(engine, c, &networks, Some(eps));
    }
}

#[cfg(test)]
mod tests {
    /// A reader of a hosts file while it is rewritten (a container's
    /// resolver, as peers come and go) never finds it empty.
    #[test]
    fn a_hosts_file_rewritten_in_place_is_never_empty_to_a_reader() {
        let path = std::env::temp_dir().join(format!("capsa-hosts-{}", std::process::id()));
        let long = format!("127.0.0.1\tlocalhost\n{}", "10.0.0.2\tpeer\n".repeat(50));
        let short = "127.0.0.1\tlocalhost\n10.0.0.3\tother\n".to_string();
        std::fs::write(&path, &long).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut empty = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    if !text.starts_with("127.0.0.1\tlocalhost\n") {
                        empty += 1;
                    }
                }
                empty
            })
        };
        for i in 0..5000 {
            super::rewrite_in_place(&path, if i % 2 == 0 { &short } else { &long });
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(reader.join().unwrap(), 0, "a reader found the file empty");
        std::fs::remove_file(&path).unwrap();
    }
}
