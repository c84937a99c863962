//! Containerfiles (and Dockerfiles) read into typed instructions, as
//! Docker's reference says: parser directives (`# escape=`), comments,
//! line continuations with the escape character, heredocs (`<<EOF`,
//! `<<-EOF`, quoted delimiters), the JSON (exec) form with its fallback to
//! the shell form, and flags (`--from=`). Nothing is expanded here:
//! variables are the build's to expand, in the instructions Docker expands
//! them in, with [`expand::word`].
//!
//! No crate on crates.io was faithful enough: `dockerfile-parser` has no
//! heredocs and no escape directive, so this small one is ours (and
//! fuzzed: `fuzz/fuzz_targets/containerfile_parse.rs`).

// Library code returns errors; tests may unwrap.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod expand;
pub mod ignore;
mod words;

pub use words::{heredoc_marker, json_list, split_flags, split_pairs, split_words};

use std::fmt;

/// What went wrong, and where: the file, the line and the instruction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {instruction}: {reason}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub instruction: String,
    pub reason: String,
}

/// A command as `RUN`, `CMD`, `ENTRYPOINT` and `HEALTHCHECK` take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `["prog", "arg"]`: run as is.
    Exec(Vec<String>),
    /// `prog arg`: run by the stage's `SHELL`.
    Shell(String),
}

/// A heredoc: `<<EOF` up to the line `EOF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub body: String,
    /// With a quoted delimiter (`<<"EOF"`) the body is not expanded.
    pub expand: bool,
}

/// `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Copy {
    /// Sources, unexpanded (a heredoc's name stands for its body).
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub heredocs: Vec<Heredoc>,
}

/// `HEALTHCHECK`: `NONE`, or its options and a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    None,
    Check {
        command: Command,
        /// The flags (`interval`, `timeout`, `start-period`,
        /// `start-interval`, `retries`), as written.
        options: Vec<(String, String)>,
    },
}

/// One instruction, typed; values not yet expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    From {
        image: String,
        alias: Option<String>,
        platform: Option<String>,
    },
    Run {
        command: Command,
        heredocs: Vec<Heredoc>,
        network: Option<String>,
    },
    Copy(Copy),
    Add(Copy),
    Env(Vec<(String, String)>),
    /// Names with their defaults (unexpanded).
    Arg(Vec<(String, Option<String>)>),
    Workdir(String),
    User(String),
    Cmd(Command),
    Entrypoint(Command),
    Shell(Vec<String>),
    Expose(Vec<String>),
    Label(Vec<(String, String)>),
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck(Health),
    /// The trigger's text, kept for the child image.
    Onbuild(String),
    Maintainer(String),
}

/// An instruction and where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The first line (1-based).
    pub line: usize,
    /// The keyword, upper case.
    pub keyword: String,
    /// The instruction as written after its keyword, continuations joined
    /// (what the image's history records).
    pub text: String,
    pub kind: Kind,
}

impl fmt::Display for Instruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.keyword, self.text)
    }
}

/// A build stage: its `FROM` and what follows up to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    pub from: Instruction,
    pub steps: Vec<Instruction>,
}

impl Stage {
    /// The name `AS` gave it.
    pub fn alias(&self) -> Option<&str> {
        match &self.from.kind {
            Kind::From { alias, .. } => alias.as_deref(),
            _ => None,
        }
    }
}

/// A whole Containerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containerfile {
    pub file: String,
    pub escape: char,
    /// `ARG`s before the first `FROM` (usable in `FROM` lines).
    pub args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

/// Upper bound on one file, so a hostile context cannot make the parser
/// hold gigabytes.
pub const MAX_SIZE: usize = 4 << 20;

