//! `global_defs`.

use std::time::Duration;

use crate::value::{self, arg, parse_uint};
use crate::{Block, FlushOnStop, GlobalDefs, LvsSyncDaemon, Sink};

/// keepalived global_defs keywords rvs keeps without acting on (VRRP's, for
/// the HA work): no warning.
fn is_vrrp_global(k: &str) -> bool {
    k.starts_with("vrrp_")
        || matches!(
            k,
            "default_interface"
                | "dynamic_interfaces"
                | "vmac_prefix"
                | "vmac_addr_prefix"
                | "max_auto_priority"
                | "min_auto_priority_delay"
                | "log_unknown_vrids"
                | "no_email_faults"
                | "fifo_write_vrrp_states_on_reload"
                | "smtp_alert_vrrp"
        )
}

/// Every other keyword keepalived documents in global_defs (warned as not
/// supported, rather than as unknown).
const KNOWN: &[&str] = &[
    "bfd_cpu_affinity",
    "bfd_no_swap",
    "bfd_priority",
    "bfd_process_name",
    "bfd_rlimit_rttime",
    "bfd_rt_priority",
    "checker_cpu_affinity",
    "checker_no_swap",
    "checker_priority",
    "checker_process_name",
    "checker_rlimit_rttime",
    "checker_rt_priority",
    "child_wait_time",
    "config_save_dir",
    "data_use_instance",
    "dbus_service_name",
    "enable_dbus",
    "enable_snmp_checker",
    "enable_snmp_rfc",
    "enable_snmp_rfcv2",
    "enable_snmp_rfcv3",
    "enable_snmp_vrrp",
    "enable_snmp_keepalived",
    "enable_traps",
    "include_check",
    "instance",
    "linkbeat_use_polling",
    "lvs_netlink_cmd_rcv_bufs",
    "lvs_netlink_cmd_rcv_bufs_force",
    "lvs_netlink_monitor_rcv_bufs",
    "lvs_netlink_monitor_rcv_bufs_force",
    "lvs_notify_fifo",
    "lvs_notify_fifo_script",
    "namespace_with_ipsets",
    "net_namespace",
    "net_namespace_ipvs",
    "nftables",
    "nftables_counters",
    "nftables_ifindex",
    "nftables_ipvs",
    "nftables_ipvs_priority",
    "nftables_ipvs_start_fwmark",
    "nftables_priority",
    "no_checker_emails",
    "process_monitor_rcv_bufs",
    "process_monitor_rcv_bufs_force",
    "process_name",
    "process_names",
    "random_seed",
    "reload_check_config",
    "reload_file",
    "reload_repeat",
    "reload_time_file",
    "rs_init_notifies",
    "shutdown_script",
    "shutdown_script_timeout",
    "snmp_socket",
    "startup_script",
    "startup_script_timeout",
    "tmp_config_directory",
    "umask",
    "use_pid_dir",
    "notify_fifo",
    "notify_fifo_script",
    "lvs_sync_daemon_interface",
];

pub(crate) fn global_defs(b: &Block, g: &mut GlobalDefs, sink: &mut Sink) {
    if b.children.is_none() {
        sink.err_at(b, "global_defs: needs a '{ }' block");
        return;
    }
    value::at_most(b, 0, sink);
    for c in b.children() {
        let k = c.keyword.as_str();
        match k {
            "router_id" => g.router_id = value::string(c, sink),
            // keepalived 1.x's name for the router id.
            "lvs_id" => {
                if let Some(v) = value::string(c, sink) {
                    g.router_id.get_or_insert(v);
                }
            }
            "lvs_timeouts" => lvs_timeouts(c, g, sink),
            "lvs_sync_daemon" => {
                if !value::repeated(c, &g.lvs_sync_daemon, sink) {
                    g.lvs_sync_daemon = lvs_sync_daemon(c, sink);
                    sink.warn_at(
                        c,
                        "lvs_sync_daemon: kept but not run: rvs does not sync connections yet",
                    );
                }
            }
            "lvs_flush" => {
                if value::bare(c, sink) {
                    g.lvs_flush = true;
                }
            }
            "lvs_flush_on_stop" => {
                value::no_block(c, sink);
                match c.args.first().map(String::as_str) {
                    None => g.lvs_flush_on_stop = FlushOnStop::All,
                    Some("VS") => g.lvs_flush_on_stop = FlushOnStop::Vs,
                    Some(o) => sink.err_at(c, format!("lvs_flush_on_stop: '{o}' is not VS")),
                }
                value::at_most(c, 1, sink);
            }
            "notification_email" => {
                no_mail(c, sink);
                // A block of addresses, or addresses on the line.
                g.notification_email.extend(c.args.iter().cloned());
                for a in c.children() {
                    g.notification_email.push(a.keyword.clone());
                    g.notification_email.extend(a.args.iter().cloned());
                }
            }
            "notification_email_from" => {
                g.notification_email_from = value::string(c, sink);
                no_mail(c, sink);
            }
            "smtp_server" => {
                value::no_block(c, sink);
                if let Some(a) = arg(c, 0, "address", sink) {
                    if let Some(p) = c.args.get(1)
                        && let Err(why) = parse_uint(p, 1, 65535)
                    {
                        sink.err_at(c, format!("smtp_server: port {why}"));
                    }
                    value::at_most(c, 2, sink);
                    g.smtp_server = Some(c.args.join(" "));
                    let _ = a;
                    sink.warn_at(
                        c,
                        "smtp_server: rvs does not send email alerts yet (kept, no mail is sent)",
                    );
                }
            }
            "smtp_helo_name" => {
                g.smtp_helo_name = value::string(c, sink);
                no_mail(c, sink);
            }
            "smtp_connect_timeout" => {
                g.smtp_connect_timeout = value::timer(c, Duration::from_secs(1), sink);
                no_mail(c, sink);
            }
            "smtp_alert" => {
                g.smtp_alert = value::flag(c, sink);
                no_mail(c, sink);
            }
            "smtp_alert_checker" => {
                g.smtp_alert_checker = value::flag(c, sink);
                no_mail(c, sink);
            }
            "checker_log_all_failures" => {
                if let Some(v) = value::flag(c, sink) {
                    g.checker_log_all_failures = v;
                }
            }
            "enable_script_security" => {
                if value::bare(c, sink) {
                    g.enable_script_security = true;
                    sink.warn_at(
                        c,
                        "enable_script_security: not applied: scripts run as rvsd's own user",
                    );
                }
            }
            "script_user" => {
                value::no_block(c, sink);
                if let Some(u) = arg(c, 0, "user name", sink) {
                    value::at_most(c, 2, sink);
                    g.script_user = Some((u.to_string(), c.args.get(1).cloned()));
                    sink.warn_at(
                        c,
                        "script_user: not applied: scripts run as rvsd's own user",
                    );
                }
            }
            _ if is_vrrp_global(k) => g.other.push(c.clone()),
            _ if KNOWN.contains(&k) => {
                sink.warn_at(
                    c,
                    format!("global_defs: '{k}' is not supported by rvs yet (ignored)"),
                );
                g.other.push(c.clone());
            }
            _ => {
                sink.warn_at(c, format!("global_defs: unknown keyword '{k}' (ignored)"));
                g.other.push(c.clone());
            }
        }
    }
}

