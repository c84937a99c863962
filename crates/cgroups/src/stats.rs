//! Usage, read from whichever hierarchy holds each controller, in the JSON
//! shape of runc's `events --stats` (so callers written for runc read it).

use crate::Cgroup;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct CpuUsage {
    pub total: u64,
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Throttling {
    pub periods: u64,
    #[serde(rename = "throttledPeriods")]
    pub throttled_periods: u64,
    #[serde(rename = "throttledTime")]
    pub throttled_time: u64,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct PsiData {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total: u64,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Psi {
    pub some: PsiData,
    pub full: PsiData,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct MemoryEntry {
    pub limit: u64,
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Memory {
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// Processes the OOM killer killed in this cgroup. Not in the JSON:
    /// runc's stats have no such key (an OOM kill is an `oom` event), and
    /// tools look for "oom" in the event stream.
    #[serde(skip)]
    pub oom_kill: u64,
    pub raw: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Pids {
    pub current: u64,
    pub limit: u64,
}

#[derive(Debug, Default, Serialize, PartialEq, Clone)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Blkio {
    #[serde(rename = "ioServiceBytesRecursive")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Hugetlb {
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

/// Everything `stats` shows about one cgroup.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

fn num(p: &Path) -> u64 {
    read(p).and_then(|s| parse_u64(s.trim())).unwrap_or(0)
}

/// "max" reads as u64::MAX, as the kernel means it.
fn parse_u64(s: &str) -> Option<u64> {
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat, memory.events).
pub fn flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), parse_u64(v.trim())?))
        })
        .collect()
}

