//! The seeded fault schedule: which fault, on what, when, for how long.
//!
//! [`schedule`] is a pure function of a seed and [`ScheduleParams`]: the
//! same seed always gives the same list of [`Step`]s, so a failing run is
//! re-run with its seed. Only the *timing* of a re-run differs (how fast
//! processes start, where a kill lands in a ward's group commit): the
//! schedule is reproducible, the interleaving is not.
//!
//! Invariants of a schedule:
//! - steps are in time order, every fault starts and ends inside the window
//!   `[0, duration)`;
//! - two faults on the same [`Target`] never overlap in the plan (a ward is
//!   not killed while it is planned to be down; a link is not cut while it is
//!   planned to be slow). The runner additionally serialises faults per
//!   target, since a restart may take longer than planned.

use std::time::Duration;

use crate::proxy::Lossy;

use super::WARDS;

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast, well-mixed 64-bit
/// generator. Enough for fault schedules and writer choices; the harness
/// needs reproducibility, not cryptographic quality, so no `rand` crate.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no value");
        // Multiply-shift: unbiased enough for n far below 2^64.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `[lo, hi]`, to the millisecond.
    pub fn duration_between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let (lo_ms, hi_ms) = (lo.as_millis() as u64, hi.as_millis().max(lo.as_millis()) as u64);
        Duration::from_millis(lo_ms + self.below(hi_ms - lo_ms + 1))
    }

    /// Uniform in `[0, max]`, to the millisecond.
    pub fn duration_up_to(&mut self, max: Duration) -> Duration {
        self.duration_between(Duration::ZERO, max)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A service process of the system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// The i-th ward of [`WARDS`].
    Ward(usize),
    Town,
    Province,
}

impl Service {
    pub fn name(self) -> String {
        match self {
            Service::Ward(i) => format!("ward-{}", WARDS[i]),
            Service::Town => "town".into(),
            Service::Province => "province".into(),
        }
    }
}

/// A client's network link to NATS (each goes through its own proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Link {
    /// The i-th ward's link: how its events reach the town's stream.
    Ward(usize),
    /// The town's link: ward events in, snapshots out to the province.
    Town,
    /// The province's link: snapshots in.
    Province,
}

impl Link {
    pub fn name(self) -> String {
        match self {
            Link::Ward(i) => format!("ward-{}", WARDS[i]),
            Link::Town => "town".into(),
            Link::Province => "province".into(),
        }
    }
}

/// What a fault acts on; faults on one target never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Service(Service),
    Nats,
    Link(Link),
    /// The streams, for redelivery.
    Streams,
}

/// One fault, with how long it lasts.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// SIGKILL a service, start it again `down` later.
    Kill { service: Service, down: Duration },
    /// SIGKILL nats-server, start it again (same port, same store) `down` later.
    KillNats { down: Duration },
    /// Stop nats-server gracefully and start it again at once.
    RestartNats,
    /// Cut a link for `span`.
    Cut { link: Link, span: Duration },
    /// Add `latency` to a link for `span`.
    Slow { link: Link, latency: Duration, span: Duration },
    /// Make a link lossy for `span`.
    Lossy { link: Link, lossy: Lossy, span: Duration },
    /// Re-publish raw copies of `events` earlier ward events (on the town's
    /// stream) and `snapshots` earlier town snapshots (on the province's),
    /// without `Nats-Msg-Id`, so JetStream stores them again; `seed` picks
    /// which.
    Redeliver { events: u32, snapshots: u32, seed: u64 },
}

