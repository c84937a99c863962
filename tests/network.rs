//! Networking end to end on the real kernel: bridges, veth pairs,
//! nftables NAT and published ports, names on user networks. Every test
//! makes its own network on a subnet of its own (10.231.N.0/24) and checks
//! that removing its containers leaves no link, rule or lease of it.

use capsa_tests::images::load_busybox_probe;
use capsa_tests::registry::Capsa;
use capsa_tests::{wait_for, Env};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// This test's number in the suite's process (unique per test).
fn test_number(env: &Env) -> u32 {
    env.cgroup_parent
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A test's environment, store and busybox image.
fn setup(name: &str) -> (Env, Capsa, &'static str) {
    let env = Env::new(name);
    let c = Capsa::new(&env, "c");
    let img = load_busybox_probe(&env, &c);
    (env, c, img)
}

/// The third octet of this test's `k`-th subnet (10.231.X.0): ten per
/// test, so tests running at once never share one.
fn octet(env: &Env, k: u32) -> u8 {
    (20 + (10 * test_number(env) + k) % 230) as u8
}

/// A network of this test's own (its `k`-th subnet): (name, third octet,
/// bridge device).
fn own_network(env: &Env, c: &Capsa, k: u32) -> (String, u8, String) {
    let octet = octet(env, k);
    let name = format!("net{octet}");
    let subnet = format!("10.231.{octet}.0/24");
    c.ok(&["network", "create", "--subnet", &subnet, &name]);
    let bridge = bridge_of(c, &name);
    (name, octet, bridge)
}

fn bridge_of(c: &Capsa, net: &str) -> String {
    let v: Value = serde_json::from_str(&c.ok(&["network", "inspect", net])).unwrap();
    v[0]["Bridge"].as_str().unwrap().to_string()
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// No bridge, veth or table entry of this network is left (the monitor
/// deletes links just after it reports the exit).
fn assert_network_gone(bridge: &str, subnet_octet: u8) {
    assert!(
        wait_for(10, || !link_exists(bridge)),
        "bridge {bridge} left behind"
    );
    let links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    // The entries go just after the link, under a host-wide lock that
    // other tests' networks may hold for a moment.
    let table = || {
        let o = std::process::Command::new("nft")
            .args(["list", "table", "inet", "capsa"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let subnet = format!("10.231.{subnet_octet}.");
    assert!(
        wait_for(10, || {
            let t = table();
            !t.contains(bridge) && !t.contains(&subnet)
        }),
        "table still names {bridge} or {subnet}0/24:\n{}",
        table()
    );
    // Our veths are veth<8 hex><n>; none may be a port of a missing bridge.
    for l in links.iter().filter(|l| l.starts_with("veth")) {
        let master = std::fs::read_link(format!("/sys/class/net/{l}/master")).ok();
        assert!(
            master.is_none_or(|m| !m.ends_with(bridge)),
            "veth {l} still on {bridge}"
        );
    }
}

/// An HTTP request for busybox nc.
const GET: &str = r"printf 'GET / HTTP/1.0\r\n\r\n'";

/// A shell command that asks `host` for its page on port 80 (busybox nc
/// speaks the HTTP: busybox's wget crashes in this static build).
fn get_page(host: &str) -> String {
    format!("{GET} | busybox nc -w 3 {host} 80")
}

/// Run `script` in a new `--rm` container on `net` (`extra` flags before
/// the image): what it printed.
fn sh_on(c: &Capsa, img: &str, net: &str, extra: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm", "--network", net];
    args.extend_from_slice(extra);
    args.extend([img, "sh", "-c", script]);
    String::from_utf8_lossy(&c.run(&args).stdout).into_owned()
}

fn http_get(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// `capsa port NAME PORT`: the host address:port lines.
fn published(c: &Capsa, name: &str, port: &str) -> Vec<String> {
    c.ok(&["port", name, port])
        .lines()
        .map(str::to_string)
        .collect()
}

fn web(env: &Env, c: &Capsa, img: &str, net: &str, name: &str, ports: &[&str]) -> String {
    let www = env.dir.join(format!("www-{name}"));
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), format!("hello from {name}\n")).unwrap();
    let vol = format!("{}:/www:ro", www.display());
    let mut args = vec!["run", "-d", "--network", net, "--name", name, "-v", &vol];
    for p in ports {
        args.extend(["-p", p]);
    }
    args.extend([img, "busybox", "httpd", "-f", "-p", "80", "-h", "/www"]);
    c.ok(&args).trim().to_string()
}

#[test]
fn published_ports_reach_a_container_from_localhost_the_bridge_and_outside() {
    let (env, c, img) = setup("net-ports");
    let (net, octet, bridge) = own_network(&env, &c, 0);
    web(&env, &c, img, &net, "web", &["127.0.0.1::80", "80"]);
    let lines = published(&c, "web", "80/tcp");
    assert_eq!(lines.len(), 2, "{lines:?}");
    let local = lines
        .iter()
        .find(|l| l.starts_with("127.0.0.1:"))
        .unwrap()
        .clone();
    let any_port = lines
        .iter()
        .find(|l| l.starts_with("0.0.0.0:"))
        .unwrap()
        .trim_start_matches("0.0.0.0:")
        .to_string();
    let gateway = format!("10.231.{octet}.1");
    let container = format!("10.231.{octet}.2:80");
    for addr in [local.clone(), format!("{gateway}:{any_port}"), container] {
        assert!(
            wait_for(10, || http_get(&addr)
                .is_some_and(|r| r.contains("hello from web"))),
            "no answer through {addr}"
        );
    }
    // From another host: a namespace of the test's own behind a veth.
    let peer = format!("pn{octet}");
    let run = |args: &[&str]| {
        let o = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["netns", "add", &peer]);
    let cleanup = scopeguard(|| {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &format!("vp{octet}")])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &format!("pn{octet}")])
            .status();
    });
    run(&[
        "link",
        "add",
        &format!("vp{octet}"),
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &peer,
    ]);
    run(&[
        "addr",
        "add",
        &format!("10.232.{octet}.1/30"),
        "dev",
        &format!("vp{octet}"),
    ]);
    run(&["link", "set", &format!("vp{octet}"), "up"]);
    run(&[
        "-n",
        &peer,
        "addr",
        "add",
        &format!("10.232.{octet}.2/30"),
        "dev",
        "eth0",
    ]);
    run(&["-n", &peer, "link", "set", "eth0", "up"]);
    let url = format!("10.232.{octet}.1 {any_port}");
    let from_outside = wait_for(10, || {
        std::process::Command::new("ip")
            .args(["netns", "exec", &peer, "busybox", "sh", "-c"])
            .arg(format!("{GET} | busybox nc -w 2 {url}"))
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("hello from web"))
    });
    drop(cleanup);
    assert!(from_outside, "no answer from another host through {url}");
    // Taken ports: by a host socket, and by another container.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let by_host = format!("127.0.0.1:{}:80", taken.local_addr().unwrap().port());
    let by_container = format!("{local}:80");
    for p in [by_host, by_container] {
        let err = c.fails(&[
            "run",
            "-d",
            "--network",
            &net,
            "-p",
            &p,
            img,
            "sleep",
            "100",
        ]);
        assert!(err.contains("already in use"), "{p}: {err}");
    }
    c.ok(&["container", "prune"]);
    c.ok(&["rm", "-f", "web"]);
    assert!(http_get(&local).is_none(), "{local} still answers");
    assert_network_gone(&bridge, octet);
    c.ok(&["network", "rm", &net]);
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct G<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for G<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f()
            }
        }
    }
    G(Some(f))
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_name() {
    let (env, c, img) = setup("net-names");
    let (net, octet, bridge) = own_network(&env, &c, 0);
    web(&env, &c, img, &net, "web", &[]);
    // By name, through the resolver of the C library.
    let got = sh_on(&c, img, &net, &[], &get_page("web"));
    assert!(got.contains("hello from web"), "{got}");
    // The traffic shows in stats, from the container's own devices.
    let stats: Value =
        serde_json::from_str(&c.ok(&["stats", "--no-stream", "--format", "json", "web"])).unwrap();
    assert!(
        stats[0]["NetInput"].as_u64().unwrap() > 0 && stats[0]["NetOutput"].as_u64().unwrap() > 0,
        "{stats}"
    );
    c.ok(&[
        "run",
        "-d",
        "--network",
        &net,
        "--name",
        "client",
        img,
        "sleep",
        "100",
    ]);
    let hosts = c.ok(&["exec", "web", "busybox", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains("client"),
        "web's hosts lacks the newcomer:\n{hosts}"
    );
    // Only running containers are named: a created one is not, a stopped
    // one no longer is, and is again once started.
    c.ok(&[
        "create",
        "--network",
        &net,
        "--name",
        "idle",
        img,
        "sleep",
        "100",
    ]);
    let web_hosts = || c.ok(&["exec", "web", "busybox", "cat", "/etc/hosts"]);
    assert!(!web_hosts().contains("idle"), "{}", web_hosts());
    c.ok(&["stop", "-t", "1", "client"]);
    assert!(
        wait_for(5, || !web_hosts().contains("client")),
        "a stopped container is still named:\n{}",
        web_hosts()
    );
    c.ok(&["start", "client"]);
    assert!(web_hosts().contains("client"), "{}", web_hosts());
    let own = c.ok(&["exec", "client", "busybox", "cat", "/etc/hosts"]);
    assert!(
        own.contains("web"),
        "the restarted container lacks its peer:\n{own}"
    );
    c.ok(&["rm", "idle"]);
    let v: Value = serde_json::from_str(&c.ok(&["network", "inspect", &net])).unwrap();
    assert_eq!(v[0]["Containers"].as_object().unwrap().len(), 2);
    let err = c.fails(&["network", "rm", &net]);
    assert!(err.contains("has containers"), "{err}");
    // A second network, connected and disconnected while running.
    let (net2, octet2, _) = own_network(&env, &c, 1);
    c.ok(&["network", "connect", &net2, "client"]);
    let ip = c.ok(&[
        "exec", "client", "busybox", "ip", "-o", "addr", "show", "eth1",
    ]);
    assert!(ip.contains(&format!("10.231.{octet2}.")), "{ip}");
    c.ok(&["network", "disconnect", &net2, "client"]);
    let o = c.run(&["exec", "client", "busybox", "ip", "link", "show", "eth1"]);
    assert!(!o.status.success(), "eth1 still there after disconnect");
    c.ok(&["rm", "-f", "client"]);
    let hosts = c.ok(&["exec", "web", "busybox", "cat", "/etc/hosts"]);
    assert!(
        !hosts.contains("client"),
        "a removed container is still named:\n{hosts}"
    );
    c.ok(&["rm", "-f", "web"]);
    assert_network_gone(&bridge, octet);
    c.ok(&["network", "rm", &net, &net2]);
    let ls = c.ok(&["network", "ls"]);
    assert!(!ls.contains(&net), "{ls}");
}

#[test]
fn none_has_only_loopback_container_shares_and_bridge_is_the_default() {
    let (env, c, img) = setup("net-modes");
    let links = c.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        img,
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), vec!["lo"]);
    let (net, octet, bridge) = own_network(&env, &c, 0);
    c.ok(&[
        "run",
        "-d",
        "--network",
        &net,
        "--name",
        "a",
        img,
        "sleep",
        "100",
    ]);
    let ns_a = c.ok(&["exec", "a", "busybox", "readlink", "/proc/self/ns/net"]);
    let ns_b = c.ok(&[
        "run",
        "--rm",
        "--network",
        "container:a",
        img,
        "busybox",
        "readlink",
        "/proc/self/ns/net",
    ]);
    assert_eq!(ns_a, ns_b, "container:a does not share a's namespace");
    let addr = c.ok(&[
        "run",
        "--rm",
        "--network",
        "container:a",
        img,
        "busybox",
        "ip",
        "-o",
        "addr",
    ]);
    assert!(addr.contains(&format!("10.231.{octet}.2")), "{addr}");
    c.ok(&["rm", "-f", "a"]);
    assert_network_gone(&bridge, octet);
    c.ok(&["network", "rm", &net]);
    // With no --network (and no CAPSA_NETWORK), the default bridge.
    let o = c
        .cmd(&[
            "run", "--rm", img, "busybox", "ip", "-o", "-4", "addr", "show", "eth0",
        ])
        .env_remove("CAPSA_NETWORK")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("10.99."),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        wait_for(10, || !link_exists("capsa0")),
        "the default bridge outlived its last container"
    );
}