/// keepalived's email settings: kept, and said to do nothing.
fn no_mail(c: &Block, sink: &mut Sink) {
    sink.warn_at(
        c,
        format!(
            "{}: rvs does not send email alerts yet (kept, no mail is sent)",
            c.keyword
        ),
    );
}

fn lvs_timeouts(c: &Block, g: &mut GlobalDefs, sink: &mut Sink) {
    value::no_block(c, sink);
    if c.args.is_empty() {
        sink.err_at(c, "lvs_timeouts: missing tcp|tcpfin|udp SECONDS");
    }
    let mut it = c.args.iter();
    while let Some(k) = it.next() {
        let Some(v) = it.next() else {
            sink.err_at(c, format!("lvs_timeouts: {k} needs a number of seconds"));
            return;
        };
        // keepalived: at most 31 days.
        let secs = match parse_uint(v, 0, 86400 * 31) {
            Ok(s) => u32::try_from(s).ok(),
            Err(why) => {
                sink.err_at(c, format!("lvs_timeouts: {k}: {why}"));
                continue;
            }
        };
        match k.as_str() {
            "tcp" => g.lvs_timeouts.tcp = secs,
            "tcpfin" => g.lvs_timeouts.tcpfin = secs,
            "udp" => g.lvs_timeouts.udp = secs,
            o => sink.err_at(c, format!("lvs_timeouts: '{o}' is not tcp, tcpfin or udp")),
        }
    }
}

fn lvs_sync_daemon(c: &Block, sink: &mut Sink) -> Option<LvsSyncDaemon> {
    value::no_block(c, sink);
    let interface = arg(c, 0, "interface", sink)?.to_string();
    let mut d = LvsSyncDaemon {
        interface,
        instance: None,
        id: None,
        maxlen: None,
        port: None,
        ttl: None,
        group: None,
    };
    let mut i = 1;
    let mut ok = true;
    while i < c.args.len() {
        let k = c.args[i].as_str();
        let v = c.args.get(i + 1).map(String::as_str);
        let mut num = |min: u64, max: u64| -> Option<u64> {
            match v.map(|v| parse_uint(v, min, max)) {
                Some(Ok(n)) => Some(n),
                Some(Err(why)) => {
                    sink.err_at(c, format!("lvs_sync_daemon: {k}: {why}"));
                    None
                }
                None => {
                    sink.err_at(c, format!("lvs_sync_daemon: {k} needs a value"));
                    None
                }
            }
        };
        match k {
            "id" => d.id = num(0, 255).and_then(|n| u8::try_from(n).ok()),
            "maxlen" => d.maxlen = num(1, 65535 - 20 - 8).and_then(|n| u16::try_from(n).ok()),
            "port" => d.port = num(1, 65535).and_then(|n| u16::try_from(n).ok()),
            "ttl" => d.ttl = num(1, 255).and_then(|n| u8::try_from(n).ok()),
            "group" => match v.and_then(value::parse_ip) {
                Some(a) => d.group = Some(a),
                None => {
                    sink.err_at(c, "lvs_sync_daemon: group needs a multicast address");
                    ok = false;
                }
            },
            "inst" => match v {
                Some(n) => d.instance = Some(n.to_string()),
                None => {
                    sink.err_at(c, "lvs_sync_daemon: inst needs a VRRP instance name");
                    ok = false;
                }
            },
            _ if i == 1 => {
                d.instance = Some(k.to_string());
                i += 1;
                continue;
            }
            o => {
                sink.err_at(c, format!("lvs_sync_daemon: unknown option '{o}'"));
                ok = false;
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    ok.then_some(d)
}
