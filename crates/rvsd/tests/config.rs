//! The native configuration: the documented example loads; every kind of
//! error names FILE:LINE and why; a bad file applies nothing.

use rvsd::config::parse;
use rvsd::convert::Op;

const EXAMPLE: &str = include_str!("../examples/rvsd.toml");

#[test]
fn documented_example_loads() {
    let c = parse("rvsd.toml", EXAMPLE).unwrap();
    let services = c
        .ops
        .iter()
        .filter(|o| matches!(o, Op::AddService(_)))
        .count();
    let dests = c
        .ops
        .iter()
        .filter(|o| matches!(o, Op::AddDest(..)))
        .count();
    assert_eq!((services, dests), (3, 4));
    assert_eq!(c.director.max_conns, 1_048_576);
    assert_eq!(c.ops[0], Op::SetTimeouts(900, 120, 300));
}

fn err(text: &str) -> String {
    parse("t.toml", text).unwrap_err().0
}

#[test]
fn errors_name_the_line_and_why() {
    // TOML syntax.
    assert!(
        err("[director]\nmax_conns = \n").starts_with("t.toml:2: "),
        "{}",
        err("[director]\nmax_conns = \n")
    );
    // Unknown key.
    let e = err("[director]\nmax_conn = 5\n");
    assert!(e.starts_with("t.toml:2: ") && e.contains("max_conn"), "{e}");
    // ipvsadm's own messages for a bad service or real server, at the line
    // of their table's header.
    let e = err("\n[[service]]\ntcp = \"192.0.2.10\"\n");
    assert_eq!(
        e,
        "t.toml:2: Zero port specified for non-persistent service"
    );
    let e = err(
        "[[service]]\ntcp = \"192.0.2.10:80\"\nscheduler = \"rr\"\n\n[[service.real]]\nserver = \"10.0.0.1:8080\"\nweight = 70000\n",
    );
    assert_eq!(e, "t.toml:5: illegal weight specified");
    // The kernel's answers: duplicates, unknown scheduler.
    let e = err("[[service]]\ntcp = \"192.0.2.10:80\"\n[[service]]\ntcp = \"192.0.2.10:80\"\n");
    assert_eq!(e, "t.toml:3: Service already exists");
    let e = err("[[service]]\ntcp = \"192.0.2.10:80\"\nscheduler = \"fastest\"\n");
    assert_eq!(e, "t.toml:1: Scheduler or persistence engine not found");
    let e = err("[[service]]\nudp = \"192.0.2.10:80\"\ntcp = \"192.0.2.10:80\"\n");
    assert_eq!(
        e,
        "t.toml:1: a service takes only one of tcp, udp, sctp and fwmark"
    );
    let e = err("[director]\ntunnel_src_v4 = \"fd00::1\"\n");
    assert_eq!(e, "t.toml:2: address of the wrong family");
}
