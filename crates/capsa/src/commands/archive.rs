//! load, save, import.

use crate::cli::{ImportArgs, LoadArgs, SaveArgs, SaveFormat};
use crate::progress::Display;
use anyhow::{Context, Result};
use capsa_image::archive::{self, SaveFormat as Layout};
use capsa_image::{local, Reference, Store};

pub fn load(store: &Store, a: LoadArgs) -> Result<()> {
    let display = Display::new(a.quiet);
    let recs = archive::load(store, &a.input, &|p| display.event(p));
    display.finish();
    let recs = recs.with_context(|| format!("loading {}", a.input.display()))?;
    for r in recs {
        match r.names.last() {
            Some(n) => println!("Loaded image: {n}"),
            None => println!("Loaded image ID: {}", r.id),
        }
    }
    Ok(())
}

pub fn save(store: &Store, a: SaveArgs) -> Result<()> {
    let mut images = Vec::new();
    for what in &a.images {
        let rec = store.resolve(what)?;
        // Saved under the name asked for, or all names when asked by id.
        let names = match Reference::parse(what) {
            Ok(r) if rec.names.contains(&r.to_string()) => vec![r.to_string()],
            _ => rec.names.clone(),
        };
        images.push((rec, names));
    }
    let layout = match a.format {
        SaveFormat::DockerArchive | SaveFormat::OciArchive => Layout::Archive,
        SaveFormat::OciDir => Layout::Dir,
    };
    archive::save(store, &images, &a.output, layout)
        .with_context(|| format!("saving to {}", a.output.display()))
}

pub fn import(store: &Store, a: ImportArgs) -> Result<()> {
    let name = a.reference.as_deref().map(Reference::parse).transpose()?;
    let display = Display::new(a.quiet);
    let rec = if a.file == "-" {
        local::import_rootfs(store, std::io::stdin(), name.as_ref(), &|_| {})
    } else {
        let f = std::fs::File::open(&a.file).with_context(|| format!("opening {}", a.file))?;
        local::import_rootfs(store, f, name.as_ref(), &|p| display.event(p))
    };
    display.finish();
    println!(
        "{}",
        rec.with_context(|| format!("importing {}", a.file))?.id
    );
    Ok(())
}
