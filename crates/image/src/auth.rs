//! Registry credentials in docker's `config.json` format (`{"auths":
//! {"host": {"auth": base64("user:pass")}}}`), which podman's auth.json
//! shares, and the parsing of `WWW-Authenticate` challenges.

use crate::error::{invalid, IoContext, Result};
use base64::Engine as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A user name and password (or token) for a registry.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Token realms on other hosts that may receive them (the auth
    /// file's `realm` of this registry's entry; capsa's own key).
    pub realms: Vec<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

impl Credentials {
    /// `Basic base64(user:pass)`.
    pub fn basic(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Where `capsa login` writes: `$REGISTRY_AUTH_FILE` (as podman honours
/// it), else `$XDG_CONFIG_HOME/capsa/auth.json` or `~/.config/capsa/auth.json`.
pub fn default_file() -> PathBuf {
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("/root/.config"));
    base.join("capsa/auth.json")
}

/// Files read for credentials, in order: ours, then docker's.
pub fn search_files(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut v = vec![explicit.map(Path::to_path_buf).unwrap_or_else(default_file)];
    if explicit.is_none() {
        if let Some(h) = std::env::var_os("HOME") {
            v.push(PathBuf::from(h).join(".docker/config.json"));
        }
    }
    v
}

/// The keys a registry may be stored under (docker.io has a legacy one).
fn keys(registry: &str) -> Vec<String> {
    let mut k = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if registry == "docker.io" {
        k.push("https://index.docker.io/v1/".into());
        k.push("index.docker.io".into());
    }
    k
}

fn read(path: &Path) -> Result<serde_json::Value> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| invalid(path.display().to_string(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(e).at("read", path),
    }
}

/// Credentials for `registry` from the first file that has them.
pub fn lookup(files: &[PathBuf], registry: &str) -> Result<Option<Credentials>> {
    for f in files {
        let v = read(f)?;
        for k in keys(registry) {
            let Some(auth) = v.pointer(&format!(
                "/auths/{}",
                k.replace('~', "~0").replace('/', "~1")
            )) else {
                continue;
            };
            let Some(b64) = auth.get("auth").and_then(|a| a.as_str()) else {
                continue;
            };
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| invalid(format!("{}: auths.{k}.auth", f.display()), e))?;
            let raw = String::from_utf8_lossy(&raw).into_owned();
            let (u, p) = raw.split_once(':').ok_or_else(|| {
                invalid(
                    format!("{}: auths.{k}.auth", f.display()),
                    "not user:password",
                )
            })?;
            let realms = match auth.get("realm") {
                Some(serde_json::Value::String(r)) => vec![r.clone()],
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
                realms,
            }));
        }
    }
    Ok(None)
}

/// Store (or with `None` remove) credentials for `registry` in `file`,
/// keeping everything else in it. Returns whether anything changed.
pub fn save(file: &Path, registry: &str, creds: Option<&Credentials>) -> Result<bool> {
    let mut v = read(file)?;
    if !v.is_object() {
        v = serde_json::json!({});
    }
    let auths = v
        .as_object_mut()
        .expect("made an object above")
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}));
    let map = auths
        .as_object_mut()
        .ok_or_else(|| invalid(format!("{}: auths", file.display()), "not an object"))?;
    let changed = match creds {
        Some(c) => {
            let raw = format!("{}:{}", c.username, c.password);
            let mut entry =
                serde_json::json!({"auth": base64::engine::general_purpose::STANDARD.encode(raw)});
            if !c.realms.is_empty() {
                entry["realm"] = serde_json::json!(c.realms);
            }
            map.insert(registry.to_string(), entry);
            true
        }
        None => {
            let mut any = false;
            for k in keys(registry) {
                any |= map.remove(&k).is_some();
            }
            any
        }
    };
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).at("create", dir)?;
    }
    let bytes =
        serde_json::to_vec_pretty(&v).map_err(|e| invalid(file.display().to_string(), e))?;
    crate::store::write_atomic(file, &bytes, 0o600)?;
    Ok(changed)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer` or `basic`, lowercased.
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

/// Parse `Scheme k="v", k2=v2` (values may hold commas inside quotes).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(' ') | Some(',')) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next() != Some('=') {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        params.insert(key.trim().to_ascii_lowercase(), value);
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_with_commas_in_quotes() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let b = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(b.scheme, "basic");
        assert_eq!(b.params["realm"], "Registry Realm");
    }

    #[test]
    fn credentials_round_trip_in_docker_format() {
        let dir = std::env::temp_dir().join(crate::store::unique_name("capsa-auth-"));
        let f = dir.join("auth.json");
        let c = Credentials {
            username: "u".into(),
            password: "p:w".into(),
            realms: vec!["https://auth.example/token".into()],
        };
        assert!(save(&f, "127.0.0.1:5000", Some(&c)).unwrap());
        let files = vec![f.clone()];
        assert_eq!(lookup(&files, "127.0.0.1:5000").unwrap(), Some(c));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        assert_eq!(v["auths"]["127.0.0.1:5000"]["auth"], "dTpwOnc=");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(save(&f, "127.0.0.1:5000", None).unwrap());
        assert_eq!(lookup(&files, "127.0.0.1:5000").unwrap(), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