impl Fault {
    /// The stable name of the fault's kind, as counted in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill { service: Service::Ward(_), .. } => "kill_ward",
            Fault::Kill { service: Service::Town, .. } => "kill_town",
            Fault::Kill { service: Service::Province, .. } => "kill_province",
            Fault::KillNats { .. } => "kill_nats",
            Fault::RestartNats => "restart_nats",
            Fault::Cut { link: Link::Ward(_), .. } => "cut_ward_link",
            Fault::Cut { link: Link::Town, .. } => "cut_town_link",
            Fault::Cut { link: Link::Province, .. } => "cut_province_link",
            Fault::Slow { .. } => "slow_link",
            Fault::Lossy { .. } => "lossy_link",
            Fault::Redeliver { .. } => "redeliver",
        }
    }

    pub fn target(&self) -> Target {
        match self {
            Fault::Kill { service, .. } => Target::Service(*service),
            Fault::KillNats { .. } | Fault::RestartNats => Target::Nats,
            Fault::Cut { link, .. } | Fault::Slow { link, .. } | Fault::Lossy { link, .. } => Target::Link(*link),
            Fault::Redeliver { .. } => Target::Streams,
        }
    }

    /// How long the fault is planned to last.
    pub fn span(&self) -> Duration {
        match self {
            Fault::Kill { down, .. } | Fault::KillNats { down } => *down,
            Fault::Cut { span, .. } | Fault::Slow { span, .. } | Fault::Lossy { span, .. } => *span,
            Fault::RestartNats | Fault::Redeliver { .. } => Duration::ZERO,
        }
    }

    fn with_span(self, span: Duration) -> Fault {
        match self {
            Fault::Kill { service, .. } => Fault::Kill { service, down: span },
            Fault::KillNats { .. } => Fault::KillNats { down: span },
            Fault::Cut { link, .. } => Fault::Cut { link, span },
            Fault::Slow { link, latency, .. } => Fault::Slow { link, latency, span },
            Fault::Lossy { link, lossy, .. } => Fault::Lossy { link, lossy, span },
            other => other,
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |d: &Duration| format!("{:.1}s", d.as_secs_f64());
        match self {
            Fault::Kill { service, down } => write!(f, "kill -9 {} (down {})", service.name(), s(down)),
            Fault::KillNats { down } => write!(f, "kill -9 nats-server (down {})", s(down)),
            Fault::RestartNats => write!(f, "restart nats-server"),
            Fault::Cut { link, span } => write!(f, "cut {} link for {}", link.name(), s(span)),
            Fault::Slow { link, latency, span } => {
                write!(f, "slow {} link (+{} ms) for {}", link.name(), latency.as_millis(), s(span))
            }
            Fault::Lossy { link, lossy, span } => write!(
                f,
                "lossy {} link (reset ~{}, stall ~{} up to {}) for {}",
                link.name(),
                s(&lossy.reset_every),
                s(&lossy.stall_every),
                s(&lossy.stall_max),
                s(span)
            ),
            Fault::Redeliver { events, snapshots, .. } => {
                write!(f, "redeliver {events} old ward events and {snapshots} old snapshots")
            }
        }
    }
}

/// One planned fault: at `at` after the start of the fault window.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub at: Duration,
    pub fault: Fault,
}

/// The shape of a schedule.
#[derive(Debug, Clone)]
pub struct ScheduleParams {
    /// The fault window; every fault starts and ends inside it.
    pub duration: Duration,
    /// How many wards run (the first `wards` of [`WARDS`]).
    pub wards: usize,
    /// Mean time between two fault starts.
    pub fault_every: Duration,
}

/// Fault kinds and their relative weights.
const KINDS: [(&str, u64); 11] = [
    ("kill_ward", 18),
    ("kill_town", 8),
    ("kill_province", 6),
    ("kill_nats", 5),
    ("restart_nats", 4),
    ("cut_ward_link", 12),
    ("cut_town_link", 6),
    ("cut_province_link", 6),
    ("slow_link", 10),
    ("lossy_link", 10),
    ("redeliver", 8),
];

/// Every kind name a schedule can hold, for reports.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    KINDS.iter().map(|(k, _)| *k)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A fault of kind `kind` with random target and durations.
fn draw(rng: &mut SplitMix64, kind: &str, wards: usize) -> Fault {
    let ward = rng.below(wards as u64) as usize;
    let any_link = |rng: &mut SplitMix64| match rng.below(wards as u64 + 2) {
        i if (i as usize) < wards => Link::Ward(i as usize),
        i if i as usize == wards => Link::Town,
        _ => Link::Province,
    };
    match kind {
        "kill_ward" => Fault::Kill { service: Service::Ward(ward), down: rng.duration_between(ms(100), ms(3000)) },
        "kill_town" => Fault::Kill { service: Service::Town, down: rng.duration_between(ms(100), ms(4000)) },
        "kill_province" => Fault::Kill { service: Service::Province, down: rng.duration_between(ms(100), ms(4000)) },
        "kill_nats" => Fault::KillNats { down: rng.duration_between(ms(200), ms(4000)) },
        "restart_nats" => Fault::RestartNats,
        "cut_ward_link" => Fault::Cut { link: Link::Ward(ward), span: rng.duration_between(ms(500), ms(6000)) },
        "cut_town_link" => Fault::Cut { link: Link::Town, span: rng.duration_between(ms(500), ms(6000)) },
        "cut_province_link" => Fault::Cut { link: Link::Province, span: rng.duration_between(ms(500), ms(6000)) },
        "slow_link" => {
            let link = any_link(rng);
            Fault::Slow { link, latency: rng.duration_between(ms(20), ms(500)), span: rng.duration_between(ms(1000), ms(8000)) }
        }
        "lossy_link" => {
            let link = any_link(rng);
            let lossy = Lossy {
                reset_every: rng.duration_between(ms(500), ms(4000)),
                stall_every: rng.duration_between(ms(500), ms(3000)),
                stall_max: rng.duration_between(ms(100), ms(2000)),
            };
            Fault::Lossy { link, lossy, span: rng.duration_between(ms(1000), ms(8000)) }
        }
        "redeliver" => Fault::Redeliver { events: 1 + rng.below(50) as u32, snapshots: rng.below(6) as u32, seed: rng.next_u64() },
        other => unreachable!("unknown fault kind {other}"),
    }
}

