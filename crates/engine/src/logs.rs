//! Container logs in docker's json-file format: one JSON object a line,
//! `{"log":"...","stream":"stdout","time":"RFC 3339 with nanoseconds"}`,
//! rotated by size (one old file kept, `.1`).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Rotate past this many bytes.
pub const MAX_SIZE: u64 = 10 << 20;

/// A log writer: whole lines per entry, partial lines held until their
/// newline (or 16 KiB, as docker splits them).
pub struct Writer {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    partial: [Vec<u8>; 2],
}

impl Writer {
    pub fn open(path: &Path) -> Writer {
        let file = OpenOptions::new().create(true).append(true).open(path).ok();
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len())
            .unwrap_or(0);
        Writer {
            path: path.to_path_buf(),
            file,
            size,
            partial: [Vec::new(), Vec::new()],
        }
    }

    /// Add bytes of `stream` (0 stdout, 1 stderr).
    pub fn write(&mut self, stream: usize, bytes: &[u8]) {
        self.partial[stream].extend_from_slice(bytes);
        while let Some(i) = self.partial[stream].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial[stream].drain(..=i).collect();
            self.entry(stream, &line);
        }
        if self.partial[stream].len() >= 16 * 1024 {
            let line = std::mem::take(&mut self.partial[stream]);
            self.entry(stream, &line);
        }
    }

    /// Write what is left (at exit).
    pub fn flush(&mut self) {
        for s in 0..2 {
            if !self.partial[s].is_empty() {
                let line = std::mem::take(&mut self.partial[s]);
                self.entry(s, &line);
            }
        }
    }

    fn entry(&mut self, stream: usize, line: &[u8]) {
        let entry = Line {
            log: &String::from_utf8_lossy(line),
            stream: if stream == 0 { "stdout" } else { "stderr" },
            time: &capsa_sys::time::now_rfc3339(),
        };
        // Serializing strings into a string cannot fail.
        let mut text = serde_json::to_string(&entry).unwrap_or_default();
        text.push('\n');
        if self.size + text.len() as u64 > MAX_SIZE {
            let _ = std::fs::rename(&self.path, self.path.with_extension("log.1"));
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .ok();
            self.size = 0;
        }
        if let Some(f) = &mut self.file {
            if f.write_all(text.as_bytes()).is_ok() {
                self.size += text.len() as u64;
            }
        }
    }
}

/// One log entry as written: docker's json-file line.
#[derive(serde::Serialize)]
struct Line<'a> {
    log: &'a str,
    stream: &'a str,
    time: &'a str,
}

/// One log entry read back.
#[derive(Debug, Clone)]
pub struct Entry {
    pub stream: String,
    pub log: String,
    pub time: String,
}

/// Entries of the log (rotated file first), from byte `offset` of the
/// current file; returns the new offset.
pub fn read(path: &Path, offset: u64, with_rotated: bool) -> (Vec<Entry>, u64) {
    let mut out = Vec::new();
    let mut parse = |f: File, skip: u64| -> u64 {
        use std::io::{Seek, SeekFrom};
        let mut r = BufReader::new(f);
        let mut pos = r.seek(SeekFrom::Start(skip)).unwrap_or(0);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !line.ends_with('\n') {
                        break; // a line being written: next time
                    }
                    pos += n as u64;
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        out.push(Entry {
                            stream: v["stream"].as_str().unwrap_or("stdout").to_string(),
                            log: v["log"].as_str().unwrap_or("").to_string(),
                            time: v["time"].as_str().unwrap_or("").to_string(),
                        });
                    }
                }
            }
        }
        pos
    };
    if with_rotated && offset == 0 {
        if let Ok(f) = File::open(path.with_extension("log.1")) {
            parse(f, 0);
        }
    }
    let end = match File::open(path) {
        Ok(f) => parse(f, offset),
        Err(_) => offset,
    };
    (out, end)
}
