//! One module per command; `dispatch` picks it.

mod checkpoint;
mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod restore;
mod run;
mod spec;
mod start;
mod state;
mod update;

use crate::cli::{Cli, Command};
use crate::log::Logger;
use capsa_runtime::Store;

/// Run the command; the result is the exit code.
pub fn dispatch(cli: &Cli, store: &Store, log: &Logger) -> anyhow::Result<i32> {
    match &cli.command {
        Command::Spec(a) => spec::run(a),
        Command::Create(a) => create::run(store, a, log),
        Command::Start(a) => start::run(store, &a.id, log),
        Command::State(a) => state::run(store, &a.id),
        Command::Kill(a) => kill::run(store, a),
        Command::Delete(a) => delete::run(store, a, log),
        Command::Run(a) => run::run(store, a, log),
        Command::Exec(a) => exec::run(store, a, log),
        Command::List(a) => list::run(store, a),
        Command::Ps(a) => ps::run(store, a),
        Command::Features => features::run(),
        Command::Pause(a) => pause::pause(store, &a.id),
        Command::Resume(a) => pause::resume(store, &a.id),
        Command::Update(a) => update::run(store, a),
        Command::Events(a) => events::run(store, a),
        Command::Checkpoint(a) => checkpoint::run(store, a, &cli.criu, log),
        Command::Restore(a) => restore::run(store, a, &cli.criu, log),
    }
}

/// The flags `checkpoint` and `restore` share, for the library.
pub fn criu_flags(a: &crate::cli::CriuArgs, criu: &std::path::Path) -> capsa_runtime::CriuFlags {
    capsa_runtime::CriuFlags {
        criu: criu.to_path_buf(),
        image_path: a
            .image_path
            .clone()
            .unwrap_or_else(|| std::path::PathBuf::from("checkpoint")),
        work_path: a.work_path.clone(),
        tcp_established: a.tcp_established,
        ext_unix_sk: a.ext_unix_sk,
        shell_job: a.shell_job,
        file_locks: a.file_locks,
        manage_cgroups_mode: a.manage_cgroups_mode.clone(),
        empty_ns: a.empty_ns.clone(),
        auto_dedup: a.auto_dedup,
        lazy_pages: a.lazy_pages,
        status_fd: a.status_fd,
        page_server: a.page_server.clone(),
    }
}

/// How the config is read: runc's way unless `--hardened`.
pub fn mode(hardened: bool) -> capsa_spec::Mode {
    if hardened {
        capsa_spec::Mode::Hardened
    } else {
        capsa_spec::Mode::Runc
    }
}

/// Create options from the shared flags.
pub fn create_options(a: &crate::cli::CreateArgs) -> capsa_runtime::CreateOptions {
    capsa_runtime::CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        own_console: false,
        systemd_cgroup: a.systemd_cgroup,
        mode: mode(a.hardened),
    }
}

/// With `--debug`: what each step of the create cost.
pub fn trace(log: &Logger, t: &capsa_runtime::trace::Trace) {
    for line in t.lines() {
        log.debug(&line);
    }
}