#[test]
fn an_exhausted_subnet_and_bad_networks_are_refused_by_name() {
    let (env, c, img) = setup("net-bad");
    let octet = octet(&env, 0);
    let subnet = format!("10.231.{octet}.0/30");
    c.ok(&["network", "create", "--subnet", &subnet, "tiny"]);
    c.ok(&[
        "run",
        "-d",
        "--network",
        "tiny",
        "--name",
        "one",
        img,
        "sleep",
        "100",
    ]);
    let before = std::fs::read_dir(c.store.join("containers"))
        .unwrap()
        .count();
    let err = c.fails(&["run", "-d", "--network", "tiny", img, "sleep", "100"]);
    assert!(err.contains("exhausted") && err.contains(&subnet), "{err}");
    let after = std::fs::read_dir(c.store.join("containers"))
        .unwrap()
        .count();
    assert_eq!(before, after, "a refused run left a container");
    let err = c.fails(&["network", "create", "--subnet", &subnet, "again"]);
    assert!(err.contains("overlaps") && err.contains("tiny"), "{err}");
    let err = c.fails(&["network", "create", "--subnet", "10.231.1.1/24", "bad"]);
    assert!(err.contains("10.231.1.1/24"), "{err}");
    let err = c.fails(&["run", "--network", "nosuchnet", img, "true"]);
    assert!(err.contains("nosuchnet"), "{err}");
    let err = c.fails(&["run", "--network", "tiny", "-p", "80/sctp", img, "true"]);
    assert!(err.contains("80/sctp"), "{err}");
    let err = c.fails(&["run", "--network", "none", "-p", "80", img, "true"]);
    assert!(err.contains("-p"), "{err}");
    c.ok(&["rm", "-f", "one"]);
    // A missing nft (no nftables package): docker's 125 for a start that
    // failed on the host's side, the tool named, and nothing left.
    let o = c
        .cmd(&["run", "--rm", "--network", "tiny", img, "true"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(err.contains("nft"), "{err}");
    let left = std::fs::read_dir(c.store.join("containers"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "a failed --rm start left its container");
    let bridge = bridge_of(&c, "tiny");
    assert!(wait_for(10, || !link_exists(&bridge)), "{bridge} left");
    c.ok(&["network", "prune"]);
    assert!(!c.ok(&["network", "ls"]).contains("tiny"));
}

#[test]
fn publish_all_puts_the_images_exposed_ports_on_free_host_ports() {
    let env = Env::new("net-expose");
    let c = Capsa::new(&env, "c");
    let layout = env.dir.join("exposing");
    capsa_tests::images::oci_layout_with(
        &layout,
        "exposing",
        &[("amd64", vec![capsa_tests::engines::busybox_rootfs_tar()])],
        serde_json::json!({
            "ExposedPorts": {"80/tcp": {}},
            "Cmd": ["busybox", "httpd", "-f", "-p", "80", "-h", "/www"],
        }),
    );
    c.ok(&["load", "-q", "-i", layout.to_str().unwrap()]);
    let (net, octet, bridge) = own_network(&env, &c, 0);
    let www = env.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "exposed\n").unwrap();
    let vol = format!("{}:/www:ro", www.display());
    let img = "localhost/imported:exposing";
    c.ok(&[
        "run",
        "-d",
        "-P",
        "--network",
        &net,
        "--name",
        "exp",
        "-v",
        &vol,
        "--expose",
        "9090/udp",
        img,
    ]);
    let lines = published(&c, "exp", "80/tcp");
    assert_eq!(lines.len(), 1, "{lines:?}");
    // --expose adds to what -P publishes.
    assert_eq!(published(&c, "exp", "9090/udp").len(), 1);
    let port: u16 = lines[0].trim_start_matches("0.0.0.0:").parse().unwrap();
    assert!(port > 0);
    let addr = format!("127.0.0.1:{port}");
    assert!(
        wait_for(10, || http_get(&addr)
            .is_some_and(|r| r.contains("exposed"))),
        "no answer through {addr}"
    );
    let all = c.ok(&["port", "exp"]);
    assert_eq!(
        all.lines().next(),
        Some(format!("80/tcp -> 0.0.0.0:{port}").as_str())
    );
    assert!(
        all.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("9090/udp -> 0.0.0.0:")),
        "{all}"
    );
    c.ok(&["rm", "-f", "exp"]);
    assert_network_gone(&bridge, octet);
    c.ok(&["network", "rm", &net]);
}

/// A port `a` of 127.0.0.1 with `a + 1` free too (when asked).
fn free_pair() -> u16 {
    (0..100)
        .find_map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
            let a = l.local_addr().ok()?.port();
            std::net::TcpListener::bind(("127.0.0.1", a.checked_add(1)?)).ok()?;
            Some(a)
        })
        .expect("two adjacent free ports")
}

