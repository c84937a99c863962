//! `capsa exec`: a process joined to a running container's namespaces and
//! cgroup, with the container's own settings (capabilities, seccomp,
//! environment) unless the flags say otherwise.

use crate::container::Container;
use crate::error::{Error, Result};
use crate::Engine;

pub use crate::options::ExecOptions;

/// Run it; with `detach`, return at once (exit code 0), else wait with
/// signals forwarded and the pty proxied, and return its exit code.
pub fn exec(engine: &Engine, c: &Container, o: &ExecOptions) -> Result<i32> {
    if !c.init_alive() {
        return Err(Error::Conflict(format!(
            "container {} is not running",
            c.name
        )));
    }
    if o.args.is_empty() {
        return Err(crate::error::flag("COMMAND", "exec needs a command"));
    }
    crate::runtime::Runtime::of(engine, c).exec(engine, c, o)
}
