//! A real registry (Debian's docker-registry) of the test's own on
//! 127.0.0.1, plain or with TLS (a self-signed certificate made here) and
//! htpasswd auth; and the `capsa` command with a store of the test's own.

use crate::Env;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// A running docker-registry; killed on drop.
pub struct Registry {
    pub addr: String,
    pub dir: PathBuf,
    /// The CA (self-signed server certificate) for the TLS registry.
    pub cert: Option<PathBuf>,
    child: Child,
    /// The token server of a token-auth registry.
    pub token: Option<TokenServer>,
}

/// A self-signed certificate (and its key) for `cn`, valid for a day.
fn self_signed(key: &std::path::Path, cert: &std::path::Path, cn: &str) {
    let o = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .arg("-subj")
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output()
        .expect("openssl");
    assert!(
        o.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Registry {
    /// A plain HTTP registry, or None (with a note) without docker-registry.
    pub fn plain(env: &Env, name: &str) -> Option<Registry> {
        Registry::start(env, name, None)
    }

    /// A TLS registry with htpasswd auth for `user`/`password`.
    pub fn tls_auth(env: &Env, name: &str, user: &str, password: &str) -> Option<Registry> {
        Registry::start(env, name, Some((user, password)))
    }

    /// A plain registry that wants bearer tokens from a token server of
    /// the test's own, which hands them to `user`/`password` only.
    pub fn token_auth(env: &Env, name: &str, user: &str, password: &str) -> Option<Registry> {
        let mut r = Registry::start_with(env, name, None, Some((user, password)))?;
        r.token.as_mut()?;
        Some(r)
    }

    fn start(env: &Env, name: &str, auth: Option<(&str, &str)>) -> Option<Registry> {
        Registry::start_with(env, name, auth, None)
    }

    fn start_with(
        env: &Env,
        name: &str,
        auth: Option<(&str, &str)>,
        token: Option<(&str, &str)>,
    ) -> Option<Registry> {
        if !crate::require(
            std::path::Path::new("/usr/bin/docker-registry").exists(),
            "docker-registry",
        ) {
            return None;
        }
        let dir = env.dir.join(format!("registry-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        );
        let mut cert = None;
        if let Some((user, password)) = auth {
            // A CA of the test's own, and a server certificate it signs.
            let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
            let (c, k, csr) = (
                dir.join("cert.pem"),
                dir.join("key.pem"),
                dir.join("req.csr"),
            );
            let ext = dir.join("ext.cnf");
            std::fs::write(
                &ext,
                "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
            )
            .unwrap();
            let openssl = |args: &[&str]| {
                let o = Command::new("openssl")
                    .args(args)
                    .current_dir(&dir)
                    .output()
                    .unwrap();
                assert!(
                    o.status.success(),
                    "openssl {args:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            };
            let p = |p: &PathBuf| p.display().to_string();
            self_signed(&ca_key, &ca, "capsa test CA");
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                &p(&k),
                "-out",
                &p(&csr),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &p(&csr),
                "-CA",
                &p(&ca),
                "-CAkey",
                &p(&ca_key),
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &p(&ext),
                "-out",
                &p(&c),
            ]);
            let o = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd (apache2-utils)");
            assert!(o.status.success());
            std::fs::write(dir.join("htpasswd"), &o.stdout).unwrap();
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: capsa-test\n    path: {}\n",
                c.display(),
                k.display(),
                dir.join("htpasswd").display()
            ));
            cert = Some(ca);
        }
        let mut token_server = None;
        if let Some((user, password)) = token {
            let server = TokenServer::start(&dir, user, password);
            config.push_str(&format!(
                "auth:\n  token:\n    realm: http://{}/token\n    service: capsa-test\n    issuer: capsa-test-issuer\n    rootcertbundle: {}\n",
                server.addr,
                dir.join("token-cert.pem").display()
            ));
            token_server = Some(server);
        }
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(std::fs::File::create(dir.join("log")).unwrap())
            .stderr(Stdio::from(std::fs::File::create(dir.join("err")).unwrap()))
            .spawn()
            .unwrap();
        let r = Registry {
            addr: addr.clone(),
            dir,
            cert,
            child,
            token: token_server,
        };
        assert!(
            crate::wait_for(20, || TcpStream::connect(&addr).is_ok()),
            "registry did not listen on {addr}: {}",
            std::fs::read_to_string(r.dir.join("err")).unwrap_or_default()
        );
        Some(r)
    }

    /// Where the registry keeps a blob's bytes.
    pub fn blob_data(&self, hex: &str) -> PathBuf {
        self.dir
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The capsa binary under test.
pub fn capsa_bin() -> PathBuf {
    crate::bin_dir().join("capsa")
}

/// `capsa` with a store, run directory, cgroup parent and auth file of the
/// test's own (never the user's). Containers it made are removed on drop.
pub struct Capsa {
    pub store: PathBuf,
    pub run: PathBuf,
    pub auth: PathBuf,
    pub cgroup_parent: String,
    /// The capsa binary (a copy, for tests that attack it).
    pub bin: PathBuf,
}

impl Capsa {
    pub fn new(env: &Env, name: &str) -> Capsa {
        Capsa {
            store: env.dir.join(format!("store-{name}")),
            run: env.dir.join(format!("run-{name}")),
            auth: env.dir.join(format!("auth-{name}.json")),
            cgroup_parent: format!("/{}", env.cgroup_parent),
            bin: capsa_bin(),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("CAPSA_ROOT", &self.store)
            .env("CAPSA_RUN", &self.run)
            .env("CAPSA_CGROUP_PARENT", &self.cgroup_parent)
            .env("REGISTRY_AUTH_FILE", &self.auth)
            // Bridge networks are the host's: a test that wants one makes
            // its own (tests/network.rs); the others run without.
            .env("CAPSA_NETWORK", "none")
            .env("HOME", self.store.parent().unwrap())
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("spawn capsa")
    }

    /// Run and require success; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        crate::succeeded(&format!("capsa {args:?}"), &self.run(args))
    }

    /// Run and require failure; stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        crate::failed(&format!("capsa {args:?}"), &self.run(args))
    }

    /// `inspect NAME`, the object itself (not the list around it).
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let out = self.ok(&["inspect", name]);
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        v[0].clone()
    }

    pub fn store(&self) -> capsa_image::Store {
        capsa_image::Store::open(&self.store).unwrap()
    }
}

impl Drop for Capsa {
    fn drop(&mut self) {
        if !self.store.join("containers").exists() {
            return;
        }
        let ids = self.run(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.run(&["rm", "-f", id]);
        }
    }
}

/// A bearer-token server as the distribution spec describes (what
/// auth.docker.io does): a GET with Basic credentials returns a JWT,
/// signed with a key whose certificate the registry trusts, granting the
/// scopes asked for. Without the right credentials: 401.
/// A token request: whether it carried credentials, and its scopes.
pub type TokenRequest = (bool, Vec<String>);

pub struct TokenServer {
    pub addr: String,
    /// Token requests seen, as `(had credentials, scopes)`.
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<TokenRequest>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn b64url(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl TokenServer {
    fn start(dir: &std::path::Path, user: &str, password: &str) -> TokenServer {
        use base64::Engine as _;
        let (cert, key) = (dir.join("token-cert.pem"), dir.join("token-key.pem"));
        self_signed(&key, &cert, "capsa token signer");
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap()
            .stdout;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop2, requests2, user) = (stop.clone(), requests.clone(), user.to_string());
        let thread = std::thread::spawn(move || {
            use std::io::{BufRead, BufReader, Write};
            for conn in listener.incoming() {
                if stop2.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap_or(0);
                let mut authorized = false;
                let mut had_creds = false;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h
                        .strip_prefix("Authorization: ")
                        .or_else(|| h.strip_prefix("authorization: "))
                    {
                        had_creds = true;
                        authorized = v.trim() == expected;
                    }
                }
                let target = line.split(' ').nth(1).unwrap_or("");
                let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
                let scopes: Vec<String> = query
                    .split('&')
                    .filter_map(|kv| kv.strip_prefix("scope="))
                    .map(|s| {
                        s.replace("%3A", ":")
                            .replace("%2C", ",")
                            .replace("%2F", "/")
                    })
                    .collect();
                requests2.lock().unwrap().push((had_creds, scopes.clone()));
                if !authorized {
                    let _ = conn.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    continue;
                }
                let access: Vec<serde_json::Value> = scopes
                    .iter()
                    .filter_map(|s| {
                        let mut p = s.splitn(3, ':');
                        let (t, n, a) = (p.next()?, p.next()?, p.next()?);
                        Some(serde_json::json!({"type": t, "name": n, "actions": a.split(',').collect::<Vec<_>>()}))
                    })
                    .collect();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
                let claims = serde_json::json!({
                    "iss": "capsa-test-issuer", "sub": user, "aud": "capsa-test",
                    "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", scopes.len()),
                    "access": access,
                });
                let input = format!(
                    "{}.{}",
                    b64url(header.to_string().as_bytes()),
                    b64url(claims.to_string().as_bytes())
                );
                let mut sign = Command::new("openssl")
                    .args(["dgst", "-sha256", "-sign"])
                    .arg(&key)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                sign.stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
                let sig = sign.wait_with_output().unwrap().stdout;
                let body =
                    serde_json::json!({"token": format!("{input}.{}", b64url(&sig))}).to_string();
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
