//! `include`: relative to the including file, globs, nesting, cycles,
//! missing files; messages name the file the problem is in.

use std::fs;
use std::path::Path;

use rvs_keepalived::{load, parse_str};

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

const VS: &str = "virtual_server 10.0.0.{N} 80 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n real_server 10.0.1.{N} 80 {\n }\n}\n";

#[test]
fn globs_relative_to_the_including_file_sorted_and_nested() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    write(
        root,
        "keepalived.conf",
        "global_defs {\n router_id A\n}\ninclude conf.d/*.conf\n",
    );
    write(root, "conf.d/20-b.conf", &VS.replace("{N}", "2"));
    write(
        root,
        "conf.d/10-a.conf",
        &format!("{}include ../more/x.conf\n", VS.replace("{N}", "1")),
    );
    write(root, "conf.d/ignored.txt", "garbage {{{\n");
    // Relative to conf.d/10-a.conf's directory, not to the main file's.
    write(root, "more/x.conf", &VS.replace("{N}", "3"));
    let l = load(&root.join("keepalived.conf")).unwrap_or_else(|e| panic!("{e}"));
    let order: Vec<String> = l
        .config
        .virtual_servers
        .iter()
        .map(|v| format!("{:?}", v.key))
        .collect();
    assert_eq!(order.len(), 3);
    assert!(
        order[0].contains("10.0.0.1")
            && order[1].contains("10.0.0.3")
            && order[2].contains("10.0.0.2"),
        "{order:?}"
    );
    let vs3 = &l.config.virtual_servers[1];
    assert!(vs3.file.ends_with("more/x.conf"), "{:?}", vs3.file);
    assert_eq!(vs3.line, 1);
    assert_eq!(vs3.real_servers[0].line, 5);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn an_include_inside_a_block() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "main.conf",
        "virtual_server 10.0.0.1 80 {\n lb_algo rr\n include rs.conf\n}\n",
    );
    write(
        d.path(),
        "rs.conf",
        "real_server 10.0.1.1 80 {\n weight 3\n}\n",
    );
    let l = load(&d.path().join("main.conf")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(l.config.virtual_servers[0].real_servers[0].weight, 3);
}

#[test]
fn errors_in_an_included_file_name_that_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "main.conf", "include bad.conf\n");
    write(
        d.path(),
        "bad.conf",
        "\n\nvirtual_server 10.0.0.1 80 {\n lb_algo nope\n}\n",
    );
    let e = load(&d.path().join("main.conf")).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].line, 4);
    assert!(e.0[0].file.ends_with("bad.conf"));
    assert!(e.to_string().ends_with("bad.conf:4: lb_algo: unknown scheduler 'nope' (one of rr|wrr|lc|wlc|lblc|sh|mh|dh|fo|ovf|lblcr|sed|nq|twos)"), "{e}");
}

#[test]
fn a_missing_file_is_an_error_at_the_include_line() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "main.conf", "! header\ninclude nothere.conf\n");
    let e = load(&d.path().join("main.conf")).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert!(e.0[0].file.ends_with("main.conf"));
    assert_eq!(e.0[0].line, 2);
    assert!(e.0[0].message.starts_with("include "), "{e}");
    assert!(e.0[0].message.contains("nothere.conf: cannot read"), "{e}");
}

#[test]
fn a_glob_matching_nothing_is_a_warning() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "main.conf", "include conf.d/*.conf\n");
    let l = load(&d.path().join("main.conf")).unwrap();
    assert_eq!(l.warnings.len(), 1);
    assert_eq!(l.warnings[0].line, 1);
    assert!(l.warnings[0].message.contains("no file matches"));
}

#[test]
fn include_cycles_are_errors() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.conf", "include b.conf\n");
    write(d.path(), "b.conf", "\ninclude a.conf\n");
    let e = load(&d.path().join("a.conf")).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert!(e.0[0].file.ends_with("b.conf"));
    assert_eq!(e.0[0].line, 2);
    assert!(e.0[0].message.contains("include cycle"), "{e}");
    // Including itself.
    write(d.path(), "self.conf", "include self.conf\n");
    let e = load(&d.path().join("self.conf")).unwrap_err();
    assert!(e.0[0].message.contains("include cycle"), "{e}");
}

#[test]
fn the_same_file_twice_is_not_a_cycle() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "main.conf", "include g.conf\ninclude g.conf\n");
    write(
        d.path(),
        "g.conf",
        "vrrp_script s {\n script /bin/true\n}\n",
    );
    let l = load(&d.path().join("main.conf")).unwrap();
    assert_eq!(l.config.vrrp_scripts.len(), 2);
}

#[test]
fn definitions_carry_across_includes_and_pwd_is_the_files_directory() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "main.conf", "$ALGO=sh\ninclude sub/vs.conf\n");
    write(
        d.path(),
        "sub/vs.conf",
        "virtual_server 10.0.0.1 80 {\n lb_algo $ALGO\n quorum_up ${_PWD}/up.sh\n}\n",
    );
    let l = load(&d.path().join("main.conf")).unwrap_or_else(|e| panic!("{e}"));
    let v = &l.config.virtual_servers[0];
    assert_eq!(v.sched, "sh");
    let up = &v.quorum_up.as_ref().unwrap().command;
    assert!(
        up.ends_with("sub/up.sh") && Path::new(up).is_absolute(),
        "{up}"
    );
}

#[test]
fn an_unreadable_main_file_is_an_error() {
    let e = load(Path::new("/nonexistent/keepalived.conf")).unwrap_err();
    assert_eq!(e.0[0].line, 0);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/keepalived.conf: cannot read"),
        "{e}"
    );
}

#[test]
fn absolute_includes_work_from_text() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "x.conf",
        "vrrp_script s {\n script /bin/true\n}\n",
    );
    let p = d.path().join("x.conf");
    let l = parse_str("t.conf", &format!("include {}\n", p.display())).unwrap();
    assert_eq!(l.config.vrrp_scripts.len(), 1);
}

#[test]
fn an_include_behind_a_conditional_or_parameter_is_an_error_not_ignored() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "x.conf",
        "vrrp_script s {\n script /bin/true\n}\n",
    );
    write(
        d.path(),
        "main.conf",
        "@^nobody include x.conf\n$INC=include x.conf\n$INC\n",
    );
    let e = load(&d.path().join("main.conf")).unwrap_err();
    assert_eq!(e.0.iter().map(|d| d.line).collect::<Vec<_>>(), vec![1, 3]);
    assert!(e.0[0].message.contains("is not followed"), "{e}");
}

#[test]
fn brace_expressions_in_include() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "main.conf",
        "include {a,sub/{b,c}}.conf\ninclude \"sp ace.conf\"\n",
    );
    for (f, name) in [
        ("a.conf", "A"),
        ("sub/b.conf", "B"),
        ("sub/c.conf", "C"),
        ("sp ace.conf", "D"),
    ] {
        write(
            d.path(),
            f,
            &format!("vrrp_script {name} {{\n script /bin/true\n}}\n"),
        );
    }
    let l = load(&d.path().join("main.conf")).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = l
        .config
        .vrrp_scripts
        .iter()
        .filter_map(|b| b.name())
        .collect();
    assert_eq!(names, vec!["A", "B", "C", "D"]);
}
