//! Starts one child per start method, each logging under its own name.
//!
//! `cargo run -p multiprocessing --example processes`

use multiprocessing::log::Level;
use multiprocessing::{current_process, get_context, log_to_stderr, parent_process, StartMethod};

fn work(label: String, n: u64) -> Result<(), String> {
    let me = current_process();
    let parent = parent_process().map(|p| p.name()).unwrap_or_default();
    multiprocessing::get_logger().info(format!(
        "{label}: I am {} (pid {:?}), child of {parent}; sum 1..={n} = {}",
        me.name(),
        me.pid().map_err(|e| e.to_string())?,
        (1..=n).sum::<u64>()
    ));
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiprocessing::init();
    log_to_stderr(Level::Info)?;
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ] {
        let p = get_context(method).process(work, (method.to_string(), 100));
        p.start()?;
        p.join()?;
        println!("{p}");
    }
    Ok(())
}
