//! When to probe and what a probe's result means: keepalived's per-checker
//! state machine, with no I/O and no clock of its own (the caller passes
//! `now`), so it is tested with made-up instants.
//!
//! The rules are keepalived 2.x's (`check_tcp.c`, `check_udp.c`,
//! `check_ping.c`, `check_misc.c` epilogues; `check_http.c` for HTTP_GET
//! and SSL_GET; `check_api.c` for the first probe):
//! - the check starts [`State::Up`], or [`State::Down`] with `alpha`;
//! - the first probe is at `now + first_delay` ([`first_delay`]: a random
//!   part of `warmup`, else a per-target offset within `delay_loop`);
//! - a success declares the check up (or up with a new weight), resets
//!   the retry count; next probe `delay_loop` later;
//! - a failure while up is retried `retry` times, `delay_before_retry`
//!   apart; when the last retry fails too the check is declared down;
//! - a failure while down is not retried (keepalived: "do not retry if
//!   server is already known as dead"); next probe `delay_loop` later;
//! - HTTP_GET / SSL_GET while down: next probe after the longer of
//!   `delay_before_retry` and `delay_loop` once a failure was declared, or
//!   `delay_before_retry` while down without a declared failure (`alpha`
//!   at start); with `fast_recovery`, always `delay_before_retry`;
//! - MISC_CHECK with `misc_dynamic`: a success may carry a weight
//!   ([`ProbeResult::UpWeight`]); a new weight while up is a transition
//!   too.

use std::time::{Duration, Instant};

use crate::spec::{CheckKind, CheckSpec, Common};

/// What one probe found.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProbeResult {
    /// The service answered as required.
    Up,
    /// MISC_CHECK with `misc_dynamic`: up, with this weight (exit code − 2).
    UpWeight(u32),
    /// The probe failed; why, for the log.
    Down(String),
}

impl ProbeResult {
    /// A success (with or without a weight).
    pub fn is_up(&self) -> bool {
        !matches!(self, Self::Down(_))
    }

    /// A failure with this reason.
    pub fn down(reason: impl Into<String>) -> Self {
        Self::Down(reason.into())
    }
}

/// A check's state as reported to the supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Up, with the real server's configured weight.
    Up,
    /// Down: remove the real server (or weight 0 with inhibit_on_failure).
    Down,
    /// Up with this weight (MISC_CHECK `misc_dynamic`: exit code − 2).
    UpWeight(u32),
}

impl State {
    /// Up, with or without a weight.
    pub fn is_up(self) -> bool {
        !matches!(self, Self::Down)
    }

    /// The state a check starts in: down with `alpha`, else up.
    pub fn initial(common: &Common) -> Self {
        if common.alpha { Self::Down } else { Self::Up }
    }
}

/// A real server's state from the states of all its checkers (keepalived:
/// the server is alive only while none of its checkers is down). A
/// dynamic weight (MISC_CHECK `misc_dynamic`) sets the server's weight;
/// with several, rvs takes the smallest (keepalived takes whichever
/// reported last). No checker at all: up.
pub fn combine(states: impl IntoIterator<Item = State>) -> State {
    let mut out = State::Up;
    for s in states {
        out = match (out, s) {
            (State::Down, _) | (_, State::Down) => return State::Down,
            (State::UpWeight(a), State::UpWeight(b)) => State::UpWeight(a.min(b)),
            (State::UpWeight(a), State::Up) | (State::Up, State::UpWeight(a)) => State::UpWeight(a),
            (State::Up, State::Up) => State::Up,
        };
    }
    out
}

/// The timing settings the policy uses, taken from a [`CheckSpec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyParams {
    /// Interval between probes while stable.
    pub delay_loop: Duration,
    /// Failed probes retried this many times before the check is down.
    pub retry: u32,
    /// Interval between retries.
    pub delay_before_retry: Duration,
    /// Start down (needs a success to come up).
    pub alpha: bool,
    /// HTTP_GET / SSL_GET (their down-state timing differs).
    pub http: bool,
    /// While down, probe every `delay_before_retry` (HTTP_GET/SSL_GET).
    pub fast_recovery: bool,
}

impl PolicyParams {
    /// The settings of `spec`.
    pub fn from_spec(spec: &CheckSpec) -> Self {
        let c = &spec.common;
        Self {
            delay_loop: c.delay_loop,
            retry: c.retry,
            delay_before_retry: c.delay_before_retry,
            alpha: c.alpha,
            http: matches!(&spec.kind, CheckKind::Http(_)),
            fast_recovery: matches!(&spec.kind, CheckKind::Http(h) if h.fast_recovery),
        }
    }
}

