//! runc-shaped logging: errors go to stderr and, with `--log`, to the log
//! file as text (`time="..." level=error msg="..."`) or JSON lines, which is
//! where containerd looks for a failed runtime's message.

use crate::cli::LogFormat;
use std::io::Write;
use std::path::Path;

pub struct Logger {
    file: Option<std::fs::File>,
    format: LogFormat,
    debug: bool,
}

impl Logger {
    pub fn open(path: Option<&Path>, format: LogFormat, debug: bool) -> std::io::Result<Logger> {
        let file = match path {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
            None => None,
        };
        Ok(Logger {
            file,
            format,
            debug,
        })
    }

    fn write(&self, level: &str, msg: &str) {
        let time = capsa_runtime::state::now_rfc3339();
        let line = match self.format {
            LogFormat::Json => format!(
                "{}\n",
                serde_json::json!({ "level": level, "msg": msg, "time": time })
            ),
            LogFormat::Text => format!("time={time:?} level={level} msg={msg:?}\n"),
        };
        match &self.file {
            Some(f) => {
                let _ = (&*f).write_all(line.as_bytes());
            }
            None if level != "error" => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            None => {}
        }
    }

    pub fn warn(&self, msg: &str) {
        self.write("warning", msg);
        if self.file.is_some() {
            eprintln!("warning: {msg}");
        }
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }

    /// Report `e` (stderr and the log) and exit 1, as runc does.
    pub fn fatal(&self, e: &anyhow::Error) -> ! {
        self.report(e);
        std::process::exit(1)
    }

    /// Log and print `e` without exiting (for commands with an exit code
    /// of their own for failure, as `exec`'s 255).
    pub fn report(&self, e: &anyhow::Error) {
        let msg = capsa_runtime::describe(e.as_ref());
        self.write("error", &msg);
        eprintln!("{msg}");
    }
}
