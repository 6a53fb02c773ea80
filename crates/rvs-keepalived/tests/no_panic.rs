//! No input makes the parser panic: random text, and real configurations
//! with random edits (the shapes that reach deep into the parser).

use proptest::prelude::*;
use rvs_keepalived::{Options, parse_str, parse_str_with};

const BASE: &str = r#"global_defs {
    router_id LVS_A
    lvs_sync_daemon eth0 VI_1 id 3
    lvs_timeouts tcp 900 tcpfin 120 udp 300
}
$RS= \
    real_server 10.0.1.${N} 80 { \
        weight ${N} \
        HTTP_GET { url { path / } } \
    }
virtual_server_group G {
    10.0.0.5-9 80
    fwmark 3
}
virtual_server 10.0.0.1 80 {
    lb_algo sh
    sh-port
    lb_kind TUN type gue port 6080 csum
    persistence_timeout 50
    persistence_granularity 255.255.255.0
    quorum 2
    hysteresis 1
    sorry_server 10.0.9.9 80
    $N=1
    $RS
    real_server 10.0.1.2 80 {
        weight 2
        inhibit_on_failure
        notify_up "/bin/up.sh 'a b'"
        SSL_GET {
            url {
                path /health
                digest ff20ad2481f97b1754ef3e12ecd3a9cc
                status_code 200-299 503
            }
            enable_sni
        }
        SMTP_CHECK { host { connect_ip 10.0.1.2 } }
        UDP_CHECK {
            payload Ab12f 3
            require_reply 0102
        }
        DNS_CHECK {
            type A
            name example.com
        }
        MISC_CHECK {
            misc_path "/bin/check.sh"
            misc_dynamic
        }
    }
}
@main virtual_server fwmark 7 {
@^main    lb_kind DR
    real_server 2001:db8::1 { }
}
vrrp_instance VI_1 {
    state MASTER
    virtual_ipaddress { 10.0.0.1 }
}
"#;

/// Pieces that mean something to the lexer or the parser.
const PIECES: &[&str] = &[
    "{",
    "}",
    "\"",
    "'",
    "\\",
    "#",
    "!",
    "$",
    "${",
    "$N",
    "$RS",
    "$X=$X $X",
    "@main ",
    "@^",
    "\n",
    " ",
    "include x",
    "~SEQ",
    "-",
    "/",
    ".",
    ":",
    "0",
    "65536",
    "4294967296",
    "-1",
    "TUN",
    "gue",
    "real_server",
    "virtual_server",
    "url",
    "host",
    "fwmark",
    "group",
    "::",
    "1.2.3.4",
    "\u{fffd}",
    "é",
    "\0",
    "\t",
    "\r",
];

fn mutate(base: &str, edits: &[(usize, u8, usize)]) -> String {
    let mut s: Vec<char> = base.chars().collect();
    for &(pos, op, piece) in edits {
        if s.is_empty() {
            s.push('x');
        }
        let pos = pos % (s.len() + 1);
        match op % 3 {
            0 => {
                let p: Vec<char> = PIECES[piece % PIECES.len()].chars().collect();
                s.splice(pos..pos, p);
            }
            1 => {
                let end = (pos + piece % 8).min(s.len());
                s.drain(pos.min(end)..end);
            }
            _ => {
                // Duplicate a stretch (nests blocks, repeats definitions).
                let end = (pos + piece % 64).min(s.len());
                let dup: Vec<char> = s[pos.min(end)..end].to_vec();
                s.splice(pos..pos, dup);
            }
        }
    }
    s.into_iter().collect()
}

#[test]
fn the_base_loads() {
    // The mutations start from a configuration that is valid, so they
    // explore the deep paths and not only the first error.
    let l = parse_str_with(
        "base.conf",
        BASE,
        &Options {
            config_id: Some("main".into()),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(l.config.virtual_servers.len(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_text_does_not_panic(s in "\\PC{0,400}") {
        let _ = parse_str("r.conf", &s);
    }

    #[test]
    fn random_bytes_of_the_alphabet_do_not_panic(
        v in proptest::collection::vec(0usize..PIECES.len(), 0..120)
    ) {
        let s: String = v.iter().map(|&i| PIECES[i]).collect();
        let _ = parse_str("r.conf", &s);
    }

    #[test]
    fn mutated_configurations_do_not_panic(
        edits in proptest::collection::vec((0usize..4000, 0u8..3, 0usize..200), 1..12),
        id in proptest::option::of(Just("main".to_string())),
    ) {
        let s = mutate(BASE, &edits);
        let r = parse_str_with("m.conf", &s, &Options { config_id: id });
        // Errors, when there are, all name a line of the file.
        if let Err(e) = r {
            prop_assert!(!e.0.is_empty());
            let lines = s.split('\n').count() as u32;
            for d in &e.0 {
                prop_assert!(d.line >= 1 && d.line <= lines, "{d} (of {lines} lines)");
            }
        }
    }
}

#[test]
fn substitution_bombs_end_with_an_error() {
    let mut s = String::from("$A0=x x\n");
    for i in 1..40 {
        s.push_str(&format!("$A{i}=$A{} $A{}\n", i - 1, i - 1));
    }
    s.push_str("virtual_server 10.0.0.1 80 {\n virtualhost $A39\n}\n");
    let e = parse_str("bomb.conf", &s).unwrap_err();
    assert!(e.to_string().contains("parameter substitution"), "{e}");
    // Multi-line definitions that multiply lines.
    let mut s = String::from("$L0= \\\nvrrp_script s { \\\n}\n");
    for i in 1..30 {
        s.push_str(&format!("$L{i}= \\\n$L{} \\\n$L{}\n", i - 1, i - 1));
    }
    s.push_str("$L29\n");
    let e = parse_str("bomb.conf", &s).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("too large") || m.contains("too deeply") || m.contains("too much text"),
        "{m}"
    );
}
