//! `capsa`: the engine's command line, with docker's and podman's verbs.
//!
//! Thin by design: parse arguments, call the libraries, print data to
//! stdout and errors to stderr, choose the exit code. One module per group
//! of commands under `commands/`.

mod cli;
mod commands;
mod progress;

use clap::Parser;

fn main() {
    capsa_sys::process::default_sigpipe();
    let cli = cli::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("capsa: {e:#}");
            std::process::exit(125);
        }
    }
}
