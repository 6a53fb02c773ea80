//! Real configurations: every sample Debian's keepalived package ships, and
//! the seeds' fwmark configuration.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rvs_keepalived::{Method, VsKey, load};

/// Where Debian's keepalived package puts its doc samples.
const SAMPLES: &str = "/usr/share/doc/keepalived/samples";

/// The sample configurations the installed package lists (`dpkg -L
/// keepalived`, the files named keepalived.conf* under a samples folder or
/// named *.sample), or `None` with the reason printed.
fn samples() -> Option<Vec<PathBuf>> {
    let out = match std::process::Command::new("dpkg")
        .args(["-L", "keepalived"])
        .output()
    {
        Ok(o) if o.status.success() => o,
        Ok(_) => {
            println!(
                "skipped: the keepalived package is not installed (apt-get install keepalived)"
            );
            return None;
        }
        Err(e) => {
            println!("skipped: cannot run dpkg ({e}): not a Debian system?");
            return None;
        }
    };
    let mut v: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let in_samples = p.parent().is_some_and(|d| d.ends_with("samples"));
            name.starts_with("keepalived.conf") && (in_samples || name.ends_with(".sample"))
        })
        .collect();
    v.sort();
    let listed = v.len();
    v.retain(|p| p.is_file());
    if !v.iter().any(|p| p.starts_with(SAMPLES)) {
        println!(
            "skipped: dpkg lists {listed} samples but {SAMPLES} has none on disk (dpkg path-exclude for /usr/share/doc?)"
        );
        return None;
    }
    Some(v)
}

#[test]
fn every_debian_sample_loads() {
    let Some(files) = samples() else { return };
    // Debian 12's package ships 26 in the samples folder.
    assert!(
        files.len() >= 10,
        "only {} samples in {SAMPLES}: is the package complete?",
        files.len()
    );
    let mut failed = Vec::new();
    for f in &files {
        match load(f) {
            Ok(l) => {
                println!(
                    "{}: ok, {} virtual servers, {} vrrp instances, {} warnings",
                    f.display(),
                    l.config.virtual_servers.len(),
                    l.config.vrrp_instances.len(),
                    l.warnings.len()
                );
                for w in &l.warnings {
                    println!("  warning: {w}");
                }
            }
            Err(e) => failed.push(format!("{}:\n{e}", f.display())),
        }
    }
    assert!(
        failed.is_empty(),
        "samples rejected:\n{}",
        failed.join("\n")
    );
}

#[test]
fn debian_samples_mean_what_they_say() {
    let Some(_) = samples() else { return };
    let l = load(&Path::new(SAMPLES).join("keepalived.conf.virtual_server_group")).unwrap();
    let vs = &l.config.virtual_servers[0];
    assert_eq!(vs.key, VsKey::Group("VSG_1".into()));
    assert_eq!(l.config.virtual_server_groups[0].members.len(), 6);
    let l = load(&Path::new(SAMPLES).join("keepalived.conf.SMTP_CHECK")).unwrap();
    // 1 + 3 + 3 checks: host { } blocks are one check each.
    let n: Vec<usize> = l.config.virtual_servers[0]
        .real_servers
        .iter()
        .map(|r| r.checks.len())
        .collect();
    assert_eq!(n, vec![1, 3, 3]);
    let l = load(&Path::new(SAMPLES).join("keepalived.conf.quorum")).unwrap();
    let vs = &l.config.virtual_servers[0];
    assert_eq!(
        (vs.quorum, vs.hysteresis, vs.alpha, vs.omega),
        (7, 2, true, true)
    );
    assert!(vs.real_servers.iter().all(|r| r.checks[0].common.alpha));
}

#[test]
fn the_seeds_fwmark_configuration_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed_004_fwmark.conf");
    let l = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let c = &l.config;
    assert_eq!(c.vrrp_sync_groups.len(), 1);
    assert_eq!(c.vrrp_instances.len(), 2);
    assert_eq!(c.virtual_servers.len(), 2);
    for (vs, mark, net) in [
        (&c.virtual_servers[0], 310, "172.16.10."),
        (&c.virtual_servers[1], 320, "172.16.20."),
    ] {
        assert_eq!(vs.key, VsKey::Fwmark(mark));
        assert_eq!(vs.sched, "lc");
        assert_eq!(vs.method, Method::Dr);
        assert_eq!(vs.persistence_timeout, None);
        assert_eq!(vs.delay_loop.as_secs(), 20);
        let ips: Vec<IpAddr> = vs.real_servers.iter().map(|r| r.ip).collect();
        assert_eq!(
            ips,
            vec![
                format!("{net}3").parse::<IpAddr>().unwrap(),
                format!("{net}4").parse::<IpAddr>().unwrap()
            ]
        );
        // DR behind a fwmark: the real servers' ports are dropped, as keepalived does.
        assert!(
            vs.real_servers
                .iter()
                .all(|r| r.port.is_none() && r.weight == 1)
        );
    }
    for w in &l.warnings {
        println!("warning: {w}");
    }
}
