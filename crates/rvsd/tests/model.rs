//! The model: a batch is all or nothing; a reload runs only the difference.
//! Expected operation lists are written by hand.

use rvs_engine::{DestConfig, Forward, ServiceConfig, ServiceKey};
use rvs_types::{Addr, Proto};
use rvsd::config::parse;
use rvsd::convert::Op;
use rvsd::model::Model;
use std::net::{IpAddr, Ipv4Addr};

fn v4(a: [u8; 4]) -> Addr {
    Addr::from(IpAddr::V4(Ipv4Addr::from(a)))
}

fn tcp(port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Proto(6),
        addr: v4([192, 0, 2, 10]),
        port,
    }
}

fn dest(last: u8, weight: i32) -> DestConfig {
    let mut d = DestConfig::new(v4([10, 0, 0, last]), 8080);
    d.fwd = Forward::Masq;
    d.weight = weight;
    d
}

#[test]
fn a_refused_batch_changes_nothing() {
    let mut m = Model::new(Default::default());
    let first = vec![
        Op::AddService(ServiceConfig::new(tcp(80))),
        Op::AddDest(tcp(80), dest(1, 1)),
    ];
    assert_eq!(m.apply(&first).unwrap(), first);
    let before = m.ops().to_vec();
    // Valid first two operations, refused third: none is applied.
    let batch = vec![
        Op::AddService(ServiceConfig::new(tcp(81))),
        Op::AddDest(tcp(80), dest(2, 1)),
        Op::AddDest(tcp(80), dest(1, 5)),
    ];
    let e = m.apply(&batch).unwrap_err();
    assert_eq!(
        (e.message.as_str(), e.exit_code),
        ("Destination already exists", 255)
    );
    assert_eq!(m.ops(), &before[..]);
    assert_eq!(m.services().len(), 1);
    for (op, why) in [
        (
            Op::AddService(ServiceConfig::new(tcp(80))),
            "Service already exists",
        ),
        (Op::DelService(tcp(99)), "No such service"),
        (
            Op::EditService(ServiceConfig::new(tcp(99))),
            "No such service",
        ),
        (Op::AddDest(tcp(99), dest(1, 1)), "Service not defined"),
        (
            Op::DelDest(tcp(80), v4([10, 0, 0, 9]), 8080),
            "No such destination",
        ),
        (Op::EditDest(tcp(80), dest(9, 1)), "No such destination"),
    ] {
        assert_eq!(m.apply(&[op]).unwrap_err().message, why);
        assert_eq!(m.ops(), &before[..]);
    }
}

const OLD: &str = r#"
[[service]]
tcp = "192.0.2.10:80"
scheduler = "rr"
  [[service.real]]
  server = "10.0.0.1:8080"
  method = "masq"
  [[service.real]]
  server = "10.0.0.2:8080"
  method = "masq"
[[service]]
udp = "192.0.2.10:53"
  [[service.real]]
  server = "10.0.0.3"
[[service]]
tcp = "192.0.2.10:443"
"#;

#[test]
fn reload_runs_only_the_difference() {
    let mut m = Model::new(Default::default());
    m.apply(&parse("old", OLD).unwrap().ops).unwrap();
    // Same file again: nothing to do.
    assert_eq!(m.reload(&parse("old", OLD).unwrap().ops).unwrap(), vec![]);
    // Weight of 10.0.0.2 changed, 10.0.0.1 removed, 10.0.0.4 added, the
    // UDP service untouched, :443 removed, :8443 added, scheduler of :80
    // unchanged.
    let new = r#"
[[service]]
tcp = "192.0.2.10:80"
scheduler = "rr"
  [[service.real]]
  server = "10.0.0.2:8080"
  method = "masq"
  weight = 5
  [[service.real]]
  server = "10.0.0.4:8080"
  method = "masq"
[[service]]
udp = "192.0.2.10:53"
  [[service.real]]
  server = "10.0.0.3"
[[service]]
tcp = "192.0.2.10:8443"
"#;
    let ops = m.reload(&parse("new", new).unwrap().ops).unwrap();
    assert_eq!(
        ops,
        vec![
            Op::DelService(tcp(443)),
            Op::DelDest(tcp(80), v4([10, 0, 0, 1]), 8080),
            Op::EditDest(tcp(80), dest(2, 5)),
            Op::AddDest(tcp(80), dest(4, 1)),
            Op::AddService(ServiceConfig::new(tcp(8443))),
        ]
    );
    // The model now equals a fresh load of the new file.
    let mut fresh = Model::new(Default::default());
    fresh.apply(&parse("new", new).unwrap().ops).unwrap();
    assert_eq!(m.reload(fresh.ops()).unwrap(), vec![]);
    // A scheduler change is an edit in place, not a delete and add.
    let edited = new.replacen("scheduler = \"rr\"", "scheduler = \"wrr\"", 1);
    let ops = m.reload(&parse("e", &edited).unwrap().ops).unwrap();
    assert!(
        matches!(ops.as_slice(), [Op::EditService(c)] if c.key == tcp(80) && c.sched.name() == "wrr"),
        "{ops:?}"
    );
}

#[test]
fn a_refused_reload_changes_nothing() {
    let mut m = Model::new(Default::default());
    m.apply(&parse("old", OLD).unwrap().ops).unwrap();
    let before = m.ops().to_vec();
    let bad = vec![
        Op::AddService(ServiceConfig::new(tcp(1))),
        Op::AddService(ServiceConfig::new(tcp(1))),
    ];
    assert_eq!(
        m.reload(&bad).unwrap_err().message,
        "Service already exists"
    );
    assert_eq!(m.ops(), &before[..]);
}
