//! A registry client for the OCI distribution spec: bearer-token and basic
//! auth answered from `WWW-Authenticate`, TLS with the system roots plus a
//! CA file or `certs.d`, or (for a local registry) no verification and
//! plain HTTP; pull and push live in their own modules.

mod pull;
mod push;
mod tls;

pub use pull::{pull, PullOptions};
pub use push::push;

use crate::auth::{self, Credentials};
use crate::error::{Error, Result};
use crate::reference::Reference;
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Verify TLS certificates (and refuse plain HTTP). Off for local
    /// registries (`--tls-verify=false`); loopback addresses are treated
    /// as insecure registries anyway, as docker does.
    pub tls_verify: Option<bool>,
    /// An extra CA bundle (PEM).
    pub ca_file: Option<PathBuf>,
    /// Credentials given on the command line.
    pub credentials: Option<Credentials>,
    /// The auth file to read (default: ours, then docker's).
    pub auth_file: Option<PathBuf>,
}

/// A connection to one registry.
pub struct Client {
    agent: ureq::Agent,
    registry: String,
    host: String,
    /// Plain HTTP allowed after HTTPS fails.
    insecure: bool,
    scheme: Mutex<Option<&'static str>>,
    creds: Option<Credentials>,
    tokens: Mutex<HashMap<String, String>>,
}

const BASIC: &str = "\0basic";

/// A response: status, headers we use, and the body as a reader.
pub(crate) struct Response {
    pub status: u16,
    inner: ureq::Response,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.inner.header(name).map(str::to_string)
    }
    pub fn reader(self) -> Box<dyn Read + Send + Sync + 'static> {
        self.inner.into_reader()
    }
    pub fn bytes(self, limit: u64) -> std::io::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.inner.into_reader().take(limit).read_to_end(&mut v)?;
        Ok(v)
    }
}

