//! An image's config as `capsa build` writes it: the OCI image config and
//! the fields Docker's adds (`Healthcheck`, `OnBuild`, `Shell`), typed.
//! oci-spec's `ImageConfiguration` has no place for Docker's fields, and
//! podman and docker keep them in OCI configs too; fields neither type
//! knows are carried through untouched.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Docker's empty object, the value of `ExposedPorts` and `Volumes` keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// `HEALTHCHECK`, with durations in nanoseconds as Docker stores them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

/// What a container of the image runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Fields of other writers, kept as they were.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl RunConfig {
    /// `KEY`'s value in `Env`.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env.as_ref()?.iter().rev().find_map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v)
        })
    }

    /// Set `KEY=VALUE` in `Env`, in place of an earlier value.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let env = self.env.get_or_insert_with(Vec::new);
        let kv = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(e) => *e = kv,
            None => env.push(kv),
        }
    }
}

/// The layers' diff ids, bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        }
    }
}

/// One step of how the image was made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True for a step that made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// The whole config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: RunConfig,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default)]
    pub history: Vec<History>,
    /// Fields of other writers, kept as they were.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl ImageConfig {
    /// An empty image for this host (`FROM scratch`).
    pub fn scratch() -> ImageConfig {
        let p = crate::manifest::Platform::host();
        ImageConfig {
            architecture: p.arch,
            os: p.os,
            variant: p.variant,
            config: RunConfig {
                env: Some(vec![DEFAULT_PATH.to_string()]),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Read a config's bytes.
    pub fn parse(bytes: &[u8], what: &str) -> crate::Result<ImageConfig> {
        serde_json::from_slice(bytes).map_err(|e| crate::error::invalid(what, e))
    }
}

/// The `PATH` Docker gives an image that sets none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_fields_and_unknown_ones_survive_a_round_trip() {
        let text = r#"{"architecture":"amd64","os":"linux","os.version":"x",
            "config":{"Env":["A=1"],"Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":5000000000},
                      "OnBuild":["RUN x"],"Shell":["/bin/sh","-c"],"Domainname":""},
            "rootfs":{"type":"layers","diff_ids":[]},"history":[{"empty_layer":true}]}"#;
        let c = ImageConfig::parse(text.as_bytes(), "t").unwrap();
        assert_eq!(
            c.config.healthcheck.as_ref().unwrap().interval,
            Some(5_000_000_000)
        );
        assert_eq!(c.config.on_build.as_ref().unwrap()[0], "RUN x");
        assert!(c.history[0].empty_layer);
        let back: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert_eq!(back["os.version"], "x");
        assert_eq!(back["config"]["Domainname"], "");
        let mut r = c.config.clone();
        r.set_env("A", "2");
        r.set_env("B", "3");
        assert_eq!(r.env_var("A"), Some("2"));
        assert_eq!(r.env.unwrap(), vec!["A=2", "B=3"]);
    }
}