#[test]
fn port_ranges_publish_each_port_or_the_first_free_one() {
    let (env, c, img) = setup("net-ranges");
    let (net, octet, bridge) = own_network(&env, &c, 0);
    let www = env.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "ranged\n").unwrap();
    let vol = format!("{}:/www:ro", www.display());
    let serve = "busybox httpd -p 80 -h /www && busybox httpd -f -p 81 -h /www";
    // A range for a range: each port to its twin.
    let a = free_pair();
    let both = format!("127.0.0.1:{a}-{}:80-81", a + 1);
    c.ok(&[
        "run",
        "-d",
        "--network",
        &net,
        "--name",
        "pair",
        "-v",
        &vol,
        "-p",
        &both,
        img,
        "sh",
        "-c",
        serve,
    ]);
    for (host, ctr) in [(a, 80), (a + 1, 81)] {
        assert_eq!(
            published(&c, "pair", &format!("{ctr}/tcp")),
            [format!("127.0.0.1:{host}")]
        );
        let addr = format!("127.0.0.1:{host}");
        assert!(
            wait_for(10, || http_get(&addr).is_some_and(|r| r.contains("ranged"))),
            "no answer through {addr}"
        );
    }
    // A host range for one port: the first port of it that is free.
    let b = loop {
        let b = free_pair();
        if b.abs_diff(a) > 1 {
            break b;
        }
    };
    let taken = std::net::TcpListener::bind(("127.0.0.1", b)).unwrap();
    let any = format!("127.0.0.1:{b}-{}:80", b + 1);
    c.ok(&[
        "run",
        "-d",
        "--network",
        &net,
        "--name",
        "one",
        "-v",
        &vol,
        "-p",
        &any,
        img,
        "sh",
        "-c",
        serve,
    ]);
    assert_eq!(
        published(&c, "one", "80/tcp"),
        [format!("127.0.0.1:{}", b + 1)]
    );
    let addr = format!("127.0.0.1:{}", b + 1);
    assert!(
        wait_for(10, || http_get(&addr).is_some_and(|r| r.contains("ranged"))),
        "no answer through {addr}"
    );
    // With both taken (one by the host, one by "one"), a third run is
    // refused by name and leaves nothing.
    let e = c.fails(&["run", "--rm", "--network", &net, "-p", &any, img, "true"]);
    assert!(e.contains("every host port of the range"), "{e}");
    drop(taken);
    c.ok(&["rm", "-f", "pair", "one"]);
    assert_eq!(c.ok(&["ps", "-aq"]).trim(), "");
    assert_network_gone(&bridge, octet);
    c.ok(&["network", "rm", &net]);
}

