//! Protocol state machines and timeouts, ported from the kernel's
//! `net/netfilter/ipvs/ip_vs_proto_{tcp,udp,sctp}.c`.
//!
//! State numbers are the kernel's (`IP_VS_TCP_S_*`, `IP_VS_UDP_S_*`,
//! `IP_VS_SCTP_S_*`), so `Conn::state` can be synced with kernel peers and
//! printed with the same names `ipvsadm -L -c` shows.

use std::time::Duration;

use rvs_types::Proto;

/// Packet direction as IPVS's `IP_VS_DIR_*`.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Hash)]
pub enum Dir {
    /// `IP_VS_DIR_INPUT`: client to real server through us (NAT, or any
    /// method while replies are also seen).
    Input,
    /// `IP_VS_DIR_OUTPUT`: reply from the real server through us.
    Output,
    /// `IP_VS_DIR_INPUT_ONLY`: client to real server where replies bypass us
    /// (DR/TUN). The table also switches to this row set by itself for
    /// conns flagged `NOOUTPUT`, as `set_tcp_state` does.
    InputOnly,
}

/// TCP states (`IP_VS_TCP_S_*`, kernel numbering).
pub mod tcp {
    /// `IP_VS_TCP_S_NONE`.
    pub const NONE: u8 = 0;
    /// `IP_VS_TCP_S_ESTABLISHED`.
    pub const ESTABLISHED: u8 = 1;
    /// `IP_VS_TCP_S_SYN_SENT`.
    pub const SYN_SENT: u8 = 2;
    /// `IP_VS_TCP_S_SYN_RECV`.
    pub const SYN_RECV: u8 = 3;
    /// `IP_VS_TCP_S_FIN_WAIT`.
    pub const FIN_WAIT: u8 = 4;
    /// `IP_VS_TCP_S_TIME_WAIT`.
    pub const TIME_WAIT: u8 = 5;
    /// `IP_VS_TCP_S_CLOSE`.
    pub const CLOSE: u8 = 6;
    /// `IP_VS_TCP_S_CLOSE_WAIT`.
    pub const CLOSE_WAIT: u8 = 7;
    /// `IP_VS_TCP_S_LAST_ACK`.
    pub const LAST_ACK: u8 = 8;
    /// `IP_VS_TCP_S_LISTEN`.
    pub const LISTEN: u8 = 9;
    /// `IP_VS_TCP_S_SYNACK`.
    pub const SYNACK: u8 = 10;
    /// Number of TCP states (`IP_VS_TCP_S_LAST`).
    pub const COUNT: usize = 11;

    /// TCP header flag bits as on the wire (byte 13 of the TCP header).
    pub const FIN: u8 = 0x01;
    /// SYN flag bit.
    pub const SYN: u8 = 0x02;
    /// RST flag bit.
    pub const RST: u8 = 0x04;
    /// ACK flag bit.
    pub const ACK: u8 = 0x10;

    /// Names as `tcp_state_name_table[]` (what `ipvsadm -L -c` prints).
    pub const NAMES: [&str; COUNT] = [
        "NONE",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "SYNACK",
    ];

    /// `tcp_state_active_table[]`: states counted in the dest's
    /// `activeconns` (current kernels count the pre-established states
    /// SYN_SENT, SYN_RECV and SYNACK as active too, not only ESTABLISHED).
    pub const ACTIVE: [bool; COUNT] = [
        false, true, true, true, false, false, false, false, false, false, true,
    ];

    /// Whether `state` is half-open (never reached ESTABLISHED in this
    /// incarnation): the states the table may evict under SYN flood.
    #[inline]
    pub fn is_embryonic(state: u8) -> bool {
        matches!(state, NONE | SYN_SENT | SYN_RECV | SYNACK)
    }

    const ES: u8 = ESTABLISHED;
    const SS: u8 = SYN_SENT;
    const SR: u8 = SYN_RECV;
    const FW: u8 = FIN_WAIT;
    const TW: u8 = TIME_WAIT;
    const CL: u8 = CLOSE;
    const CW: u8 = CLOSE_WAIT;
    const LA: u8 = LAST_ACK;
    const LI: u8 = LISTEN;
    const SA: u8 = SYNACK;