/// A request body.
pub(crate) enum Body<'a> {
    None,
    Bytes(&'a [u8]),
    Reader(Box<dyn Read + 'a>, u64),
}

impl Client {
    /// A client for `reference`'s registry.
    pub fn new(reference: &Reference, opts: &Options) -> Result<Client> {
        let registry = reference.registry.clone();
        let host = reference.api_host().to_string();
        let insecure = match opts.tls_verify {
            Some(v) => !v,
            None => tls::is_loopback(&host),
        };
        let tls = tls::config(&host, opts)?;
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls))
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(120))
            .user_agent(concat!("capsa/", env!("CARGO_PKG_VERSION")))
            .build();
        let creds = match &opts.credentials {
            Some(c) => Some(c.clone()),
            None => auth::lookup(&auth::search_files(opts.auth_file.as_deref()), &registry)?,
        };
        Ok(Client {
            agent,
            registry,
            host,
            insecure,
            scheme: Mutex::new(None),
            creds,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    fn err(&self, reason: impl Into<String>) -> Error {
        Error::Registry {
            registry: self.registry.clone(),
            reason: reason.into(),
        }
    }

    /// Whether our credentials may go to `url` (a token realm, an upload
    /// location, or the registry itself): see [`creds_allowed`].
    ///
    /// Security: credentials go only over TLS (or to a loopback address),
    /// and only to the registry's own host and port, to Docker Hub's own
    /// token service for Docker Hub, or to a realm the user named for this
    /// registry (`realm` in its auth entry, `--realm`). A registry cannot
    /// send them to a host of its choosing, or over plain HTTP.
    fn may_receive_creds(&self, url: &str) -> bool {
        let realms = self
            .creds
            .as_ref()
            .map(|c| c.realms.as_slice())
            .unwrap_or(&[]);
        creds_allowed(&self.host, realms, url)
    }

    fn base(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.host)
    }

    /// Check that the registry answers and accepts our credentials.
    pub fn ping(&self) -> Result<()> {
        self.call("GET", "/v2/", "", &[], Body::None).map(drop)
    }

    /// One request with auth: a 401 is answered once from its challenge.
    /// `path` is absolute (`/v2/...`) or a full URL (upload locations).
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        scope: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<Response> {
        let replay = match &body {
            Body::None => Some(Body::None),
            Body::Bytes(b) => Some(Body::Bytes(b)),
            Body::Reader(..) => None,
        };
        let mut body = Some(body);
        for attempt in 0..2 {
            let auth = self.auth_header(scope);
            let b = body.take().unwrap_or(Body::None);
            match self.send(method, path, headers, auth.as_deref(), b) {
                Err(SendError::Status(401, resp)) if attempt == 0 => {
                    let challenge = resp
                        .header("www-authenticate")
                        .and_then(|h| auth::parse_challenge(&h));
                    self.answer(challenge, scope)?;
                    // A streamed body cannot be sent twice: callers
                    // authenticate with a cheap request first, so this
                    // only happens when a token expired mid-push.
                    match &replay {
                        Some(Body::None) => body = Some(Body::None),
                        Some(Body::Bytes(b)) => body = Some(Body::Bytes(b)),
                        _ => {
                            return Err(self.err(format!(
                                "{method} {path}: unauthorized mid-upload; retry the command"
                            )))
                        }
                    }
                }
                Err(SendError::Status(code, resp)) => {
                    return Err(self.err(format!("{method} {path}: {}", describe(code, *resp))))
                }
                Err(SendError::Transport(e)) => {
                    return Err(self.err(format!("{method} {path}: {e}")))
                }
                Ok(r) => return Ok(r),
            }
        }
        Err(self.err(format!(
            "{method} {path}: unauthorized{}",
            if self.creds.is_none() {
                " (no credentials: run `capsa login`)"
            } else {
                " (credentials refused)"
            }
        )))
    }

    fn auth_header(&self, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        // Basic auth answers every scope alike.
        tokens.get(scope).or_else(|| tokens.get(BASIC)).cloned()
    }

    /// Answer a challenge: Basic with our credentials, or fetch a token.
    fn answer(&self, challenge: Option<auth::Challenge>, scope: &str) -> Result<()> {
        let Some(ch) = challenge else {
            return Err(self.err("401 without a WWW-Authenticate challenge"));
        };
        let scheme = (*self.scheme.lock().unwrap_or_else(|p| p.into_inner())).unwrap_or("https");
        let header = match ch.scheme.as_str() {
            "basic" => match &self.creds {
                Some(_) if !self.may_receive_creds(&self.base(scheme)) => {
                    return Err(self.err(format!(
                        "credentials withheld: {} answers over {scheme}, and credentials go only over TLS or to a loopback address",
                        self.host
                    )))
                }
                Some(c) => c.basic(),
                None => return Err(self.err("authentication required: run `capsa login` first")),
            },
            "bearer" => {
                let realm = ch
                    .params
                    .get("realm")
                    .ok_or_else(|| self.err("bearer challenge without a realm"))?;
                let mut url = format!("{realm}?");
                if let Some(s) = ch.params.get("service") {
                    url.push_str(&format!("service={}&", encode(s)));
                }
                for s in scope.split(' ').filter(|s| !s.is_empty()) {
                    url.push_str(&format!("scope={}&", encode(s)));
                }
                let mut req = self.agent.get(url.trim_end_matches(['?', '&']));
                let mut withheld = false;
                if let Some(c) = &self.creds {
                    if self.may_receive_creds(realm) {
                        req = req.set("Authorization", &c.basic());
                    } else {
                        withheld = true;
                    }
                }
                let note = if withheld {
                    format!(" (our credentials were withheld from {realm}: not this registry's host and port, or not TLS; name it with `capsa login --realm` to allow it)")
                } else {
                    String::new()
                };
                let resp = req.call().map_err(|e| match e {
                    ureq::Error::Status(code, r) => self.err(format!(
                        "token from {realm}: {}{note}",
                        describe(
                            code,
                            Response {
                                status: code,
                                inner: r
                            }
                        )
                    )),
                    e => self.err(format!("token from {realm}: {e}{note}")),
                })?;
                let v: serde_json::Value =
                    serde_json::from_reader(resp.into_reader().take(1 << 20))
                        .map_err(|e| self.err(format!("token from {realm}: {e}")))?;
                let tok = v
                    .get("token")
                    .or_else(|| v.get("access_token"))
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| {
                        self.err(format!("token from {realm}: no token in the answer"))
                    })?;
                format!("Bearer {tok}")
            }
            other => return Err(self.err(format!("unsupported auth scheme {other:?}"))),
        };
        let key = if ch.scheme == "basic" { BASIC } else { scope };
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), header);
        Ok(())
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        auth: Option<&str>,
        body: Body<'_>,
    ) -> std::result::Result<Response, SendError> {
        let chosen = *self.scheme.lock().unwrap_or_else(|p| p.into_inner());
        let schemes: &[&'static str] = match chosen {
            Some(s) => {
                if s == "https" {
                    &["https"]
                } else {
                    &["http"]
                }
            }
            None if self.insecure => &["https", "http"],
            None => &["https"],
        };
        // Only a bodiless request can be retried over plain HTTP (clients
        // pick the scheme with one before sending bodies).
        let bodiless = matches!(body, Body::None);
        let mut body = Some(body);
        let mut last = None;
        for (i, scheme) in schemes.iter().enumerate() {
            let url = if path.starts_with("http://") || path.starts_with("https://") {
                path.to_string()
            } else {
                format!("{}{path}", self.base(scheme))
            };
            let mut req = self.agent.request(method, &url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            // An upload location on another host gets no Authorization.
            if let Some(a) = auth.filter(|_| {
                url.starts_with(&format!("{}/", self.base(scheme))) || self.may_receive_creds(&url)
            }) {
                req = req.set("Authorization", a);
            }
            let r = match body.take().unwrap_or(Body::None) {
                Body::None => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                Body::Reader(r, len) => req.set("Content-Length", &len.to_string()).send(r),
            };
            match r {
                Ok(resp) => {
                    *self.scheme.lock().unwrap_or_else(|p| p.into_inner()) = Some(scheme);
                    return Ok(Response {
                        status: resp.status(),
                        inner: resp,
                    });
                }
                // An HTTPS server answering our plain-HTTP retry: the real
                // problem was the TLS handshake.
                Err(ureq::Error::Status(400, _)) if i > 0 && last.is_some() => {
                    return Err(SendError::Transport(format!(
                        "{} (plain HTTP was refused too)",
                        last.unwrap_or_default()
                    )));
                }
                Err(ureq::Error::Status(code, resp)) => {
                    *self.scheme.lock().unwrap_or_else(|p| p.into_inner()) = Some(scheme);
                    return Err(SendError::Status(
                        code,
                        Box::new(Response {
                            status: code,
                            inner: resp,
                        }),
                    ));
                }
                // HTTPS failed on an insecure registry: try plain HTTP.
                Err(ureq::Error::Transport(t)) if i + 1 < schemes.len() && bodiless => {
                    last = Some(t.to_string());
                    body = Some(Body::None);
                }
                Err(ureq::Error::Transport(t)) => return Err(SendError::Transport(t.to_string())),
            }
        }
        Err(SendError::Transport(last.unwrap_or_default()))
    }
}

