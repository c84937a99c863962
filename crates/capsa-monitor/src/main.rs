//! `capsa-monitor`: the monitor of one container, started by `capsa run`
//! (never by hand). A binary of its own so that each running container
//! costs only the pages the monitor touches, not those of the `capsa`
//! command line; see `capsa_engine::monitor`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(capsa_engine::monitor::MONITOR_ARG) {
        eprintln!("capsa-monitor: started by capsa, not by hand");
        std::process::exit(2);
    }
    // The monitor forks its container's init: it runs from a sealed image
    // (capsa execs it through one; this re-executes otherwise).
    if let Err(e) = capsa_runtime::door::seal() {
        eprintln!("capsa-monitor: {e}");
        std::process::exit(1);
    }
    capsa_engine::monitor::main_from_args(&args[1..]);
}