    /// `tcp_states[]`: rows `dir_offset + event` (INPUT 0, OUTPUT 4,
    /// INPUT_ONLY 8; events syn 0, fin 1, ack 2, rst 3), columns the
    /// current state.
    pub(crate) const STATES: [[u8; COUNT]; 12] = [
        // INPUT      sNO sES sSS sSR sFW sTW sCL sCW sLA sLI sSA
        /*syn*/
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
        // OUTPUT
        /*syn*/ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        /*fin*/ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /*rst*/ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
        // INPUT-ONLY
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ];

    /// `tcp_states_dos[]`, used when `secure_tcp` is on.
    pub(crate) const STATES_DOS: [[u8; COUNT]; 12] = [
        // INPUT      sNO sES sSS sSR sFW sTW sCL sCW sLA sLI sSA
        /*syn*/
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SA],
        /*fin*/ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, SA],
        /*ack*/ [ES, ES, SS, SR, FW, TW, CL, CW, CL, LI, SA],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
        // OUTPUT
        /*syn*/ [SS, ES, SS, SA, SS, SS, SS, SS, SS, LI, SA],
        /*fin*/ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /*rst*/ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
        // INPUT-ONLY
        /*syn*/ [SA, ES, ES, SR, SA, SA, SA, SA, SA, SA, SA],
        /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ];

    /// [`EVENTS`] entry of a packet without RST, SYN, FIN or ACK.
    const NO_EVENT: u8 = u8::MAX;

    /// [`event`] of every combination of the bits it reads, indexed by
    /// `FIN | SYN | RST` in bits 0 to 2 and ACK in bit 3.
    pub(crate) const EVENTS: [u8; 16] = {
        let mut t = [NO_EVENT; 16];
        let mut i = 0;
        while i < 16 {
            let flags = (i & 7) as u8 | if i & 8 != 0 { ACK } else { 0 };
            if let Some(ev) = event(flags) {
                t[i] = ev as u8;
            }
            i += 1;
        }
        t
    };

    /// `tcp_state_idx()`: rst > syn > fin > ack; `None` when none is set
    /// (the kernel then moves the conn to CLOSE).
    #[inline]
    pub(crate) const fn event(flags: u8) -> Option<usize> {
        if flags & RST != 0 {
            Some(3)
        } else if flags & SYN != 0 {
            Some(0)
        } else if flags & FIN != 0 {
            Some(1)
        } else if flags & ACK != 0 {
            Some(2)
        } else {
            None
        }
    }

    /// `set_tcp_state()`'s next-state computation (direction already
    /// resolved to its row offset 0/4/8). Unknown current states behave
    /// like an unknown event: CLOSE.
    ///
    /// The event comes from [`EVENTS`] (one load instead of four bit tests
    /// and branches): this runs on every TCP packet.
    #[inline(always)]
    pub(crate) fn next(secure: bool, dir_off: usize, flags: u8, state: u8) -> u8 {
        let ev = EVENTS[usize::from(flags & (FIN | SYN | RST) | (flags & ACK) >> 1)];
        if ev == NO_EVENT {
            return CLOSE;
        }
        let ev = usize::from(ev);
        let table = if secure { &STATES_DOS } else { &STATES };
        table
            .get(dir_off + ev)
            .and_then(|row| row.get(state as usize))
            .copied()
            .unwrap_or(CLOSE)
    }
}

/// UDP's single state (`IP_VS_UDP_S_NORMAL`).
pub mod udp {
    /// `IP_VS_UDP_S_NORMAL`.
    pub const NORMAL: u8 = 0;
}

/// ICMP's single state.
pub mod icmp {
    /// The only ICMP state.
    pub const NORMAL: u8 = 0;
}