/// The delay before a check's first probe.
///
/// With `warmup`, a random part of it (`random` spread over
/// `0..=warmup`), as keepalived does. Without, a deterministic offset
/// within `delay_loop` taken from `key` (a hash of the target), so that
/// many checks started together do not probe together, and the same
/// target always gets the same offset.
pub fn first_delay(common: &Common, key: u64, random: u64) -> Duration {
    match common.warmup {
        Some(w) if !w.is_zero() => fraction(w, random),
        _ => fraction(common.delay_loop, key),
    }
}

/// `d × (x / 2^64)`.
fn fraction(d: Duration, x: u64) -> Duration {
    let nanos = d.as_nanos();
    let part = (nanos * u128::from(x)) >> 64;
    Duration::from_nanos(u64::try_from(part).unwrap_or(u64::MAX))
}

/// One check's state machine.
#[derive(Clone, Debug)]
pub struct Policy {
    params: PolicyParams,
    state: State,
    has_run: bool,
    retry_it: u32,
    /// Down because a failure was declared (not just `alpha`).
    failed: bool,
    next: Instant,
}

impl Policy {
    /// A check created at `now`, first probed at `now + first_delay`.
    pub fn new(params: PolicyParams, now: Instant, first_delay: Duration) -> Self {
        Self {
            params,
            state: if params.alpha { State::Down } else { State::Up },
            has_run: false,
            retry_it: 0,
            failed: false,
            next: now + first_delay,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// When the next probe is due.
    pub fn next_probe(&self) -> Instant {
        self.next
    }

    /// Failed probes since the last declared result (0 when stable).
    pub fn retries(&self) -> u32 {
        self.retry_it
    }

    /// Whether a probe has finished (before that, the state is the
    /// initial one).
    pub fn has_run(&self) -> bool {
        self.has_run
    }

    /// Take the result of the probe that finished at `now`; schedules the
    /// next probe and returns the new state if it changed.
    pub fn on_result(&mut self, now: Instant, result: &ProbeResult) -> Option<State> {
        let p = self.params;
        let was_up = self.state.is_up();
        let mut delay = p.delay_loop;
        let new = match result {
            ProbeResult::Up => Some(State::Up),
            ProbeResult::UpWeight(w) => Some(State::UpWeight(*w)),
            ProbeResult::Down(_) if was_up && self.retry_it < p.retry => {
                self.retry_it += 1;
                delay = p.delay_before_retry;
                None
            }
            ProbeResult::Down(_) => Some(State::Down),
        };
        self.has_run = true;
        let changed = match new {
            Some(new) => {
                self.retry_it = 0;
                if new.is_up() {
                    self.failed = false;
                } else if was_up {
                    self.failed = true;
                }
                if !new.is_up() && p.http {
                    delay = if self.failed && !p.fast_recovery {
                        p.delay_before_retry.max(p.delay_loop)
                    } else {
                        p.delay_before_retry
                    };
                }
                let changed = (new != self.state).then_some(new);
                self.state = new;
                changed
            }
            None => None,
        };
        self.next = now + delay;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(retry: u32, alpha: bool) -> PolicyParams {
        PolicyParams {
            delay_loop: Duration::from_secs(60),
            retry,
            delay_before_retry: Duration::from_secs(3),
            alpha,
            http: false,
            fast_recovery: false,
        }
    }

    fn http_params(retry: u32, alpha: bool, fast_recovery: bool) -> PolicyParams {
        PolicyParams {
            http: true,
            fast_recovery,
            ..params(retry, alpha)
        }
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn fail() -> ProbeResult {
        ProbeResult::down("refused")
    }

    #[test]
    fn starts_up_and_first_probe_after_first_delay() {
        let t0 = Instant::now();
        let p = Policy::new(params(1, false), t0, s(7));
        assert_eq!(p.state(), State::Up);
        assert_eq!(p.next_probe(), t0 + s(7));
        assert!(!p.has_run());
    }

    #[test]
    fn alpha_starts_down_and_success_brings_up() {
        let t0 = Instant::now();
        let mut p = Policy::new(params(1, true), t0, s(0));
        assert_eq!(p.state(), State::Down);
        assert_eq!(p.on_result(t0 + s(1), &ProbeResult::Up), Some(State::Up));
        assert_eq!(p.next_probe(), t0 + s(61));
    }

    #[test]
    fn alpha_failures_are_not_retried() {
        let t0 = Instant::now();
        let mut p = Policy::new(params(3, true), t0, s(0));
        assert!(!p.has_run());
        assert_eq!(p.on_result(t0, &fail()), None);
        assert_eq!(p.state(), State::Down);
        assert_eq!(p.retries(), 0);
        assert_eq!(p.next_probe(), t0 + s(60));
        assert!(p.has_run());
    }

    #[test]
    fn retries_before_down_at_delay_before_retry() {
        let t0 = Instant::now();
        let mut p = Policy::new(params(2, false), t0, s(0));
        // first failure: retry 1 of 2, 3 s later
        assert_eq!(p.on_result(t0 + s(1), &fail()), None);
        assert_eq!(p.next_probe(), t0 + s(4));
        assert_eq!(p.retries(), 1);
        assert_eq!(p.state(), State::Up);
        // second failure: retry 2 of 2
        assert_eq!(p.on_result(t0 + s(5), &fail()), None);
        assert_eq!(p.next_probe(), t0 + s(8));
        // third failure: down, back to delay_loop
        assert_eq!(p.on_result(t0 + s(9), &fail()), Some(State::Down));
        assert_eq!(p.next_probe(), t0 + s(69));
        assert_eq!(p.retries(), 0);
        // still failing: known dead, so not retried, every delay_loop
        assert_eq!(p.on_result(t0 + s(70), &fail()), None);
        assert_eq!(p.next_probe(), t0 + s(130));
        assert_eq!(p.retries(), 0);
        assert_eq!(p.state(), State::Down);
        // one success brings it up
        assert_eq!(p.on_result(t0 + s(131), &ProbeResult::Up), Some(State::Up));
        assert_eq!(p.next_probe(), t0 + s(191));
    }

    #[test]
    fn success_during_retries_resets_count() {
        let t0 = Instant::now();
        let mut p = Policy::new(params(1, false), t0, s(0));
        assert_eq!(p.on_result(t0, &fail()), None);
        assert_eq!(p.retries(), 1);
        assert_eq!(p.on_result(t0 + s(3), &ProbeResult::Up), None);
        assert_eq!(p.retries(), 0);
        assert_eq!(p.next_probe(), t0 + s(63));
        // one failure again is only a retry
        assert_eq!(p.on_result(t0 + s(63), &fail()), None);
        assert_eq!(p.state(), State::Up);
        assert_eq!(p.on_result(t0 + s(66), &fail()), Some(State::Down));
    }

    #[test]
    fn retry_zero_goes_down_at_once() {
        let t0 = Instant::now();
        let mut p = Policy::new(params(0, false), t0, s(0));
        assert_eq!(p.on_result(t0, &fail()), Some(State::Down));
        assert_eq!(p.next_probe(), t0 + s(60));
    }

    #[test]
    fn http_down_waits_the_longer_of_delay_loop_and_delay_before_retry() {
        let t0 = Instant::now();
        let mut p = Policy::new(http_params(1, false, false), t0, s(0));
        assert_eq!(p.on_result(t0, &fail()), None);
        assert_eq!(p.next_probe(), t0 + s(3));
        assert_eq!(p.on_result(t0 + s(3), &fail()), Some(State::Down));
        assert_eq!(p.next_probe(), t0 + s(63));
        assert_eq!(p.on_result(t0 + s(63), &fail()), None);
        assert_eq!(p.next_probe(), t0 + s(123));
        // delay_before_retry longer than delay_loop
        let mut pp = http_params(0, false, false);
        pp.delay_before_retry = s(90);
        let mut p = Policy::new(pp, t0, s(0));
        assert_eq!(p.on_result(t0, &fail()), Some(State::Down));
        assert_eq!(p.next_probe(), t0 + s(90));
    }

    #[test]
    fn http_alpha_down_probes_at_delay_before_retry() {
        let t0 = Instant::now();
        let mut p = Policy::new(http_params(1, true, false), t0, s(0));
        assert_eq!(p.on_result(t0, &fail()), None);
        assert_eq!(p.next_probe(), t0 + s(3));
        assert_eq!(p.on_result(t0 + s(3), &fail()), None);
        assert_eq!(p.next_probe(), t0 + s(6));
        assert_eq!(p.on_result(t0 + s(6), &ProbeResult::Up), Some(State::Up));
        assert_eq!(p.next_probe(), t0 + s(66));
    }

    #[test]
    fn fast_recovery_probes_down_check_at_delay_before_retry() {
        let t0 = Instant::now();
        let mut p = Policy::new(http_params(0, false, true), t0, s(0));
        assert_eq!(p.on_result(t0, &fail()), Some(State::Down));
        assert_eq!(p.next_probe(), t0 + s(3));
        assert_eq!(p.on_result(t0 + s(3), &fail()), None);
        assert_eq!(p.next_probe(), t0 + s(6));
        assert_eq!(p.on_result(t0 + s(6), &ProbeResult::Up), Some(State::Up));
        assert_eq!(p.next_probe(), t0 + s(66));
        // fast_recovery only matters for HTTP; a TCP check ignores it
        let mut pp = params(0, false);
        pp.fast_recovery = true;
        let mut p = Policy::new(pp, t0, s(0));
        assert_eq!(p.on_result(t0, &fail()), Some(State::Down));
        assert_eq!(p.next_probe(), t0 + s(60));
    }

    #[test]
    fn combined_real_server_state() {
        use State::*;
        assert_eq!(combine([]), Up);
        assert_eq!(combine([Up, Up]), Up);
        assert_eq!(combine([Up, Down, UpWeight(3)]), Down);
        assert_eq!(combine([UpWeight(5), Up, UpWeight(3)]), UpWeight(3));
        assert_eq!(combine([Up, UpWeight(0)]), UpWeight(0));
    }

    #[test]
    fn params_from_spec() {
        use crate::spec::{HttpCheck, HttpProtocol};
        let mut spec = CheckSpec {
            kind: CheckKind::Tcp,
            common: Common {
                retry: 4,
                alpha: true,
                ..Common::default()
            },
        };
        let p = PolicyParams::from_spec(&spec);
        assert_eq!(
            (p.retry, p.alpha, p.http, p.fast_recovery),
            (4, true, false, false)
        );
        assert_eq!(p.delay_loop, s(60));
        spec.kind = CheckKind::Http(HttpCheck {
            tls: true,
            urls: vec![],
            virtualhost: None,
            protocol: HttpProtocol::Http10,
            enable_sni: false,
            sni_name: None,
            fast_recovery: true,
        });
        let p = PolicyParams::from_spec(&spec);
        assert!(p.http && p.fast_recovery);
    }

    #[test]
    fn dynamic_weight_changes_are_transitions() {
        let t0 = Instant::now();
        let mut p = Policy::new(params(1, false), t0, s(0));
        assert_eq!(
            p.on_result(t0, &ProbeResult::UpWeight(3)),
            Some(State::UpWeight(3))
        );
        assert_eq!(p.on_result(t0 + s(60), &ProbeResult::UpWeight(3)), None);
        assert_eq!(
            p.on_result(t0 + s(120), &ProbeResult::UpWeight(5)),
            Some(State::UpWeight(5))
        );
        assert_eq!(p.on_result(t0 + s(180), &ProbeResult::Up), Some(State::Up));
        // a failure is retried before down, even from a weighted state
        assert_eq!(
            p.on_result(t0 + s(240), &ProbeResult::UpWeight(0)),
            Some(State::UpWeight(0))
        );
        assert_eq!(p.on_result(t0 + s(300), &fail()), None);
        assert_eq!(p.on_result(t0 + s(303), &fail()), Some(State::Down));
    }

    #[test]
    fn warmup_is_random_within_warmup() {
        let c = Common {
            warmup: Some(s(10)),
            delay_loop: s(60),
            ..Common::default()
        };
        assert_eq!(first_delay(&c, 123, 0), s(0));
        assert_eq!(
            first_delay(&c, 123, u64::MAX / 2),
            Duration::from_nanos(4_999_999_999)
        );
        assert!(first_delay(&c, 0, u64::MAX) <= s(10));
        assert!(first_delay(&c, 0, u64::MAX) > Duration::from_millis(9_999));
        // the key does not matter with warmup
        assert_eq!(first_delay(&c, 1, 77), first_delay(&c, 2, 77));
    }

    #[test]
    fn without_warmup_offset_is_deterministic_within_delay_loop() {
        let c = Common {
            delay_loop: s(60),
            ..Common::default()
        };
        assert_eq!(first_delay(&c, 42, 1), first_delay(&c, 42, 999));
        assert_eq!(
            first_delay(&c, u64::MAX / 4, 0),
            Duration::from_nanos(14_999_999_999)
        );
        assert!(first_delay(&c, u64::MAX, 0) < s(60));
    }

    #[test]
    fn timeline_down_within_bound() {
        // issue 4: down within delay_loop + (connect_timeout + delay_before_retry) × retry
        // after the failure starts; here each probe "takes" connect_timeout 5 s
        let t0 = Instant::now();
        let mut p = Policy::new(params(3, false), t0, s(0));
        let mut now = t0;
        assert_eq!(p.on_result(now, &ProbeResult::Up), None);
        let mut reports = 0;
        for _ in 0..10 {
            now = p.next_probe() + s(5);
            if p.on_result(now, &fail()).is_some() {
                reports += 1;
                break;
            }
        }
        assert_eq!(reports, 1);
        assert_eq!(now, t0 + s(60 + 5 + 3 * (3 + 5)));
    }
}
