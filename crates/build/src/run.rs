//! `RUN`: a real container of the stage as it stands, made and started by
//! the engine (its snapshot, spec, monitor and the runtime's door, as
//! `capsa run` makes one), attached so its output is the build's; then
//! its upper directory is the step's layer, and the container goes.

use crate::containerfile::{heredoc_marker, Command, Heredoc, Instruction};
use crate::stage::{Build, State};
use crate::{Error, Result};
use capsa_engine::client::{self, Ended};
use capsa_engine::{manage, monitor, Container, RunOptions};
use capsa_image::commit::LayerBlob;
use capsa_image::ImageRecord;
use std::os::fd::AsFd;

/// What the runtime may make in the root as mount points, relative: kept
/// out of the layer when empty and not in the image below.
const MOUNT_POINTS: [&str; 6] = [
    "proc",
    "sys",
    "dev",
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
];

/// The process `RUN` runs: the exec form as is; the shell form through
/// the stage's `SHELL`, a heredoc body as the script when it is the whole
/// command, else handed to the shell with the command (which reads it).
fn args(st: &State, command: &Command, heredocs: &[Heredoc]) -> Vec<String> {
    let text = match command {
        Command::Exec(v) => return v.clone(),
        Command::Shell(s) => s,
    };
    let mut shell = st
        .config
        .config
        .shell
        .clone()
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
    let only_marker = {
        let words: Vec<&str> = text.split_whitespace().collect();
        words.len() == 1 && words[0].starts_with("<<") && heredoc_marker(words[0]).is_some()
    };
    let script = match heredocs {
        [h] if only_marker => h.body.clone(),
        [] => text.clone(),
        hs => {
            let mut s = text.clone();
            s.push('\n');
            for h in hs {
                s.push_str(&h.body);
                s.push_str(&h.name);
                s.push('\n');
            }
            s
        }
    };
    shell.push(script);
    shell
}

/// Removes the step's container however the step ends.
struct Gone<'a>(&'a capsa_engine::Engine, Option<Container>);

impl Drop for Gone<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.1.take() {
            let _ = manage::remove(self.0, &c, true);
        }
    }
}

pub(crate) fn step(
    b: &Build<'_>,
    st: &State,
    ins: &Instruction,
    command: &Command,
    heredocs: &[Heredoc],
    network: Option<&str>,
) -> Result<Option<LayerBlob>> {
    let engine = b.engine;
    let store = &engine.images;
    // The container's image: the stage as it stands, without what only a
    // final container gets (its volumes, its health check).
    let mut config = st.config.clone();
    config.config.volumes = None;
    config.config.healthcheck = None;
    let (manifest, id) = capsa_image::commit::image(store, &mut config, &st.layers)?;
    let rec = ImageRecord {
        id,
        manifest,
        media_type: capsa_image::manifest::OCI_MANIFEST.into(),
        names: Vec::new(),
        origins: Vec::new(),
        created: config.created.clone(),
        added: 0,
    };
    let opts = RunOptions {
        entrypoint: Some(String::new()),
        args: args(st, command, heredocs),
        env: st.run_env(),
        user: config.config.user.clone().filter(|u| !u.is_empty()),
        workdir: config.config.working_dir.clone(),
        network: b.run_network(ins, network)?,
        cgroup_parent: b.opts.cgroup_parent.clone(),
        ..Default::default()
    };
    let ready = monitor::prespawn(engine, b.opts.monitor.as_deref())?;
    let c = capsa_engine::create::create(engine, &rec, "capsa-build", &opts)
        .map_err(|e| b.fail(ins, e))?;
    let gone = Gone(engine, Some(c.clone()));
    let (_, sock) = ready.go(&c, true).map_err(|e| b.fail(ins, e))?;
    client::started(&sock).map_err(|e| b.fail(ins, e))?;
    // The step's output is the build's progress: on stderr (stdout holds
    // only the image id, which `$(capsa build -q .)` takes), or nowhere
    // with -q.
    let sink = if b.opts.quiet {
        std::fs::File::options()
            .write(true)
            .open("/dev/null")
            .map(std::os::fd::OwnedFd::from)
            .ok()
    } else {
        None
    };
    let err = std::io::stderr();
    let to = match &sink {
        Some(f) => f.as_fd(),
        None => err.as_fd(),
    };
    let code =
        match client::session_with(&sock, false, false, &client::DetachKeys::default(), to, to)
            .map_err(|e| b.fail(ins, e))?
        {
            Ended::Exited(code) => code,
            Ended::Detached => -1,
        };
    if code != 0 {
        return Err(Error::Run {
            file: b.file.file.clone(),
            line: ins.line,
            instruction: ins.to_string(),
            code,
        });
    }
    let lowers = capsa_image::local::lowers(store, &st.layers());
    let below = |path: &str| {
        lowers.iter().any(|l| {
            capsa_sys::root::Root::open(l)
                .and_then(|r| {
                    r.path_fd(
                        std::path::Path::new(path),
                        capsa_sys::resolve::Symlinks::InRoot,
                    )
                })
                .is_ok()
        })
    };
    let mount_points: Vec<String> = MOUNT_POINTS.iter().map(|s| s.to_string()).collect();
    let rootfs = c.dir(engine).join("rootfs");
    let layer = b
        .commit(
            st,
            &c.dir(engine).join("upper"),
            &mount_points,
            &below,
            || {
                // A plain unmount: one that fails (something holds the
                // root) leaves the directory diffed, not adopted.
                rustix::mount::unmount(rootfs.as_path(), rustix::mount::UnmountFlags::empty())
                    .is_ok()
            },
        )
        .map_err(|e| b.fail(ins, e))?;
    drop(gone);
    Ok(layer)
}
