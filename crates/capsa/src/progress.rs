//! Drawing progress: a bar per blob on a terminal (indicatif), plain lines
//! otherwise, nothing with --quiet. Always on stderr: stdout is for data.

use capsa_image::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

pub struct Display {
    mode: Mode,
}

enum Mode {
    Quiet,
    Lines(Mutex<HashMap<String, bool>>),
    Bars(MultiProgress, Mutex<HashMap<String, ProgressBar>>),
}

fn short(d: &capsa_image::Digest) -> &str {
    d.short()
}

impl Display {
    pub fn new(quiet: bool) -> Display {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                Mutex::new(HashMap::new()),
            )
        } else {
            Mode::Lines(Mutex::new(HashMap::new()))
        };
        Display { mode }
    }

    pub fn event(&self, p: Progress) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines(seen) => {
                let line = match &p {
                    Progress::Resolved {
                        reference,
                        digest,
                        layers,
                    } => Some(format!("{reference}: manifest {digest}, {layers} layers")),
                    Progress::Exists { digest } => {
                        Some(format!("blob {} already present", short(digest)))
                    }
                    Progress::Mounted { digest, from } => {
                        Some(format!("blob {} mounted from {from}", short(digest)))
                    }
                    Progress::Bytes { digest, total, .. } => {
                        let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                        if s.insert(digest.to_string(), true).is_none() && *total > 0 {
                            Some(format!(
                                "blob {} copying ({})",
                                short(digest),
                                human(*total)
                            ))
                        } else {
                            None
                        }
                    }
                    Progress::Done { digest } => Some(format!("blob {} done", short(digest))),
                    Progress::Unpacking { digest } => {
                        Some(format!("layer {} unpacking", short(digest)))
                    }
                    Progress::Unpacked { digest } => {
                        Some(format!("layer {} unpacked", short(digest)))
                    }
                    Progress::Retry {
                        digest,
                        from,
                        reason,
                    } => Some(format!(
                        "blob {} retrying from byte {from}: {reason}",
                        short(digest)
                    )),
                };
                if let Some(l) = line {
                    eprintln!("{l}");
                }
            }
            Mode::Bars(multi, bars) => {
                let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
                let mut bar = |d: &capsa_image::Digest, total: u64| {
                    bars.entry(d.to_string())
                        .or_insert_with(|| {
                            let b = multi.add(ProgressBar::new(total));
                            b.set_style(
                                ProgressStyle::with_template("{prefix} {msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                                    .progress_chars("=> "),
                            );
                            b.set_prefix(d.short().to_string());
                            b
                        })
                        .clone()
                };
                match p {
                    Progress::Resolved {
                        reference,
                        digest,
                        layers,
                    } => {
                        let _ = multi
                            .println(format!("{reference}: manifest {digest}, {layers} layers"));
                    }
                    Progress::Bytes {
                        digest,
                        done,
                        total,
                    } => {
                        let b = bar(&digest, total);
                        b.set_length(total);
                        b.set_position(done);
                        b.set_message("copying");
                    }
                    Progress::Exists { digest } => bar(&digest, 0).finish_with_message("exists"),
                    Progress::Mounted { digest, .. } => {
                        bar(&digest, 0).finish_with_message("mounted")
                    }
                    Progress::Done { digest } => bar(&digest, 0).set_message("verified"),
                    Progress::Unpacking { digest } => bar(&digest, 0).set_message("unpacking"),
                    Progress::Unpacked { digest } => {
                        bar(&digest, 0).finish_with_message("unpacked")
                    }
                    Progress::Retry { digest, .. } => bar(&digest, 0).set_message("retrying"),
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Mode::Bars(_, bars) = &self.mode {
            for b in bars.lock().unwrap_or_else(|p| p.into_inner()).values() {
                if !b.is_finished() {
                    b.finish();
                }
            }
        }
    }
}

/// Bytes in docker's units (kB, MB, GB: powers of 1000).
pub fn human(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.3}GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1}MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1}kB", f / 1e3)
    } else {
        format!("{n}B")
    }
}