/// A PSI file: `some avg10=0.00 avg60=0.00 avg300=0.00 total=0`.
pub fn parse_psi(text: &str) -> Psi {
    let mut psi = Psi::default();
    for l in text.lines() {
        let mut parts = l.split_whitespace();
        let target = match parts.next() {
            Some("some") => &mut psi.some,
            Some("full") => &mut psi.full,
            _ => continue,
        };
        for kv in parts {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            match k {
                "avg10" => target.avg10 = v.parse().unwrap_or(0.0),
                "avg60" => target.avg60 = v.parse().unwrap_or(0.0),
                "avg300" => target.avg300 = v.parse().unwrap_or(0.0),
                "total" => target.total = v.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    psi
}

/// v1 blkio lines: `8:0 Read 4096` (and a `Total N` line, skipped).
pub fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            let (ma, mi) = p.next()?.split_once(':')?;
            Some(BlkioEntry {
                major: ma.parse().ok()?,
                minor: mi.parse().ok()?,
                op: p.next()?.to_string(),
                value: p.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// v2 io.stat lines: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...`, as runc
/// maps them: bytes and ios into the two v1-named lists.
pub fn parse_io_stat(text: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    for l in text.lines() {
        let mut p = l.split_whitespace();
        let Some((ma, mi)) = p.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (ma.parse(), mi.parse()) else {
            continue;
        };
        for kv in p {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let e = |op: &str| BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            };
            match k {
                "rbytes" => bytes.push(e("Read")),
                "wbytes" => bytes.push(e("Write")),
                "rios" => ios.push(e("Read")),
                "wios" => ios.push(e("Write")),
                _ => {}
            }
        }
    }
    (bytes, ios)
}

// USER_HZ ticks (cpuacct.stat) to nanoseconds.
const NS_PER_TICK: u64 = 10_000_000;

impl Cgroup {
    /// Read the usage of every controller this cgroup has.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        let v2 = self.v2.as_deref();
        // cpu
        if let Some(d) = self.v1_dir("cpuacct") {
            s.cpu.usage.total = num(&d.join("cpuacct.usage"));
            s.cpu.usage.percpu = read(&d.join("cpuacct.usage_percpu"))
                .map(|t| {
                    t.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            let st = flat_keyed(&read(&d.join("cpuacct.stat")).unwrap_or_default());
            s.cpu.usage.user = st.get("user").copied().unwrap_or(0) * NS_PER_TICK;
            s.cpu.usage.kernel = st.get("system").copied().unwrap_or(0) * NS_PER_TICK;
        } else if let Some(d) = v2 {
            let st = flat_keyed(&read(&d.join("cpu.stat")).unwrap_or_default());
            s.cpu.usage.total = st.get("usage_usec").copied().unwrap_or(0) * 1000;
            s.cpu.usage.user = st.get("user_usec").copied().unwrap_or(0) * 1000;
            s.cpu.usage.kernel = st.get("system_usec").copied().unwrap_or(0) * 1000;
        }
        if let Some(d) = self.v1_dir("cpu") {
            let st = flat_keyed(&read(&d.join("cpu.stat")).unwrap_or_default());
            s.cpu.throttling = Throttling {
                periods: st.get("nr_periods").copied().unwrap_or(0),
                throttled_periods: st.get("nr_throttled").copied().unwrap_or(0),
                throttled_time: st.get("throttled_time").copied().unwrap_or(0),
            };
        } else if let Some(d) = v2 {
            let st = flat_keyed(&read(&d.join("cpu.stat")).unwrap_or_default());
            s.cpu.throttling = Throttling {
                periods: st.get("nr_periods").copied().unwrap_or(0),
                throttled_periods: st.get("nr_throttled").copied().unwrap_or(0),
                throttled_time: st.get("throttled_usec").copied().unwrap_or(0) * 1000,
            };
        }
        // memory
        if let Some(d) = self.v1_dir("memory") {
            let entry = |prefix: &str| MemoryEntry {
                limit: num(&d.join(format!("{prefix}.limit_in_bytes"))),
                usage: num(&d.join(format!("{prefix}.usage_in_bytes"))),
                max: num(&d.join(format!("{prefix}.max_usage_in_bytes"))),
                failcnt: num(&d.join(format!("{prefix}.failcnt"))),
            };
            s.memory.usage = entry("memory");
            s.memory.swap = entry("memory.memsw");
            s.memory.kernel = entry("memory.kmem");
            s.memory.kernel_tcp = entry("memory.kmem.tcp");
            s.memory.raw = flat_keyed(&read(&d.join("memory.stat")).unwrap_or_default());
            s.memory.cache = s
                .memory
                .raw
                .get("total_cache")
                .or(s.memory.raw.get("cache"))
                .copied()
                .unwrap_or(0);
            s.memory.oom_kill =
                flat_keyed(&read(&d.join("memory.oom_control")).unwrap_or_default())
                    .get("oom_kill")
                    .copied()
                    .unwrap_or(0);
        } else if let Some(d) = v2.filter(|d| d.join("memory.current").exists()) {
            let events = flat_keyed(&read(&d.join("memory.events")).unwrap_or_default());
            s.memory.usage = MemoryEntry {
                limit: num(&d.join("memory.max")),
                usage: num(&d.join("memory.current")),
                max: num(&d.join("memory.peak")),
                failcnt: events.get("max").copied().unwrap_or(0),
            };
            s.memory.swap = MemoryEntry {
                limit: num(&d.join("memory.swap.max")),
                usage: num(&d.join("memory.swap.current")),
                max: num(&d.join("memory.swap.peak")),
                failcnt: 0,
            };
            s.memory.raw = flat_keyed(&read(&d.join("memory.stat")).unwrap_or_default());
            s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
            s.memory.oom_kill = events.get("oom_kill").copied().unwrap_or(0);
        }
        // pids
        if let Some(d) = self
            .v1_dir("pids")
            .or(v2.filter(|d| d.join("pids.current").exists()))
        {
            s.pids = Pids {
                current: num(&d.join("pids.current")),
                limit: num(&d.join("pids.max")),
            };
        }
        // block I/O
        if let Some(d) = self.v1_dir("blkio") {
            s.blkio.io_service_bytes_recursive = parse_blkio_v1(
                &read(&d.join("blkio.throttle.io_service_bytes_recursive")).unwrap_or_default(),
            );
            s.blkio.io_serviced_recursive = parse_blkio_v1(
                &read(&d.join("blkio.throttle.io_serviced_recursive")).unwrap_or_default(),
            );
        } else if let Some(d) = v2 {
            let (b, i) = parse_io_stat(&read(&d.join("io.stat")).unwrap_or_default());
            s.blkio.io_service_bytes_recursive = b;
            s.blkio.io_serviced_recursive = i;
        }
        // hugetlb, from whichever hierarchy has it
        if let Some(d) = self.v1_dir("hugetlb") {
            for size in hugepage_sizes(d, ".limit_in_bytes") {
                s.hugetlb.insert(
                    size.clone(),
                    Hugetlb {
                        usage: num(&d.join(format!("hugetlb.{size}.usage_in_bytes"))),
                        max: num(&d.join(format!("hugetlb.{size}.max_usage_in_bytes"))),
                        failcnt: num(&d.join(format!("hugetlb.{size}.failcnt"))),
                    },
                );
            }
        } else if let Some(d) = v2 {
            for size in hugepage_sizes(d, ".max") {
                let events = flat_keyed(
                    &read(&d.join(format!("hugetlb.{size}.events"))).unwrap_or_default(),
                );
                s.hugetlb.insert(
                    size.clone(),
                    Hugetlb {
                        usage: num(&d.join(format!("hugetlb.{size}.current"))),
                        max: num(&d.join(format!("hugetlb.{size}.max"))),
                        failcnt: events.get("max").copied().unwrap_or(0),
                    },
                );
            }
        }
        // pressure stall information (v2 files, also present in the v2
        // directory of a hybrid host)
        if let Some(d) = v2 {
            s.cpu.psi = read(&d.join("cpu.pressure")).map(|t| parse_psi(&t));
            s.memory.psi = read(&d.join("memory.pressure")).map(|t| parse_psi(&t));
            s.blkio.psi = read(&d.join("io.pressure")).map(|t| parse_psi(&t));
        }
        s
    }

    /// OOM kills so far (v1 `memory.oom_control`, v2 `memory.events`).
    pub fn oom_kills(&self) -> u64 {
        if let Some(d) = self.v1_dir("memory") {
            return flat_keyed(&read(&d.join("memory.oom_control")).unwrap_or_default())
                .get("oom_kill")
                .copied()
                .unwrap_or(0);
        }
        self.v2
            .as_deref()
            .map(|d| {
                flat_keyed(&read(&d.join("memory.events")).unwrap_or_default())
                    .get("oom_kill")
                    .copied()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }
}

fn hugepage_sizes(d: &Path, suffix: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(d)
        .map(|rd| {
            rd.filter_map(|e| {
                let n = e.ok()?.file_name().into_string().ok()?;
                n.strip_prefix("hugetlb.")?
                    .strip_suffix(suffix)
                    .filter(|s| !s.contains('.'))
                    .map(str::to_string)
            })
            .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_lines_parse() {
        let p = parse_psi("some avg10=1.50 avg60=0.00 avg300=0.00 total=12\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=3\n");
        assert_eq!(p.some.avg10, 1.5);
        assert_eq!(p.some.total, 12);
        assert_eq!(p.full.total, 3);
    }

    #[test]
    fn io_stat_maps_to_v1_names() {
        let (b, i) = parse_io_stat("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(
            b,
            vec![
                BlkioEntry {
                    major: 8,
                    minor: 0,
                    op: "Read".into(),
                    value: 4096
                },
                BlkioEntry {
                    major: 8,
                    minor: 0,
                    op: "Write".into(),
                    value: 8192
                }
            ]
        );
        assert_eq!(i.len(), 2);
    }

    #[test]
    fn blkio_v1_lines_parse_and_total_is_skipped() {
        let e = parse_blkio_v1("8:0 Read 10\n8:0 Write 20\nTotal 30\n");
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].op, "Write");
    }

    #[test]
    fn v2_stats_read_from_files() {
        let root = std::env::temp_dir().join(format!("capsa-cg-stats-{}", std::process::id()));
        let d = root.join("c");
        std::fs::create_dir_all(&d).unwrap();
        for (f, v) in [
            ("cpu.stat", "usage_usec 100\nuser_usec 60\nsystem_usec 40\nnr_periods 5\nnr_throttled 2\nthrottled_usec 7\n"),
            ("memory.current", "4096\n"),
            ("memory.max", "max\n"),
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            ("memory.stat", "anon 10\nfile 20\n"),
            ("pids.current", "2\n"),
            ("pids.max", "10\n"),
            ("hugetlb.2MB.current", "0\n"),
            ("hugetlb.2MB.max", "max\n"),
        ] {
            std::fs::write(d.join(f), v).unwrap();
        }
        let h = crate::Hierarchy {
            v1: vec![],
            v2: Some(root.clone()),
        };
        let s = Cgroup::new(&h, Path::new("/c")).stats();
        assert_eq!(s.cpu.usage.total, 100_000);
        assert_eq!(s.cpu.throttling.throttled_time, 7_000);
        assert_eq!(s.memory.usage.usage, 4096);
        assert_eq!(s.memory.usage.limit, u64::MAX);
        assert_eq!(s.memory.usage.failcnt, 3);
        assert_eq!(s.memory.oom_kill, 1);
        assert_eq!(s.memory.cache, 20);
        assert_eq!(
            s.pids,
            Pids {
                current: 2,
                limit: 10
            }
        );
        assert_eq!(s.hugetlb["2MB"].max, u64::MAX);
        std::fs::remove_dir_all(root).unwrap();
    }
}