#[test]
fn an_internal_network_keeps_its_traffic_to_itself() {
    let (env, c, img) = setup("net-internal");
    // A web server on an ordinary network, and a client on another: the
    // host routes between them.
    let (open, open_octet, open_bridge) = own_network(&env, &c, 0);
    let (other, other_octet, other_bridge) = own_network(&env, &c, 1);
    web(&env, &c, img, &open, "web", &[]);
    let fetch = get_page(&format!("10.231.{open_octet}.2"));
    assert!(
        wait_for(10, || sh_on(&c, img, &other, &[], &fetch)
            .contains("hello from web")),
        "no route between two ordinary networks, so the test proves nothing"
    );
    // An internal network: no default route in its containers...
    let octet = octet(&env, 2);
    let internal = format!("net{octet}");
    c.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        &format!("10.231.{octet}.0/24"),
        &internal,
    ]);
    let v: Value = serde_json::from_str(&c.ok(&["network", "inspect", &internal])).unwrap();
    assert_eq!(v[0]["Internal"], true, "{v}");
    let bridge = v[0]["Bridge"].as_str().unwrap().to_string();
    let routes = sh_on(&c, img, &internal, &[], "cat /proc/net/route");
    assert!(
        !routes
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some("00000000")),
        "a default route on an internal network:\n{routes}"
    );
    // ...and none works when a container (with NET_ADMIN) adds its own.
    let gateway = format!("10.231.{octet}.1");
    let routed = format!("ip route add default via {gateway} && {fetch}");
    assert!(
        !sh_on(&c, img, &internal, &["--cap-add", "NET_ADMIN"], &routed).contains("hello from web"),
        "traffic left the internal network"
    );
    // Containers of the network still reach each other by name.
    web(&env, &c, img, &internal, "inside", &[]);
    assert!(
        wait_for(10, || sh_on(&c, img, &internal, &[], &get_page("inside"))
            .contains("hello from inside")),
        "no answer from inside by name"
    );
    // Nothing can be published into it.
    let e = c.fails(&["run", "--network", &internal, "-p", "80", img, "true"]);
    assert!(e.contains("internal"), "{e}");
    c.ok(&["rm", "-f", "web", "inside"]);
    assert_eq!(c.ok(&["ps", "-aq"]).trim(), "");
    assert_network_gone(&bridge, octet);
    assert_network_gone(&open_bridge, open_octet);
    assert_network_gone(&other_bridge, other_octet);
    for n in [&open, &other, &internal] {
        c.ok(&["network", "rm", n]);
    }
}

