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

    fn start(env: &Env, name: &str, auth: Option<(&str, &str)>) -> Option<Registry> {
        if !std::path::Path::new("/usr/bin/docker-registry").exists() {
            eprintln!("skipping: docker-registry is not installed (scripts/deps.sh installs it)");
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
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=capsa test CA",
                "-keyout",
                &p(&ca_key),
                "-out",
                &p(&ca),
            ]);
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

/// `capsa` with a store at `store` and an auth file of the test's own
/// (never the user's).
pub struct Capsa {
    pub store: PathBuf,
    pub auth: PathBuf,
}

impl Capsa {
    pub fn new(env: &Env, name: &str) -> Capsa {
        Capsa {
            store: env.dir.join(format!("store-{name}")),
            auth: env.dir.join(format!("auth-{name}.json")),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(capsa_bin());
        c.args(args)
            .env("CAPSA_ROOT", &self.store)
            .env("REGISTRY_AUTH_FILE", &self.auth)
            .env("HOME", self.store.parent().unwrap())
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("spawn capsa")
    }

    /// Run and require success; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "capsa {args:?} failed ({}):\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Run and require failure; stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            !o.status.success(),
            "capsa {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    pub fn store(&self) -> capsa_image::Store {
        capsa_image::Store::open(&self.store).unwrap()
    }
}