/// Parse `text`, read from `file` (named in errors).
pub fn parse(text: &str, file: &str) -> Result<Containerfile, ParseError> {
    let err = |line: usize, instruction: &str, reason: String| ParseError {
        file: file.to_string(),
        line,
        instruction: instruction.to_string(),
        reason,
    };
    if text.len() > MAX_SIZE {
        return Err(err(
            0,
            "file",
            format!("larger than {} MiB", MAX_SIZE >> 20),
        ));
    }
    let lines: Vec<&str> = text.lines().collect();
    let (escape, mut i) = directives(&lines).map_err(|(n, r)| err(n, "directive", r))?;
    let mut args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    while i < lines.len() {
        let start = i;
        let trimmed = lines[i].trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        // Join continuation lines; comment and empty lines inside one
        // are dropped, as Docker does.
        let mut logical = String::new();
        loop {
            let l = lines[i];
            i += 1;
            let t = l.trim_end();
            match t.strip_suffix(escape) {
                Some(head) if i < lines.len() || !head.is_empty() => {
                    logical.push_str(head);
                    while i < lines.len() && {
                        let n = lines[i].trim_start();
                        n.is_empty() || n.starts_with('#')
                    } {
                        i += 1;
                    }
                    if i >= lines.len() {
                        break;
                    }
                }
                _ => {
                    logical.push_str(l);
                    break;
                }
            }
        }
        let logical = logical.trim();
        let (kw, rest) = match logical.split_once(|c: char| c.is_whitespace()) {
            Some((k, r)) => (k, r.trim()),
            None => (logical, ""),
        };
        let keyword = kw.to_ascii_uppercase();
        // Heredocs take the lines after the instruction.
        let mut heredocs = Vec::new();
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
            for (name, strip, expand) in words::heredoc_markers(rest) {
                let mut body = String::new();
                let mut closed = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let l = if strip { l.trim_start_matches('\t') } else { l };
                    if l == name {
                        closed = true;
                        break;
                    }
                    body.push_str(l);
                    body.push('\n');
                }
                if !closed {
                    return Err(err(
                        start + 1,
                        &keyword,
                        format!("heredoc <<{name} has no closing line {name}"),
                    ));
                }
                heredocs.push(Heredoc { name, body, expand });
            }
        }
        let kind = instruction(&keyword, rest, heredocs, escape)
            .map_err(|r| err(start + 1, &keyword, r))?;
        let ins = Instruction {
            line: start + 1,
            keyword: keyword.clone(),
            text: rest.to_string(),
            kind,
        };
        match (&ins.kind, stages.last_mut()) {
            (Kind::From { .. }, _) => stages.push(Stage {
                index: stages.len(),
                from: ins,
                steps: Vec::new(),
            }),
            (Kind::Arg(_), None) => args.push(ins),
            (_, None) => {
                return Err(err(
                    start + 1,
                    &keyword,
                    "only ARG may come before the first FROM".into(),
                ))
            }
            (_, Some(s)) => s.steps.push(ins),
        }
    }
    if stages.is_empty() {
        return Err(err(lines.len(), "file", "no FROM instruction".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for s in &stages {
        if let Some(a) = s.alias() {
            if !seen.insert(a.to_ascii_lowercase()) {
                return Err(err(
                    s.from.line,
                    "FROM",
                    format!("stage name {a:?} is used twice"),
                ));
            }
        }
    }
    Ok(Containerfile {
        file: file.to_string(),
        escape,
        args,
        stages,
    })
}

/// The parser directives at the top (`# escape=`), and the first line
/// after them.
fn directives(lines: &[&str]) -> Result<(char, usize), (usize, String)> {
    let mut escape = '\\';
    let mut seen = std::collections::HashSet::new();
    for (n, l) in lines.iter().enumerate() {
        let Some(body) = l.trim().strip_prefix('#') else {
            return Ok((escape, n));
        };
        let Some((k, v)) = body.split_once('=') else {
            return Ok((escape, n));
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Ok((escape, n));
        }
        if !seen.insert(k.clone()) {
            return Err((n + 1, format!("directive {k} is given twice")));
        }
        if k == "escape" {
            escape = match v {
                "\\" => '\\',
                "`" => '`',
                _ => return Err((n + 1, format!("escape must be \\ or `, not {v:?}"))),
            };
        }
        // `syntax` and `check` name frontends and checks: nothing for
        // this builder to do.
    }
    Ok((escape, lines.len()))
}

fn command(rest: &str) -> Command {
    match json_list(rest) {
        Some(v) => Command::Exec(v),
        None => Command::Shell(rest.to_string()),
    }
}

fn need(rest: &str) -> Result<(), String> {
    if rest.is_empty() {
        Err("needs an argument".into())
    } else {
        Ok(())
    }
}

fn instruction(
    keyword: &str,
    rest: &str,
    heredocs: Vec<Heredoc>,
    escape: char,
) -> Result<Kind, String> {
    Ok(match keyword {
        "FROM" => {
            let (flags, rest) = split_flags(rest, &["platform"])?;
            let w = split_words(rest, escape);
            let (image, alias) = match w.as_slice() {
                [i] => (i.clone(), None),
                [i, as_, a] if as_.eq_ignore_ascii_case("as") => {
                    let ok = a.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && a.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                    if !ok {
                        return Err(format!("invalid stage name {a:?}"));
                    }
                    (i.clone(), Some(a.to_ascii_lowercase()))
                }
                _ => return Err("takes IMAGE [AS NAME]".into()),
            };
            Kind::From {
                image,
                alias,
                platform: flag(&flags, "platform"),
            }
        }
        "RUN" => {
            let (flags, rest) = split_flags(rest, &["network", "mount", "security"])?;
            if let Some(m) = flag(&flags, "mount") {
                return Err(format!("--mount={m}: RUN mounts are not supported yet"));
            }
            if let Some(s) = flag(&flags, "security") {
                return Err(format!("--security={s}: not supported"));
            }
            if heredocs.is_empty() {
                need(rest)?;
            }
            Kind::Run {
                command: command(rest),
                heredocs,
                network: flag(&flags, "network"),
            }
        }
        "COPY" | "ADD" => {
            let allowed: &[&str] = if keyword == "COPY" {
                &["from", "chown", "chmod", "link", "parents", "exclude"]
            } else {
                &[
                    "chown",
                    "chmod",
                    "link",
                    "checksum",
                    "keep-git-dir",
                    "exclude",
                ]
            };
            let (flags, rest) = split_flags(rest, allowed)?;
            for unsupported in ["parents", "exclude", "checksum", "keep-git-dir"] {
                if flag(&flags, unsupported).is_some() {
                    return Err(format!("--{unsupported} is not supported yet"));
                }
            }
            let mut w = match json_list(rest) {
                Some(v) => v,
                None => split_words(rest, escape),
            };
            if w.len() < 2 {
                return Err("takes SOURCE... DEST".into());
            }
            let dest = w.pop().unwrap_or_default();
            let c = Copy {
                sources: w,
                dest,
                from: flag(&flags, "from"),
                chown: flag(&flags, "chown"),
                chmod: flag(&flags, "chmod"),
                heredocs,
            };
            if keyword == "COPY" {
                Kind::Copy(c)
            } else {
                Kind::Add(c)
            }
        }
        "ENV" => Kind::Env(split_pairs(rest, escape, true)?),
        "LABEL" => Kind::Label(split_pairs(rest, escape, false)?),
        "ARG" => {
            need(rest)?;
            let mut out = Vec::new();
            for w in split_words(rest, escape) {
                match w.split_once('=') {
                    Some((k, v)) => out.push((k.to_string(), Some(v.to_string()))),
                    None => out.push((w, None)),
                }
            }
            for (k, _) in &out {
                if k.is_empty() {
                    return Err("an ARG needs a name".into());
                }
            }
            Kind::Arg(out)
        }
        "WORKDIR" => {
            need(rest)?;
            Kind::Workdir(rest.to_string())
        }
        "USER" => {
            need(rest)?;
            Kind::User(rest.to_string())
        }
        "CMD" => Kind::Cmd(command(rest)),
        "ENTRYPOINT" => Kind::Entrypoint(command(rest)),
        "SHELL" => match json_list(rest) {
            Some(v) if !v.is_empty() => Kind::Shell(v),
            _ => return Err("takes a JSON list: SHELL [\"/bin/sh\", \"-c\"]".into()),
        },
        "EXPOSE" => {
            need(rest)?;
            Kind::Expose(split_words(rest, escape))
        }
        "VOLUME" => {
            need(rest)?;
            Kind::Volume(json_list(rest).unwrap_or_else(|| split_words(rest, escape)))
        }
        "STOPSIGNAL" => {
            need(rest)?;
            Kind::StopSignal(rest.to_string())
        }
        "MAINTAINER" => Kind::Maintainer(rest.to_string()),
        "HEALTHCHECK" => {
            let (flags, rest) = split_flags(
                rest,
                &[
                    "interval",
                    "timeout",
                    "start-period",
                    "start-interval",
                    "retries",
                ],
            )?;
            let (kw, cmd) = match rest.split_once(char::is_whitespace) {
                Some((k, c)) => (k, c.trim()),
                None => (rest, ""),
            };
            if kw.eq_ignore_ascii_case("none") && cmd.is_empty() {
                if !flags.is_empty() {
                    return Err("NONE takes no options".into());
                }
                Kind::Healthcheck(Health::None)
            } else if kw.eq_ignore_ascii_case("cmd") && !cmd.is_empty() {
                Kind::Healthcheck(Health::Check {
                    command: command(cmd),
                    options: flags,
                })
            } else {
                return Err("takes NONE or [OPTIONS] CMD command".into());
            }
        }
        "ONBUILD" => {
            let inner = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match inner.as_str() {
                "" => return Err("needs an instruction".into()),
                "ONBUILD" | "FROM" | "MAINTAINER" => {
                    return Err(format!("{inner} is not allowed as an ONBUILD trigger"))
                }
                _ => {}
            }
            // Checked now, so a bad trigger fails this build, not a
            // child's.
            let (_, inner_rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            instruction(&inner, inner_rest.trim(), Vec::new(), escape)
                .map_err(|e| format!("{inner}: {e}"))?;
            Kind::Onbuild(rest.to_string())
        }
        other => return Err(format!("unknown instruction {other}")),
    })
}

fn flag(flags: &[(String, String)], name: &str) -> Option<String> {
    flags
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// Parse one instruction line (an `ONBUILD` trigger).
pub fn parse_one(text: &str, file: &str, line: usize) -> Result<Instruction, ParseError> {
    let (kw, rest) = text
        .trim()
        .split_once(char::is_whitespace)
        .unwrap_or((text, ""));
    let keyword = kw.to_ascii_uppercase();
    let kind =
        instruction(&keyword, rest.trim(), Vec::new(), '\\').map_err(|reason| ParseError {
            file: file.to_string(),
            line,
            instruction: keyword.clone(),
            reason,
        })?;
    Ok(Instruction {
        line,
        keyword,
        text: rest.trim().to_string(),
        kind,
    })
}

#[cfg(test)]
mod tests;