#[test]
fn network_aliases_are_more_names_on_their_own_network() {
    let (env, c, img) = setup("net-alias");
    let (net, octet, bridge) = own_network(&env, &c, 0);
    let (net2, octet2, bridge2) = own_network(&env, &c, 1);
    let www = env.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "aliased\n").unwrap();
    let vol = format!("{}:/www:ro", www.display());
    c.ok(&[
        "run",
        "-d",
        "--network",
        &net,
        "--network-alias",
        "api",
        "--network-alias",
        "api.v1",
        "--name",
        "svc",
        "-v",
        &vol,
        img,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    let fetch = |network: &str, name: &str| {
        wait_for(10, || {
            sh_on(&c, img, network, &[], &get_page(name)).contains("aliased")
        })
    };
    assert!(fetch(&net, "api"), "no answer by the alias api");
    assert!(fetch(&net, "api.v1"), "no answer by the alias api.v1");
    // Aliases belong to a network: one given at connect names it there only.
    c.ok(&["network", "connect", "--alias", "backend", &net2, "svc"]);
    assert!(fetch(&net2, "backend"), "no answer by the alias backend");
    let hosts2 = sh_on(&c, img, &net2, &[], "cat /etc/hosts");
    assert!(
        hosts2.contains("backend") && !hosts2.contains("api"),
        "{hosts2}"
    );
    let v: Value = serde_json::from_str(&c.ok(&["inspect", "svc"])).unwrap();
    let v = if v.is_array() { v[0].clone() } else { v };
    assert_eq!(
        v["NetworkSettings"]["Networks"][&net]["Aliases"],
        serde_json::json!(["api", "api.v1"]),
        "{}",
        v["NetworkSettings"]
    );
    // Bad names, and aliases where nothing is named, are refused.
    let e = c.fails(&[
        "run",
        "--network",
        &net,
        "--network-alias",
        "a b",
        img,
        "true",
    ]);
    assert!(e.contains("--network-alias") && e.contains("a b"), "{e}");
    let e = c.fails(&[
        "run",
        "--network",
        "bridge",
        "--network-alias",
        "x",
        img,
        "true",
    ]);
    assert!(e.contains("--network-alias"), "{e}");
    let e = c.fails(&[
        "run",
        "--network",
        "none",
        "--network-alias",
        "x",
        img,
        "true",
    ]);
    assert!(e.contains("--network-alias"), "{e}");
    c.ok(&["rm", "-f", "svc"]);
    assert_eq!(c.ok(&["ps", "-aq"]).trim(), "");
    assert_network_gone(&bridge, octet);
    assert_network_gone(&bridge2, octet2);
    c.ok(&["network", "rm", &net, &net2]);
}

#[test]
fn a_killed_monitors_network_is_undone_by_the_next_command() {
    let (env, c, img) = setup("net-repair");
    let (net, octet, bridge) = own_network(&env, &c, 0);
    c.ok(&[
        "run",
        "-d",
        "--network",
        &net,
        "-p",
        "127.0.0.1::80",
        "--name",
        "orphan",
        img,
        "sleep",
        "100",
    ]);
    let port = published(&c, "orphan", "80")[0].clone();
    let v: Value = serde_json::from_str(&c.ok(&["inspect", "orphan"])).unwrap();
    for key in ["MonitorPid", "Pid"] {
        let pid = v[0]["State"][key].as_i64().unwrap() as i32;
        assert!(pid > 0, "{key}");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    }
    assert!(wait_for(5, || c.ok(&["ps", "-a"]).contains("Exited (-1)")));
    assert_network_gone(&bridge, octet);
    // The port is free again: a host socket can take it.
    assert!(
        wait_for(5, || std::net::TcpListener::bind(port.as_str()).is_ok()),
        "{port} still taken"
    );
    c.ok(&["rm", "orphan"]);
    c.ok(&["network", "rm", &net]);
}

#[test]
fn an_ipv6_network_gives_addresses_a_route_and_names_in_both_families() {
    let (env, c, img) = setup("net-ipv6");
    let octet = octet(&env, 0);
    let (v4, v6) = (
        format!("10.231.{octet}.0/24"),
        format!("fd00:231:{octet}::/64"),
    );
    let name = format!("six{octet}");
    c.ok(&[
        "network", "create", "--ipv6", "--subnet", &v4, "--subnet", &v6, &name,
    ]);
    let bridge = bridge_of(&c, &name);
    web(&env, &c, img, &name, "web6", &["80"]);
    let addr = c.ok(&[
        "exec", "web6", "busybox", "ip", "-o", "-6", "addr", "show", "eth0",
    ]);
    let ip6 = format!("fd00:231:{octet}::2");
    assert!(addr.contains(&format!("{ip6}/64")), "{addr}");
    let route = c.ok(&["exec", "web6", "busybox", "ip", "-6", "route"]);
    assert!(
        route.contains(&format!("default via fd00:231:{octet}::1")),
        "{route}"
    );
    // The host reaches the container over IPv6 through the bridge.
    let target = format!("[{ip6}]:80");
    assert!(
        wait_for(10, || http_get(&target)
            .is_some_and(|r| r.contains("hello from web6"))),
        "no answer from {target}"
    );
    // A port published on every address answers on the host's IPv6
    // addresses too (here the bridge's own), as on its IPv4 ones.
    let port = published(&c, "web6", "80/tcp")[0]
        .trim_start_matches("0.0.0.0:")
        .to_string();
    for addr in [
        format!("[fd00:231:{octet}::1]:{port}"),
        format!("127.0.0.1:{port}"),
    ] {
        assert!(
            wait_for(10, || http_get(&addr)
                .is_some_and(|r| r.contains("hello from web6"))),
            "no answer through {addr}"
        );
    }
    // A port on one IPv6 address of the host answers there only.
    let gw6 = format!("fd00:231:{octet}::1");
    web(&env, &c, img, &name, "one6", &[&format!("[{gw6}]::80")]);
    let lines = published(&c, "one6", "80/tcp");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let port = lines[0]
        .strip_prefix(&format!("[{gw6}]:"))
        .unwrap_or_else(|| panic!("{lines:?}"))
        .to_string();
    let there = format!("[{gw6}]:{port}");
    assert!(
        wait_for(10, || http_get(&there)
            .is_some_and(|r| r.contains("hello from one6"))),
        "no answer through {there}"
    );
    assert!(
        http_get(&format!("127.0.0.1:{port}")).is_none(),
        "published on IPv4 too"
    );
    let e = c.fails(&[
        "run",
        "--network",
        &name,
        "-p",
        "[::1]:8080:80",
        img,
        "true",
    ]);
    assert!(e.contains("::1"), "{e}");
    c.ok(&["rm", "-f", "one6"]);
    // Another container finds it by name, over IPv6.
    let ping = c.ok(&[
        "run",
        "--rm",
        "--network",
        &name,
        img,
        "busybox",
        "ping6",
        "-c1",
        "-W2",
        "web6",
    ]);
    assert!(
        ping.contains(&ip6) && ping.contains("1 packets received"),
        "{ping}"
    );
    let v: Value = serde_json::from_str(&c.ok(&["inspect", "web6"])).unwrap();
    assert_eq!(
        v[0]["NetworkSettings"]["Networks"][&name]["GlobalIPv6Address"],
        ip6.as_str()
    );
    // A second IPv6 subnet that overlaps is refused by name.
    let err = c.fails(&[
        "network",
        "create",
        "--subnet",
        &format!("fd00:231:{octet}::/48"),
        "clash6",
    ]);
    assert!(err.contains("overlaps") && err.contains(&name), "{err}");
    c.ok(&["rm", "-f", "web6"]);
    assert_network_gone(&bridge, octet);
    c.ok(&["network", "rm", &name]);
}

/// Whether a datagram reaches `sock` within a second.
fn receives(sock: &std::net::UdpSocket) -> Option<String> {
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 64];
    sock.recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn a_container_cannot_reach_the_hosts_loopback_services_by_forged_packets() {
    // CVE-2020-8558's class: route_localnet on a bridge (which publishing
    // on 127.0.0.1 needs) lets the kernel accept packets for 127.0.0.0/8
    // that arrive from the bridge. A container with CAP_NET_RAW (docker's
    // default set) forges one to the host's loopback-only service.
    let (env, c, img) = setup("net-localnet");
    let (net, octet, _) = own_network(&env, &c, 0);
    let service = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = service.local_addr().unwrap().port();
    // The same forgery to the bridge's own address must arrive: it proves
    // the forged frames are well made, so the silence above means a drop.
    let control = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let control_port = control.local_addr().unwrap().port();
    let gw = format!("10.231.{octet}.1");
    let attack = format!(
        "busybox ping -c1 -W2 {gw} >/dev/null; /probe forge-udp 127.0.0.1 {port} escaped && /probe forge-udp {gw} {control_port} delivered"
    );
    // A port on 127.0.0.1 turns route_localnet on for the bridge: what
    // the guard is for.
    let forge = || {
        let o = c.run(&[
            "run",
            "--rm",
            "--network",
            &net,
            "-p",
            "127.0.0.1::80",
            img,
            "sh",
            "-c",
            &attack,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(receives(&control).as_deref(), Some("delivered"));
        assert_eq!(
            receives(&service),
            None,
            "a forged packet reached 127.0.0.1:{port}"
        );
    };
    forge();
    // The guard is asserted on every start, not only when the table is
    // made: a ruleset reload that dropped it (here only our guard chain is
    // flushed, not the host's ruleset) does not open the way.
    c.ok(&[
        "run",
        "-d",
        "--name",
        "keeper",
        "--network",
        &net,
        img,
        "sleep",
        "100",
    ]);
    let flushed = std::process::Command::new("nft")
        .args(["flush", "chain", "inet", "capsa", "guard"])
        .status()
        .unwrap();
    assert!(flushed.success());
    forge();
    c.ok(&["rm", "-f", "keeper"]);
    c.ok(&["network", "rm", &net]);
}

/// route_localnet only where ports are published: a bridge of containers
/// without ports never accepts 127.0.0.0/8 from them.
#[test]
fn route_localnet_is_on_only_for_bridges_that_publish_ports() {
    let (env, c, img) = setup("net-rln");
    let (net, _octet, bridge) = own_network(&env, &c, 0);
    let rln = || {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"))
            .unwrap()
            .trim()
            .to_string()
    };
    c.ok(&[
        "run",
        "-d",
        "--name",
        "quiet",
        "--network",
        &net,
        img,
        "sleep",
        "100",
    ]);
    assert_eq!(rln(), "0", "route_localnet on a bridge without ports");
    c.ok(&[
        "run",
        "-d",
        "--name",
        "pub",
        "--network",
        &net,
        "-p",
        "127.0.0.1::80",
        img,
        "sleep",
        "100",
    ]);
    assert_eq!(rln(), "1");
    let v: Value = serde_json::from_str(&c.ok(&["network", "inspect", &net])).unwrap();
    assert_eq!(v[0]["LoopbackGuard"]["RouteLocalnet"], true, "{v}");
    assert_eq!(v[0]["LoopbackGuard"]["DropRule"], true, "{v}");
    let info: Value = serde_json::from_str(&c.ok(&["info", "--format", "json"])).unwrap();
    let on = info["LoopbackGuard"]["RouteLocalnet"].as_array().unwrap();
    assert!(on.iter().any(|b| b == bridge.as_str()), "{info}");
    assert_eq!(info["LoopbackGuard"]["DropRule"], true, "{info}");
    // The last port on 127.0.0.1 gone, the bridge stops routing it while
    // its other container runs on.
    c.ok(&["rm", "-f", "pub"]);
    assert!(
        wait_for(10, || rln() == "0"),
        "route_localnet left on with no port"
    );
    c.ok(&["rm", "-f", "quiet"]);
    c.ok(&["network", "rm", &net]);
}
