//! pull, push, login, logout.

use crate::cli::{LoginArgs, LogoutArgs, PullArgs, PushArgs, RegistryArgs};
use crate::progress::Display;
use anyhow::{bail, Context, Result};
use capsa_image::auth::{self, Credentials};
use capsa_image::manifest::Platform;
use capsa_image::registry::{self, Client, Options, PullOptions};
use capsa_image::{Reference, Store};
use std::io::Read;

pub(crate) fn options(a: &RegistryArgs) -> Result<Options> {
    let credentials = match &a.creds {
        Some(c) => {
            let (u, p) = c
                .split_once(':')
                .context("--creds: expected USER:PASSWORD")?;
            Some(Credentials {
                username: u.into(),
                password: p.into(),
                realms: a.realm.clone(),
            })
        }
        None => None,
    };
    Ok(Options {
        tls_verify: a.tls_verify,
        ca_file: a.ca_file.clone(),
        credentials,
        auth_file: a.authfile.clone(),
    })
}

/// Pull `r` for a command that needs an image the store lacks (`run`,
/// `build`'s FROM), with the registry flags and progress on stderr; an
/// engine error, so the command's exit code comes from its kind.
pub(crate) fn pull_missing(
    store: &Store,
    r: &Reference,
    registry: &RegistryArgs,
    quiet: bool,
) -> capsa_engine::Result<capsa_image::ImageRecord> {
    let options = options(registry).map_err(|e| capsa_engine::Error::Refused {
        what: "the registry flags".into(),
        reason: e.to_string(),
    })?;
    let client = Client::new(r, &options)?;
    let display = Display::new(quiet);
    let rec = registry::pull(store, &client, r, &Default::default(), &|p| {
        display.event(p)
    });
    display.finish();
    rec.map_err(|e| capsa_engine::Error::Refused {
        what: r.to_string(),
        reason: format!("not in the store, and pulling it failed: {e}"),
    })
}

pub fn pull(store: &Store, a: PullArgs) -> Result<()> {
    let r = Reference::parse(&a.image)?;
    let client = Client::new(&r, &options(&a.registry)?)?;
    let opts = PullOptions {
        platform: match &a.platform {
            Some(p) => Platform::parse(p)?,
            None => Platform::host(),
        },
        jobs: a.jobs.max(1),
        unpack: true,
    };
    let display = Display::new(a.quiet);
    let rec = registry::pull(store, &client, &r, &opts, &|p| display.event(p));
    display.finish();
    let rec = rec.with_context(|| format!("pulling {r}"))?;
    println!("{}", rec.id);
    Ok(())
}

pub fn push(store: &Store, a: PushArgs) -> Result<()> {
    let rec = store.resolve(&a.image)?;
    let target = Reference::parse(a.destination.as_deref().unwrap_or(&a.image))?;
    let client = Client::new(&target, &options(&a.registry)?)?;
    let display = Display::new(a.quiet);
    let d = registry::push(store, &client, &rec, &target, a.jobs.max(1), &|p| {
        display.event(p)
    });
    display.finish();
    let d = d.with_context(|| format!("pushing {target}"))?;
    if !a.quiet {
        eprintln!("{target}: pushed");
    }
    println!("{d}");
    Ok(())
}

pub fn login(a: LoginArgs) -> Result<()> {
    let username = match a.username {
        Some(u) => u,
        None => bail!("login {}: --username is required", a.registry),
    };
    let password = match (a.password, a.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are exclusive"),
        (Some(p), false) => p,
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the password from stdin")?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => bail!("login {}: give --password or --password-stdin", a.registry),
    };
    let creds = Credentials {
        username,
        password,
        realms: a.realm.clone(),
    };
    // Check the credentials against the registry before keeping them.
    let r = Reference::parse(&format!("{}/capsa-login-check", a.registry))
        .with_context(|| format!("{}: not a registry host", a.registry))?;
    let client = Client::new(
        &r,
        &Options {
            tls_verify: a.tls_verify,
            ca_file: a.ca_file.clone(),
            credentials: Some(creds.clone()),
            auth_file: None,
        },
    )?;
    client
        .ping()
        .with_context(|| format!("logging in to {}", a.registry))?;
    let file = a.authfile.unwrap_or_else(auth::default_file);
    auth::save(&file, &r.registry, Some(&creds))?;
    eprintln!("Login Succeeded ({})", file.display());
    Ok(())
}

pub fn logout(a: LogoutArgs) -> Result<()> {
    let file = a.authfile.unwrap_or_else(auth::default_file);
    let registry = Reference::parse(&format!("{}/x", a.registry))
        .map(|r| r.registry)
        .unwrap_or(a.registry.clone());
    if auth::save(&file, &registry, None)? {
        eprintln!("Removed login credentials for {registry}");
        Ok(())
    } else {
        bail!("not logged in to {registry} ({})", file.display())
    }
}