/// SCTP states (`IP_VS_SCTP_S_*`, kernel numbering) and chunk events.
pub mod sctp {
    /// `IP_VS_SCTP_S_NONE`.
    pub const NONE: u8 = 0;
    /// `IP_VS_SCTP_S_INIT1`: first client INIT sent.
    pub const INIT1: u8 = 1;
    /// `IP_VS_SCTP_S_INIT`: further client INITs.
    pub const INIT: u8 = 2;
    /// `IP_VS_SCTP_S_COOKIE_SENT`: server INIT-ACK sent.
    pub const COOKIE_SENT: u8 = 3;
    /// `IP_VS_SCTP_S_COOKIE_REPLIED`: client COOKIE-ECHO sent.
    pub const COOKIE_REPLIED: u8 = 4;
    /// `IP_VS_SCTP_S_COOKIE_WAIT`: server INIT sent.
    pub const COOKIE_WAIT: u8 = 5;
    /// `IP_VS_SCTP_S_COOKIE`: client INIT-ACK sent.
    pub const COOKIE: u8 = 6;
    /// `IP_VS_SCTP_S_COOKIE_ECHOED`: server COOKIE-ECHO sent.
    pub const COOKIE_ECHOED: u8 = 7;
    /// `IP_VS_SCTP_S_ESTABLISHED`.
    pub const ESTABLISHED: u8 = 8;
    /// `IP_VS_SCTP_S_SHUTDOWN_SENT`.
    pub const SHUTDOWN_SENT: u8 = 9;
    /// `IP_VS_SCTP_S_SHUTDOWN_RECEIVED`.
    pub const SHUTDOWN_RECEIVED: u8 = 10;
    /// `IP_VS_SCTP_S_SHUTDOWN_ACK_SENT`.
    pub const SHUTDOWN_ACK_SENT: u8 = 11;
    /// `IP_VS_SCTP_S_REJECTED`: INIT answered by ABORT.
    pub const REJECTED: u8 = 12;
    /// `IP_VS_SCTP_S_CLOSED`.
    pub const CLOSED: u8 = 13;
    /// Number of SCTP states (`IP_VS_SCTP_S_LAST`).
    pub const COUNT: usize = 14;

    /// Names as `sctp_state_name_table[]`.
    pub const NAMES: [&str; COUNT] = [
        "NONE",
        "INIT1",
        "INIT",
        "C-SENT",
        "C-REPLIED",
        "C-WAIT",
        "COOKIE",
        "C-ECHOED",
        "ESTABLISHED",
        "S-SENT",
        "S-RECEIVED",
        "S-ACK-SENT",
        "REJECTED",
        "CLOSED",
    ];

    /// SCTP chunk type numbers (RFC 9260 §3.2) the state machine reacts to.
    pub mod chunk {
        /// DATA.
        pub const DATA: u8 = 0;
        /// INIT.
        pub const INIT: u8 = 1;
        /// INIT ACK.
        pub const INIT_ACK: u8 = 2;
        /// SACK.
        pub const SACK: u8 = 3;
        /// HEARTBEAT.
        pub const HEARTBEAT: u8 = 4;
        /// HEARTBEAT ACK.
        pub const HEARTBEAT_ACK: u8 = 5;
        /// ABORT.
        pub const ABORT: u8 = 6;
        /// SHUTDOWN.
        pub const SHUTDOWN: u8 = 7;
        /// SHUTDOWN ACK.
        pub const SHUTDOWN_ACK: u8 = 8;
        /// ERROR.
        pub const ERROR: u8 = 9;
        /// COOKIE ECHO.
        pub const COOKIE_ECHO: u8 = 10;
        /// COOKIE ACK.
        pub const COOKIE_ACK: u8 = 11;
        /// ECNE.
        pub const ECN_ECNE: u8 = 12;
        /// CWR.
        pub const ECN_CWR: u8 = 13;
        /// SHUTDOWN COMPLETE.
        pub const SHUTDOWN_COMPLETE: u8 = 14;
    }

    // Events (`enum ipvs_sctp_event_t`).
    const E_DATA: u8 = 0;
    const E_INIT: u8 = 1;
    const E_INIT_ACK: u8 = 2;
    const E_COOKIE_ECHO: u8 = 3;
    const E_COOKIE_ACK: u8 = 4;
    const E_SHUTDOWN: u8 = 5;
    const E_SHUTDOWN_ACK: u8 = 6;
    const E_SHUTDOWN_COMPLETE: u8 = 7;
    const E_ERROR: u8 = 8;
    const E_ABORT: u8 = 9;