/// The schedule of `seed`: faults about every `fault_every` (uniformly
/// between a quarter and 1.75 times it), kinds drawn by weight, none
/// overlapping another on the same target, all inside the window.
pub fn schedule(seed: u64, params: &ScheduleParams) -> Vec<Step> {
    assert!((1..=WARDS.len()).contains(&params.wards), "1 to {} wards", WARDS.len());
    let mut rng = SplitMix64::new(seed);
    let total: u64 = KINDS.iter().map(|(_, w)| w).sum();
    let mut busy_until: std::collections::BTreeMap<Target, Duration> = Default::default();
    let mut steps = Vec::new();
    let mean = params.fault_every.max(ms(10));
    let mut at = Duration::ZERO;
    loop {
        at += rng.duration_between(mean / 4, mean * 7 / 4);
        if at >= params.duration {
            break;
        }
        // A few tries to find a kind whose target is free at `at`.
        for _ in 0..8 {
            let mut roll = rng.below(total);
            let kind = KINDS
                .iter()
                .find(|(_, w)| {
                    if roll < *w {
                        true
                    } else {
                        roll -= w;
                        false
                    }
                })
                .map(|(k, _)| *k)
                .expect("the roll is below the total weight");
            let fault = draw(&mut rng, kind, params.wards);
            let target = fault.target();
            if busy_until.get(&target).is_some_and(|&until| until > at) {
                continue;
            }
            let span = fault.span().min(params.duration - at);
            let fault = fault.with_span(span);
            // A little slack after a planned restart: it takes a moment.
            busy_until.insert(target, at + span + ms(200));
            steps.push(Step { at, fault });
            break;
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ScheduleParams {
        ScheduleParams { duration: Duration::from_secs(600), wards: 6, fault_every: Duration::from_secs(2) }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        assert_eq!(schedule(42, &params()), schedule(42, &params()));
        assert_ne!(schedule(42, &params()), schedule(43, &params()));
    }

    #[test]
    fn faults_stay_in_the_window_and_never_overlap_on_a_target() {
        for seed in 0..20 {
            let p = params();
            let steps = schedule(seed, &p);
            assert!(steps.len() > 100, "about one fault every 2 s over 600 s: {}", steps.len());
            let mut busy: std::collections::BTreeMap<Target, Duration> = Default::default();
            let mut last = Duration::ZERO;
            for step in &steps {
                assert!(step.at >= last, "in time order");
                last = step.at;
                assert!(step.at + step.fault.span() <= p.duration, "{step:?} ends after the window");
                let target = step.fault.target();
                if let Some(&until) = busy.get(&target) {
                    assert!(step.at >= until, "{step:?} overlaps the previous fault on {target:?}");
                }
                busy.insert(target, step.at + step.fault.span());
                if let Fault::Kill { service: Service::Ward(i), .. } | Fault::Cut { link: Link::Ward(i), .. } = step.fault {
                    assert!(i < p.wards);
                }
            }
        }
    }

    #[test]
    fn a_long_schedule_holds_every_kind() {
        let steps = schedule(7, &params());
        for kind in kinds() {
            assert!(steps.iter().any(|s| s.fault.kind() == kind), "no {kind} in 600 s");
        }
    }

    #[test]
    fn the_short_run_of_the_test_suite_injects_every_kind() {
        let short = crate::faults::Params::short(crate::faults::SHORT_RUN_SEED, std::path::PathBuf::new());
        let p = ScheduleParams { duration: short.duration, wards: short.wards, fault_every: short.fault_every };
        let steps = schedule(short.seed, &p);
        for kind in kinds() {
            assert!(
                steps.iter().any(|s| s.fault.kind() == kind),
                "seed {} plans no {kind}; pick a seed that covers every kind",
                short.seed
            );
        }
    }

    #[test]
    fn splitmix_is_the_reference_generator() {
        // First outputs for seed 1234567 of the reference implementation.
        let mut rng = SplitMix64::new(1234567);
        assert_eq!(rng.next_u64(), 6457827717110365317);
        assert_eq!(rng.next_u64(), 3203168211198807973);
        let mut rng = SplitMix64::new(9);
        for _ in 0..1000 {
            assert!(rng.below(7) < 7);
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