enum SendError {
    Status(u16, Box<Response>),
    Transport(String),
}

/// A registry error body (`{"errors":[{"code","message"}]}`) in words.
fn describe(code: u16, resp: Response) -> String {
    let body = resp.bytes(64 * 1024).unwrap_or_default();
    let detail = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("errors").and_then(|e| e.as_array()).cloned())
        .map(|errs| {
            errs.iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.get("code").and_then(|c| c.as_str()).unwrap_or("?"),
                        e.get("message").and_then(|c| c.as_str()).unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|s| !s.is_empty());
    match detail {
        Some(d) => format!("{code} {d}"),
        None => format!("status {code}"),
    }
}

/// Percent-encode a query value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The token scope for pulling from (`pull`) or pushing to a repository.
pub(crate) fn scope(repo: &str, actions: &str) -> String {
    format!("repository:{repo}:{actions}")
}

/// Whether credentials for the registry at `host` (its host:port) may go
/// to `url`: over TLS or to a loopback address, and to that same host and
/// port, to Docker Hub's token service for Docker Hub, or to one of
/// `realms` (what the user named for this registry).
pub fn creds_allowed(host: &str, realms: &[String], url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let name = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    let loopback = name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    if scheme != "https" && !(scheme == "http" && loopback) {
        return false;
    }
    if authority == host {
        return true;
    }
    if host == "registry-1.docker.io" && authority == "auth.docker.io" {
        return true;
    }
    realms.iter().any(|r| {
        url == r
            || url.starts_with(&format!("{}/", r.trim_end_matches('/')))
            || url.starts_with(&format!("{r}?"))
    })
}

#[cfg(test)]
mod creds_tests {
    use super::creds_allowed;

    #[test]
    fn credentials_go_to_the_registry_itself_over_tls_or_loopback() {
        let none: &[String] = &[];
        assert!(creds_allowed(
            "reg.example:5000",
            none,
            "https://reg.example:5000/token"
        ));
        assert!(creds_allowed(
            "127.0.0.1:5000",
            none,
            "http://127.0.0.1:5000/v2/"
        ));
        // Another port, another host, plain HTTP elsewhere: never.
        assert!(!creds_allowed(
            "127.0.0.1:5000",
            none,
            "http://127.0.0.1:5001/token"
        ));
        assert!(!creds_allowed(
            "reg.example",
            none,
            "https://evil.example/token"
        ));
        assert!(!creds_allowed(
            "reg.example",
            none,
            "http://reg.example/token"
        ));
        assert!(!creds_allowed(
            "reg.example",
            none,
            "https://reg.example.evil/token"
        ));
        assert!(!creds_allowed("reg.example", none, "reg.example/token"));
        // Docker Hub's own token service, and realms the user named.
        assert!(creds_allowed(
            "registry-1.docker.io",
            none,
            "https://auth.docker.io/token"
        ));
        let named = vec!["https://auth.example/token".to_string()];
        assert!(creds_allowed(
            "reg.example",
            &named,
            "https://auth.example/token"
        ));
        assert!(!creds_allowed(
            "reg.example",
            &named,
            "https://auth.example/tokens"
        ));
        assert!(!creds_allowed(
            "reg.example",
            &named,
            "http://auth.example/token"
        ));
    }
}