    /// `sctp_events[]`: chunk type to event; types past the table are DATA.
    const EVENTS: [u8; 15] = [
        E_DATA,
        E_INIT,
        E_INIT_ACK,
        E_DATA, // SACK
        E_DATA, // HEARTBEAT
        E_DATA, // HEARTBEAT ACK
        E_ABORT,
        E_SHUTDOWN,
        E_SHUTDOWN_ACK,
        E_ERROR,
        E_COOKIE_ECHO,
        E_COOKIE_ACK,
        E_DATA, // ECNE
        E_DATA, // CWR
        E_SHUTDOWN_COMPLETE,
    ];

    const I1: u8 = INIT1;
    const IN: u8 = INIT;
    const CS: u8 = COOKIE_SENT;
    const CR: u8 = COOKIE_REPLIED;
    const CW: u8 = COOKIE_WAIT;
    const CO: u8 = COOKIE;
    const CE: u8 = COOKIE_ECHOED;
    const ES: u8 = ESTABLISHED;
    const SS: u8 = SHUTDOWN_SENT;
    const SR: u8 = SHUTDOWN_RECEIVED;
    const SA: u8 = SHUTDOWN_ACK_SENT;
    const RJ: u8 = REJECTED;
    const CL: u8 = CLOSED;

    /// `sctp_states[dir][event][state]`.
    pub(crate) const STATES: [[[u8; COUNT]; 10]; 3] = [
        [
            // INPUT    sNO sI1 sIN sCS sCR sCW sCO sCE sES sSS sSR sSA sRJ sCL
            /* d   */
            [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* i   */ [I1, IN, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, IN, IN],
            /* i_a */ [CW, CW, CW, CS, CR, CO, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* c_e */ [CR, IN, IN, CR, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* c_a */ [ES, I1, IN, CS, CR, CW, CO, ES, ES, SS, SR, SA, RJ, CL],
            /* s   */ [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
            /* s_a */ [CL, IN, IN, CS, CR, CW, CO, CE, ES, CL, SR, CL, RJ, CL],
            /* s_c */ [CL, CL, CL, CS, CR, CW, CO, CE, ES, SS, SR, CL, RJ, CL],
            /* err */ [CL, I1, IN, CS, CR, CW, CO, CL, ES, SS, SR, SA, RJ, CL],
            /* ab  */ [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
        ],
        [
            // OUTPUT   sNO sI1 sIN sCS sCR sCW sCO sCE sES sSS sSR sSA sRJ sCL
            /* d   */
            [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* i   */ [CW, CW, CW, CW, CW, CW, CW, CW, ES, CW, CW, CW, CW, CW],
            /* i_a */ [CS, CS, CS, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* c_e */ [CE, CE, CE, CE, CE, CE, CE, CE, ES, SS, SR, SA, RJ, CL],
            /* c_a */ [ES, ES, ES, ES, ES, ES, ES, ES, ES, SS, SR, SA, RJ, CL],
            /* s   */ [SS, SS, SS, SS, SS, SS, SS, SS, SS, SS, SR, SA, RJ, CL],
            /* s_a */ [SA, SA, SA, SA, SA, CW, CO, CE, ES, SA, SA, SA, RJ, CL],
            /* s_c */ [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* err */ [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* ab  */ [CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        ],
        [
            // INPUT-ONLY sNO sI1 sIN sCS sCR sCW sCO sCE sES sSS sSR sSA sRJ sCL
            /* d   */
            [ES, I1, IN, CS, CR, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* i   */ [I1, IN, IN, IN, IN, IN, CO, CE, ES, SS, SR, SA, IN, IN],
            /* i_a */ [CE, CE, CE, CE, CE, CE, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* c_e */ [ES, ES, ES, ES, ES, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* c_a */ [ES, I1, IN, ES, ES, CW, ES, ES, ES, SS, SR, SA, RJ, CL],
            /* s   */ [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
            /* s_a */ [CL, IN, IN, CS, CR, CW, CO, CE, CL, CL, SR, CL, RJ, CL],
            /* s_c */ [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, CL, CL, RJ, CL],
            /* err */ [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* ab  */ [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
        ],
    ];

    /// `set_sctp_state()`'s next-state computation (direction index 0/1/2).
    /// Unknown current states go to CLOSED instead of reading out of bounds.
    #[inline]
    pub(crate) fn next(dir: usize, chunk_type: u8, state: u8) -> u8 {
        let event = EVENTS.get(chunk_type as usize).copied().unwrap_or(E_DATA);
        STATES
            .get(dir)
            .and_then(|d| d.get(event as usize))
            .and_then(|row| row.get(state as usize))
            .copied()
            .unwrap_or(CLOSED)
    }
}

/// Template (persistence) states, `IP_VS_CTPL_S_*`.
pub mod template {
    /// `IP_VS_CTPL_S_NONE`.
    pub const NONE: u8 = 0;
    /// `IP_VS_CTPL_S_ASSURED`.
    pub const ASSURED: u8 = 1;
}

/// The state name the kernel's `ip_vs_state_name()` gives for a
/// non-template conn of `proto` in `state` (what `ipvsadm -L -c` and
/// `/proc/net/ip_vs_conn` print): `"ERR!"` for out-of-range states, and for
/// protocols IPVS has no state machine for, `"NONE"` for protocol 0.
pub fn state_name(proto: Proto, state: u8) -> &'static str {
    match proto {
        Proto::TCP => tcp::NAMES.get(state as usize).copied().unwrap_or("ERR!"),
        Proto::SCTP => sctp::NAMES.get(state as usize).copied().unwrap_or("ERR!"),
        Proto::UDP if state == udp::NORMAL => "UDP",
        Proto::ICMP | Proto::ICMPV6 if state == icmp::NORMAL => "ICMP",
        Proto(0) => "NONE",
        _ => "ERR!",
    }
}

/// The state name of a template conn (`ip_vs_ctpl_state_name_table[]`).
pub fn template_state_name(state: u8) -> &'static str {
    match state {
        template::NONE => "NONE",
        template::ASSURED => "ASSURED",
        _ => "ERR!",
    }
}

/// Per-state timeouts, as the kernel's per-netns `timeout_table`s.
///
/// Defaults are the kernel's `tcp_timeouts[]`, `udp_timeouts[]`,
/// `sctp_timeouts[]`; ICMP (no state machine in IPVS) gets 60 s.
/// Protocols other than TCP/UDP/SCTP/ICMP use [`Timeouts::udp`].
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Timeouts {
    /// TCP, indexed by [`tcp`] state.
    pub tcp: [Duration; tcp::COUNT],
    /// UDP's single state.
    pub udp: Duration,
    /// SCTP, indexed by [`sctp`] state.
    pub sctp: [Duration; sctp::COUNT],
    /// ICMP/ICMPv6.
    pub icmp: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let s = Duration::from_secs;
        // IP_VS_SCTP_MAX_RTO = (60 + 1) * HZ.
        let rto = s(61);
        Self {
            tcp: [
                s(2),       // NONE
                s(15 * 60), // ESTABLISHED
                s(2 * 60),  // SYN_SENT
                s(60),      // SYN_RECV
                s(2 * 60),  // FIN_WAIT
                s(2 * 60),  // TIME_WAIT
                s(10),      // CLOSE
                s(60),      // CLOSE_WAIT
                s(30),      // LAST_ACK
                s(2 * 60),  // LISTEN
                s(120),     // SYNACK
            ],
            udp: s(5 * 60),
            sctp: [
                s(2),       // NONE
                s(4),       // INIT1: (0 + 3 + 1) * HZ
                rto,        // INIT
                rto,        // COOKIE_SENT
                rto,        // COOKIE_REPLIED
                rto,        // COOKIE_WAIT
                rto,        // COOKIE
                rto,        // COOKIE_ECHOED
                s(15 * 60), // ESTABLISHED
                rto,        // SHUTDOWN_SENT
                rto,        // SHUTDOWN_RECEIVED
                rto,        // SHUTDOWN_ACK_SENT
                s(4),       // REJECTED
                rto,        // CLOSED
            ],
            icmp: s(60),
        }
    }
}

impl Timeouts {
    /// `ipvsadm --set tcp tcpfin udp` (kernel `ip_vs_set_timeout`): seconds
    /// for TCP ESTABLISHED, TCP FIN_WAIT and UDP; 0 leaves a value unchanged.
    pub fn set_ipvsadm(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        if tcp != 0 {
            self.tcp[tcp::ESTABLISHED as usize] = Duration::from_secs(tcp.into());
        }
        if tcpfin != 0 {
            self.tcp[tcp::FIN_WAIT as usize] = Duration::from_secs(tcpfin.into());
        }
        if udp != 0 {
            self.udp = Duration::from_secs(udp.into());
        }
    }

    /// What `ipvsadm -L --timeout` prints: `(tcp, tcpfin, udp)` in whole
    /// seconds (kernel `__ip_vs_get_timeouts`).
    pub fn ipvsadm_triple(&self) -> (u32, u32, u32) {
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        (
            secs(self.tcp[tcp::ESTABLISHED as usize]),
            secs(self.tcp[tcp::FIN_WAIT as usize]),
            secs(self.udp),
        )
    }

    /// The timeout of a non-template conn of `proto` in `state`
    /// (`pd->timeout_table[state]`); out-of-range states get the
    /// kernel's `[IP_VS_*_S_LAST]` entry (2 s).
    pub fn for_state(&self, proto: Proto, state: u8) -> Duration {
        let last = Duration::from_secs(2);
        match proto {
            Proto::TCP => self.tcp.get(state as usize).copied().unwrap_or(last),
            Proto::SCTP => self.sctp.get(state as usize).copied().unwrap_or(last),
            Proto::ICMP | Proto::ICMPV6 => self.icmp,
            _ => self.udp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: usize = 0;
    const O: usize = 4;
    const IO: usize = 8;

    /// Rows written out by hand from the kernel's `tcp_states[]`
    /// (ip_vs_proto_tcp.c), one case per (dir, flags, from) -> to.
    #[test]
    fn tcp_table_rows_match_kernel() {
        use tcp::*;
        let cases: &[(usize, u8, u8, u8)] = &[
            // INPUT syn row: sNO->sSR, sES->sES, sSS->sES, sTW->sSR, sSA->sSR
            (I, SYN, NONE, SYN_RECV),
            (I, SYN, ESTABLISHED, ESTABLISHED),
            (I, SYN, SYN_SENT, ESTABLISHED),
            (I, SYN, TIME_WAIT, SYN_RECV),
            (I, SYN, SYNACK, SYN_RECV),
            // INPUT fin row: sES->sCW, sSR->sTW, sFW->sTW, sLA->sLA
            (I, FIN | ACK, ESTABLISHED, CLOSE_WAIT),
            (I, FIN, SYN_RECV, TIME_WAIT),
            (I, FIN, FIN_WAIT, TIME_WAIT),
            (I, FIN, LAST_ACK, LAST_ACK),
            // INPUT ack row: sNO->sES, sSR->sES, sFW->sFW, sLA->sCL, sSA->sES
            (I, ACK, NONE, ESTABLISHED),
            (I, ACK, SYN_RECV, ESTABLISHED),
            (I, ACK, FIN_WAIT, FIN_WAIT),
            (I, ACK, LAST_ACK, CLOSE),
            (I, ACK, SYNACK, ESTABLISHED),
            // INPUT rst row: sES->sCL, sSR->sSR (RST while SYN_RECV kept),
            // sLA->sLA, sLI->sLI, sSA->sSR
            (I, RST, ESTABLISHED, CLOSE),
            (I, RST | ACK, SYN_RECV, SYN_RECV),
            (I, RST, LAST_ACK, LAST_ACK),
            (I, RST, LISTEN, LISTEN),
            (I, RST, SYNACK, SYN_RECV),
            // OUTPUT rows
            (O, SYN, NONE, SYN_SENT),
            (O, SYN | ACK, SYN_RECV, SYN_RECV),
            (O, SYN, LISTEN, LISTEN),
            (O, FIN, ESTABLISHED, FIN_WAIT),
            (O, FIN, NONE, TIME_WAIT),
            (O, FIN, CLOSE_WAIT, TIME_WAIT),
            (O, ACK, LAST_ACK, LAST_ACK),
            (O, ACK, LISTEN, ESTABLISHED),
            (O, RST, SYN_SENT, SYN_SENT),
            (O, RST, TIME_WAIT, TIME_WAIT),
            (O, RST, ESTABLISHED, CLOSE),
            // INPUT-ONLY rows: half the handshake seen
            (IO, SYN, NONE, SYN_RECV),
            (IO, FIN, ESTABLISHED, FIN_WAIT),
            (IO, FIN, CLOSE_WAIT, CLOSE_WAIT),
            (IO, ACK, SYN_RECV, ESTABLISHED),
            (IO, RST, SYNACK, CLOSE),
            (IO, RST, SYN_RECV, SYN_RECV),
        ];
        for &(dir, flags, from, to) in cases {
            assert_eq!(
                tcp::next(false, dir, flags, from),
                to,
                "dir {dir} flags {flags:#x} from {}",
                NAMES[from as usize]
            );
        }
    }

    /// `tcp_states_dos[]` rows that differ from the normal table.
    #[test]
    fn tcp_dos_table_rows_match_kernel() {
        use tcp::*;
        let cases: &[(usize, u8, u8, u8)] = &[
            (I, SYN, SYNACK, SYNACK),
            (I, FIN, SYNACK, SYNACK),
            (I, ACK, SYN_RECV, SYN_RECV),
            (I, ACK, SYNACK, SYNACK),
            (I, RST, SYNACK, CLOSE),
            (O, SYN, SYN_RECV, SYNACK),
            (O, SYN, SYNACK, SYNACK),
            (IO, SYN, NONE, SYNACK),
            (IO, SYN, TIME_WAIT, SYNACK),
            (I, SYN, NONE, SYN_RECV),
            (O, ACK, SYN_RECV, ESTABLISHED),
        ];
        for &(dir, flags, from, to) in cases {
            assert_eq!(
                tcp::next(true, dir, flags, from),
                to,
                "{dir} {flags:#x} {from}"
            );
        }
    }

    #[test]
    fn event_table_matches_the_bit_tests() {
        // Every flags byte: the table lookup `next` makes gives the event
        // the bit-by-bit `tcp_state_idx` order gives.
        for f in 0..=255u8 {
            let i = usize::from(f & (tcp::FIN | tcp::SYN | tcp::RST) | (f & tcp::ACK) >> 1);
            let want = tcp::event(f).map_or(u8::MAX, |e| e as u8);
            assert_eq!(tcp::EVENTS[i], want, "flags {f:#04x}");
            for secure in [false, true] {
                for off in [0, 4, 8] {
                    for state in 0..=tcp::COUNT as u8 {
                        let table = if secure {
                            &tcp::STATES_DOS
                        } else {
                            &tcp::STATES
                        };
                        let expect = match tcp::event(f) {
                            None => tcp::CLOSE,
                            Some(ev) => table[off + ev]
                                .get(usize::from(state))
                                .copied()
                                .unwrap_or(tcp::CLOSE),
                        };
                        assert_eq!(tcp::next(secure, off, f, state), expect);
                    }
                }
            }
        }
    }

    #[test]
    fn tcp_no_flag_means_close_and_bad_state_is_safe() {
        assert_eq!(tcp::next(false, I, 0x08, tcp::ESTABLISHED), tcp::CLOSE);
        assert_eq!(tcp::next(false, I, 0, tcp::SYN_RECV), tcp::CLOSE);
        assert_eq!(tcp::next(false, I, tcp::ACK, 200), tcp::CLOSE);
        assert_eq!(tcp::next(false, 99, tcp::ACK, 1), tcp::CLOSE);
    }

    /// SCTP cases from `sctp_states[][][]` (ip_vs_proto_sctp.c).
    #[test]
    fn sctp_table_rows_match_kernel() {
        use sctp::chunk::{
            ABORT, COOKIE_ACK, COOKIE_ECHO, DATA, ERROR, HEARTBEAT, INIT_ACK, SACK, SHUTDOWN,
            SHUTDOWN_ACK, SHUTDOWN_COMPLETE,
        };
        use sctp::*;
        const C_INIT: u8 = sctp::chunk::INIT;
        let cases: &[(usize, u8, u8, u8)] = &[
            // client association setup through a NAT director
            (0, C_INIT, NONE, INIT1),
            (0, C_INIT, INIT1, INIT),
            (1, INIT_ACK, INIT1, COOKIE_SENT),
            (0, COOKIE_ECHO, COOKIE_SENT, COOKIE_REPLIED),
            (1, COOKIE_ACK, COOKIE_REPLIED, ESTABLISHED),
            (0, DATA, NONE, ESTABLISHED),
            (0, SACK, ESTABLISHED, ESTABLISHED),
            (0, HEARTBEAT, COOKIE_WAIT, COOKIE_WAIT),
            (0, SHUTDOWN, ESTABLISHED, SHUTDOWN_RECEIVED),
            (1, SHUTDOWN_ACK, SHUTDOWN_RECEIVED, SHUTDOWN_ACK_SENT),
            (0, SHUTDOWN_COMPLETE, SHUTDOWN_ACK_SENT, CLOSED),
            (1, ABORT, INIT1, REJECTED),
            (0, ABORT, COOKIE_WAIT, REJECTED),
            (0, ERROR, COOKIE_ECHOED, CLOSED),
            (1, C_INIT, ESTABLISHED, ESTABLISHED),
            (1, C_INIT, CLOSED, COOKIE_WAIT),
            (0, C_INIT, REJECTED, INIT),
            // INPUT-ONLY (DR): INIT-ACK from client side means server INIT
            (2, INIT_ACK, NONE, COOKIE_ECHOED),
            (2, COOKIE_ECHO, COOKIE_SENT, ESTABLISHED),
            (2, DATA, COOKIE_WAIT, ESTABLISHED),
            (2, SHUTDOWN_ACK, ESTABLISHED, CLOSED),
            // unknown chunk types count as DATA
            (0, 200, NONE, ESTABLISHED),
            (0, 15, INIT1, INIT1),
        ];
        for &(dir, ch, from, to) in cases {
            assert_eq!(
                sctp::next(dir, ch, from),
                to,
                "dir {dir} chunk {ch} from {from}"
            );
        }
        assert_eq!(sctp::next(0, DATA, 77), CLOSED);
    }

    #[test]
    fn names_as_ipvsadm_prints() {
        assert_eq!(state_name(Proto::TCP, tcp::SYN_RECV), "SYN_RECV");
        assert_eq!(state_name(Proto::TCP, tcp::SYNACK), "SYNACK");
        assert_eq!(state_name(Proto::TCP, 11), "ERR!");
        assert_eq!(state_name(Proto::UDP, 0), "UDP");
        assert_eq!(state_name(Proto::UDP, 1), "ERR!");
        assert_eq!(state_name(Proto::SCTP, sctp::COOKIE_SENT), "C-SENT");
        assert_eq!(
            state_name(Proto::SCTP, sctp::SHUTDOWN_ACK_SENT),
            "S-ACK-SENT"
        );
        assert_eq!(state_name(Proto::ICMP, 0), "ICMP");
        assert_eq!(state_name(Proto(0), 0), "NONE");
        assert_eq!(state_name(Proto::GRE, 0), "ERR!");
        assert_eq!(template_state_name(1), "ASSURED");
    }

    #[test]
    fn default_timeouts_and_ipvsadm_set() {
        let mut t = Timeouts::default();
        assert_eq!(t.ipvsadm_triple(), (900, 120, 300));
        assert_eq!(t.for_state(Proto::TCP, tcp::CLOSE), Duration::from_secs(10));
        assert_eq!(
            t.for_state(Proto::TCP, tcp::SYN_RECV),
            Duration::from_secs(60)
        );
        assert_eq!(
            t.for_state(Proto::SCTP, sctp::INIT),
            Duration::from_secs(61)
        );
        assert_eq!(
            t.for_state(Proto::SCTP, sctp::INIT1),
            Duration::from_secs(4)
        );
        assert_eq!(t.for_state(Proto::ICMP, 0), Duration::from_secs(60));
        t.set_ipvsadm(3600, 0, 10);
        assert_eq!(t.ipvsadm_triple(), (3600, 120, 10));
        t.set_ipvsadm(0, 30, 0);
        assert_eq!(t.ipvsadm_triple(), (3600, 30, 10));
    }
}
