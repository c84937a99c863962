//! system df and system prune, as docker's.

use crate::cli::{Format, SystemDfArgs, SystemPruneArgs};
use crate::progress::human;
use anyhow::Result;
use capsa_engine::{manage, volume, Engine, Status};
use serde_json::json;
use std::io::{BufRead, Write};

const HEADERS: &[(&str, &str)] = &[
    ("Type", "TYPE"),
    ("TotalCount", "TOTAL"),
    ("Active", "ACTIVE"),
    ("Size", "SIZE"),
    ("Reclaimable", "RECLAIMABLE"),
];

/// "11.63MB (70%)", as docker writes what could go.
fn reclaimable(part: u64, whole: u64) -> String {
    if whole == 0 {
        return human(part);
    }
    format!("{} ({}%)", human(part), part * 100 / whole)
}

pub fn df(engine: &Engine, a: SystemDfArgs) -> Result<()> {
    let store = &engine.images;
    let u = capsa_image::local::usage(store)?;
    let (used_ids, _) = super::images::in_use(engine)?;
    let images = store.images()?;
    let active_images = images.iter().filter(|r| used_ids.contains(&r.id)).count();
    let image_bytes = u.blob_bytes + u.layer_bytes;

    let mut ctr_rows = Vec::new();
    let (mut ctr_total, mut ctr_free, mut ctr_active) = (0u64, 0u64, 0usize);
    let containers: Vec<_> = engine
        .list()?
        .into_iter()
        .filter_map(|c| manage::refresh(engine, c).ok())
        .collect();
    for c in &containers {
        let size = capsa_image::local::tree_size(&c.dir(engine).join("upper"));
        let active = matches!(
            c.state.status,
            Status::Running | Status::Paused | Status::Restarting
        );
        ctr_total += size;
        if active {
            ctr_active += 1;
        } else {
            ctr_free += size;
        }
        ctr_rows.push((c.short_id().to_string(), c.name.clone(), size));
    }

    let vols = volume::select(engine, &[])?;
    let (mut vol_total, mut vol_free, mut vol_active) = (0u64, 0u64, 0usize);
    let mut vol_rows = Vec::new();
    for (v, users) in &vols {
        let size = capsa_image::local::tree_size(&v.mountpoint);
        vol_total += size;
        if users.is_empty() {
            vol_free += size;
        } else {
            vol_active += 1;
        }
        vol_rows.push((v.name.clone(), users.len(), size));
    }
    let cache = capsa_image::cache::entries(store)?.len();

    let rows = vec![
        json!({"Type": "Images", "TotalCount": images.len().to_string(), "Active": active_images.to_string(), "Size": human(image_bytes), "Reclaimable": reclaimable(u.reclaimable_bytes, image_bytes)}),
        json!({"Type": "Containers", "TotalCount": containers.len().to_string(), "Active": ctr_active.to_string(), "Size": human(ctr_total), "Reclaimable": reclaimable(ctr_free, ctr_total)}),
        json!({"Type": "Local Volumes", "TotalCount": vols.len().to_string(), "Active": vol_active.to_string(), "Size": human(vol_total), "Reclaimable": reclaimable(vol_free, vol_total)}),
        // Cache entries name layers the images' count already holds.
        json!({"Type": "Build Cache", "TotalCount": cache.to_string(), "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
    ];
    if crate::format::template(&a.format, &rows, HEADERS)? {
        return Ok(());
    }
    if a.format == Format::Json {
        for r in &rows {
            println!("{r}");
        }
        return Ok(());
    }
    print!(
        "{}",
        crate::format::render(
            "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
            true,
            &rows,
            HEADERS
        )?
    );
    if a.verbose {
        let table = |title: &str,
                     tmpl: &str,
                     rows: Vec<serde_json::Value>,
                     h: &[(&str, &str)]|
         -> Result<()> {
            println!("\n{title}:");
            print!("{}", crate::format::render(tmpl, true, &rows, h)?);
            Ok(())
        };
        table(
            "Containers space usage",
            "{{.ID}}\t{{.Names}}\t{{.Size}}",
            ctr_rows
                .iter()
                .map(|(id, name, size)| json!({"ID": id, "Names": name, "Size": human(*size)}))
                .collect(),
            &[("ID", "CONTAINER ID"), ("Names", "NAMES"), ("Size", "SIZE")],
        )?;
        table(
            "Local Volumes space usage",
            "{{.Name}}\t{{.Links}}\t{{.Size}}",
            vol_rows
                .iter()
                .map(
                    |(n, l, size)| json!({"Name": n, "Links": l.to_string(), "Size": human(*size)}),
                )
                .collect(),
            &[
                ("Name", "VOLUME NAME"),
                ("Links", "LINKS"),
                ("Size", "SIZE"),
            ],
        )?;
    }
    Ok(())
}

pub fn prune(engine: &Engine, a: SystemPruneArgs) -> Result<()> {
    if !a.force {
        let mut what = vec![
            "all stopped containers",
            "all networks not used by at least one container",
        ];
        if a.volumes {
            what.push("all anonymous volumes not used by at least one container");
        }
        what.push(if a.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        });
        what.push("unused build cache");
        let mut err = std::io::stderr();
        writeln!(err, "WARNING! This will remove:")?;
        for w in what {
            writeln!(err, "  - {w}")?;
        }
        write!(err, "\nAre you sure you want to continue? [y/N] ")?;
        err.flush()?;
        // No answer (stdin closed, a script) is no.
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            writeln!(err, "\nNothing removed (-f removes without asking).")?;
            return Ok(());
        }
    }
    let section = |title: &str, items: &[String]| {
        if !items.is_empty() {
            println!("Deleted {title}:");
            for i in items {
                println!("{i}");
            }
            println!();
        }
    };
    section("Containers", &manage::prune(engine)?);
    section("Networks", &capsa_engine::network::prune(engine)?);
    if a.volumes {
        section("Volumes", &volume::prune(engine, false, &[])?);
    }
    // The cache first (all of it with -a), so that the collection after
    // the images takes the layers only it held.
    let cache = capsa_image::cache::prune(&engine.images, a.all)?;
    let (images, c) = super::images::prune_images(engine, a.all)?;
    let images: Vec<String> = images.iter().map(|i| format!("deleted: {i}")).collect();
    section("Images", &images);
    if cache > 0 {
        println!("Deleted build cache entries: {cache}\n");
    }
    println!("Total reclaimed space: {}", human(c.bytes));
    Ok(())
}
