//! `cargo run -p rvs-keepalived --example check -- FILE [CONFIG_ID]`: loads
//! a keepalived.conf, prints the warnings, then the errors or a summary.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(file) = args.next() else {
        eprintln!("usage: check FILE [CONFIG_ID]");
        return ExitCode::from(2);
    };
    let opts = rvs_keepalived::Options {
        config_id: args.next(),
    };
    match rvs_keepalived::load_with(Path::new(&file), &opts) {
        Ok(l) => {
            for w in &l.warnings {
                eprintln!("warning: {w}");
            }
            for vs in &l.config.virtual_servers {
                println!(
                    "{} {} {} {}: {} real servers",
                    vs.protocol,
                    vs.key,
                    vs.sched,
                    vs.method,
                    vs.real_servers.len()
                );
                for rs in &vs.real_servers {
                    println!(
                        "  {} port {:?} weight {} {} checks",
                        rs.ip,
                        rs.port,
                        rs.weight,
                        rs.checks.len()
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
