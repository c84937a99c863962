//! `capsa`: the engine's command line, with docker's and podman's verbs.
//!
//! Thin by design: parse arguments, call the libraries, print data to
//! stdout and errors to stderr, choose the exit code. One module per group
//! of commands under `commands/`.

mod cli;
mod commands;
mod format;
mod progress;

use clap::Parser;

fn main() {
    capsa_sys::process::default_sigpipe();
    // Without a capsa-monitor binary beside this one, this one serves as
    // the monitor (run from a sealed image, see capsa_engine::monitor).
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(capsa_engine::monitor::MONITOR_ARG) {
        if let Err(e) = capsa_runtime::door::seal() {
            eprintln!("capsa: {e}");
            std::process::exit(125);
        }
        capsa_engine::monitor::main_from_args(&args[1..]);
    }
    if args.get(1).map(String::as_str) == Some(capsa_engine::rootless::PAUSE_ARG) {
        capsa_engine::rootless::pause_main();
    }
    let cli = cli::Cli::parse();
    // Commands that put a process into a container pass the door: this
    // process runs from a sealed image of its binary (CVE-2019-5736).
    if matches!(
        cli.command,
        cli::Command::Exec(_) | cli::Command::Healthcheck(_)
    ) {
        if let Err(e) = capsa_runtime::door::seal() {
            eprintln!("capsa: {e}");
            std::process::exit(125);
        }
    }
    match commands::dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("capsa: {}", capsa_runtime::describe(e.as_ref()));
            // The exit code from the engine's kind of failure (126 and
            // 127 for the container's own program), docker's 125 else.
            let code = e
                .downcast_ref::<capsa_engine::Error>()
                .map_or(125, |e| e.kind().exit_code());
            std::process::exit(code);
        }
    }
}
