//! blkio (v1) and io (v2): weights and throttles.

#[allow(unused_imports)]
use super::*;

impl Planner<'_> {
    pub(super) fn block_io(&mut self, r: &LinuxResources) -> Result<()> {
        let Some(b) = r.block_io() else { return Ok(()) };
        let throttles: [(&Option<Vec<LinuxThrottleDevice>>, &str, &str, &str); 4] = [
            (
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
                "rbps",
                "blockIO.throttleReadBpsDevice",
            ),
            (
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
                "wbps",
                "blockIO.throttleWriteBpsDevice",
            ),
            (
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
                "riops",
                "blockIO.throttleReadIOPSDevice",
            ),
            (
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
                "wiops",
                "blockIO.throttleWriteIOPSDevice",
            ),
        ];
        match self.place(
            if self.cg.v1_dir("blkio").is_some() {
                "blkio"
            } else {
                "io"
            },
            "blockIO",
        )? {
            Place::V1(d) => {
                if let Some(w) = b.weight() {
                    let file = if d.join("blkio.weight").exists() {
                        "blkio.weight"
                    } else {
                        "blkio.bfq.weight"
                    };
                    self.put_existing(d, file, w.to_string(), "blockIO.weight")?;
                }
                if let Some(w) = b.leaf_weight() {
                    self.put_existing(d, "blkio.leaf_weight", w.to_string(), "blockIO.leafWeight")?;
                }
                for (i, wd) in b.weight_device().iter().flatten().enumerate() {
                    let field = format!("blockIO.weightDevice[{i}]");
                    if let Some(w) = wd.weight() {
                        let file = if d.join("blkio.weight_device").exists() {
                            "blkio.weight_device"
                        } else {
                            "blkio.bfq.weight_device"
                        };
                        self.put_existing(
                            d,
                            file,
                            format!("{}:{} {w}", wd.major(), wd.minor()),
                            &field,
                        )?;
                    }
                    if let Some(w) = wd.leaf_weight() {
                        self.put_existing(
                            d,
                            "blkio.leaf_weight_device",
                            format!("{}:{} {w}", wd.major(), wd.minor()),
                            &field,
                        )?;
                    }
                }
                for (list, file, _, field) in throttles {
                    for (i, t) in list.iter().flatten().enumerate() {
                        self.put_existing(
                            d,
                            file,
                            format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                            &format!("{field}[{i}]"),
                        )?;
                    }
                }
            }
            Place::V2(d) => {
                if let Some(w) = b.weight() {
                    if d.join("io.bfq.weight").exists() {
                        self.put(d, "io.bfq.weight", w.to_string(), "blockIO.weight");
                    } else {
                        self.put_existing(
                            d,
                            "io.weight",
                            format!("default {}", blkio_to_io_weight(w)),
                            "blockIO.weight",
                        )?;
                    }
                }
                if b.leaf_weight().is_some() {
                    return Err(refuse("blockIO.leafWeight", "cgroup v2 has no leaf weight"));
                }
                // A device's weight needs BFQ (its own 1..1000 scale, as
                // runc writes it) or io.cost enabled on that device.
                let bfq = d.join("io.bfq.weight").exists();
                for (i, wd) in b.weight_device().iter().flatten().enumerate() {
                    if let Some(w) = wd.weight() {
                        let (file, w) = if bfq {
                            ("io.bfq.weight", u64::from(w))
                        } else {
                            ("io.weight", blkio_to_io_weight(w))
                        };
                        self.put_existing(
                            d,
                            file,
                            format!("{}:{} {w}", wd.major(), wd.minor()),
                            &format!("blockIO.weightDevice[{i}]"),
                        )?;
                    }
                    if wd.leaf_weight().is_some() {
                        return Err(refuse(
                            &format!("blockIO.weightDevice[{i}].leafWeight"),
                            "cgroup v2 has no leaf weight",
                        ));
                    }
                }
                for (list, _, key, field) in throttles {
                    for (i, t) in list.iter().flatten().enumerate() {
                        self.put(
                            d,
                            "io.max",
                            format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
                            &format!("{field}[{i}]"),
                        );
                    }
                }
            }
        }
        Ok(())
    }
}
