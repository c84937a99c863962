//! The instructions that change only the image's config: ENV, LABEL,
//! WORKDIR, USER, CMD, ENTRYPOINT, SHELL, EXPOSE, VOLUME, STOPSIGNAL,
//! MAINTAINER, ONBUILD and HEALTHCHECK.

use crate::containerfile::{Command, Health, Instruction, Kind};
use crate::stage::{Build, State};
use crate::Result;
use capsa_image::config::{Empty, Healthcheck};
use std::collections::BTreeMap;

impl Build<'_> {
    /// The instructions that change only the config.
    pub(crate) fn metadata(&self, st: &mut State, ins: &Instruction) -> Result<()> {
        let shell = |st: &State, c: &Command| match c {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut v = st
                    .config
                    .config
                    .shell
                    .clone()
                    .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
                v.push(s.clone());
                v
            }
        };
        match &ins.kind {
            Kind::Env(pairs) => {
                // Every value is expanded with the env before this line.
                let vals = pairs
                    .iter()
                    .map(|(k, v)| Ok((self.word(st, ins, k)?, self.word(st, ins, v)?)))
                    .collect::<Result<Vec<_>>>()?;
                for (k, v) in vals {
                    st.config.config.set_env(&k, &v);
                }
            }
            Kind::Label(pairs) => {
                let vals = pairs
                    .iter()
                    .map(|(k, v)| Ok((self.word(st, ins, k)?, self.word(st, ins, v)?)))
                    .collect::<Result<Vec<_>>>()?;
                let labels = st.config.config.labels.get_or_insert_with(BTreeMap::new);
                labels.extend(vals);
            }
            Kind::Workdir(w) => {
                let w = self.word(st, ins, w)?;
                let base = st
                    .config
                    .config
                    .working_dir
                    .clone()
                    .unwrap_or_else(|| "/".into());
                let joined = if w.starts_with('/') {
                    w
                } else {
                    format!("{base}/{w}")
                };
                st.config.config.working_dir =
                    Some(format!("/{}", crate::ignore::clean(&joined).join("/")));
            }
            Kind::User(u) => st.config.config.user = Some(self.word(st, ins, u)?),
            Kind::Cmd(c) => {
                st.config.config.cmd = Some(shell(st, c));
                st.cmd_set = true;
            }
            Kind::Entrypoint(c) => {
                st.config.config.entrypoint = Some(shell(st, c));
                if !st.cmd_set {
                    st.config.config.cmd = None;
                }
            }
            Kind::Shell(v) => st.config.config.shell = Some(v.clone()),
            Kind::Expose(ports) => {
                for p in ports {
                    let p = self.word(st, ins, p)?;
                    let p = if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    };
                    st.config
                        .config
                        .exposed_ports
                        .get_or_insert_with(BTreeMap::new)
                        .insert(p, Empty {});
                }
            }
            Kind::Volume(vs) => {
                for v in vs {
                    let v = self.word(st, ins, v)?;
                    if v.is_empty() {
                        return Err(self.fail(ins, "a volume needs a path"));
                    }
                    st.config
                        .config
                        .volumes
                        .get_or_insert_with(BTreeMap::new)
                        .insert(v, Empty {});
                }
            }
            Kind::StopSignal(s) => st.config.config.stop_signal = Some(self.word(st, ins, s)?),
            Kind::Maintainer(m) => st.config.author = Some(m.clone()),
            Kind::Onbuild(t) => st
                .config
                .config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(t.clone()),
            Kind::Healthcheck(Health::None) => {
                st.config.config.healthcheck = Some(Healthcheck {
                    test: vec!["NONE".into()],
                    ..Default::default()
                })
            }
            Kind::Healthcheck(Health::Check { command, options }) => {
                let test = match command {
                    Command::Exec(v) => [vec!["CMD".to_string()], v.clone()].concat(),
                    Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                };
                let mut h = Healthcheck {
                    test,
                    ..Default::default()
                };
                for (k, v) in options {
                    let bad = |why: &str| self.fail(ins, format!("--{k}={v}: {why}"));
                    if k == "retries" {
                        h.retries = Some(v.parse().map_err(|_| bad("not a number"))?);
                        continue;
                    }
                    let ns =
                        duration_ns(v).ok_or_else(|| bad("not a duration (30s, 1m30s, 500ms)"))?;
                    match k.as_str() {
                        "interval" => h.interval = Some(ns),
                        "timeout" => h.timeout = Some(ns),
                        "start-period" => h.start_period = Some(ns),
                        _ => h.start_interval = Some(ns),
                    }
                }
                st.config.config.healthcheck = Some(h);
            }
            _ => return Err(self.fail(ins, "not a metadata instruction")),
        }
        Ok(())
    }
}
/// A Go duration (`1m30s`, `500ms`, `2h`) in nanoseconds, read as every
/// duration of the project is (`capsa_sys::time::parse_duration`).
pub(crate) fn duration_ns(s: &str) -> Option<i64> {
    capsa_sys::time::parse_duration(s).and_then(|d| i64::try_from(d.as_nanos()).ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn go_durations_read_as_docker_reads_them() {
        assert_eq!(super::duration_ns("30s"), Some(30_000_000_000));
        assert_eq!(super::duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(super::duration_ns("500ms"), Some(500_000_000));
        assert_eq!(super::duration_ns("5"), None);
        assert_eq!(super::duration_ns("5x"), None);
        assert_eq!(super::duration_ns(""), None);
    }
}
