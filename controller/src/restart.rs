//! Restarts: which workloads to restart for a change, when each may go (cool-down, the
//! cluster-wide rate, `paused`), and the patch and Event that do it.
//!
//! A change is never dropped: a restart that may not go yet is held, merged with any later
//! change for the same workload, and goes out (once, for all of them) when it may.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use crate::refs::WatchKey;
use crate::track::Change;
use crate::workloads::WorkloadKey;

/// Why a restart waits (the `reason` label of `secrets_init_controller_restarts_held_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Held {
    Cooldown,
    RateLimit,
    Paused,
}

impl Held {
    pub fn as_str(self) -> &'static str {
        match self {
            Held::Cooldown => "cooldown",
            Held::RateLimit => "rate_limit",
            Held::Paused => "paused",
        }
    }
}

/// A restart waiting to go out.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The changes behind it, oldest first; one per watched key (a later change of the same
    /// key replaces the earlier).
    pub changes: Vec<Change>,
    /// The reasons it was held for, each counted once per pending restart.
    pub held: BTreeSet<Held>,
}

impl Pending {
    /// `awssm:prod/db AWSCURRENT=<version-id>; awsssm:/p version 7`, bounded: never a value,
    /// only ids and versions, and at most 1 KiB (an annotation and an Event note).
    pub fn reason(&self) -> String {
        let mut parts: Vec<String> = self.changes.iter().map(Change::describe).collect();
        let mut text = String::new();
        let total = parts.len();
        for (i, part) in parts.drain(..).enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            if text.len() + sep.len() + part.len() > 1000 {
                text.push_str(&format!("; and {} more", total - i));
                break;
            }
            text.push_str(sep);
            text.push_str(&part);
        }
        text
    }
}

/// The cluster-wide rate: a token bucket refilled at `per_minute / 60` tokens a second,
/// holding at most `per_minute` (so a burst after a quiet hour is still one minute's worth).
#[derive(Debug)]
pub struct Bucket {
    capacity: f64,
    tokens: f64,
    per_second: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(per_minute: u32, now: Instant) -> Self {
        let capacity = f64::from(per_minute.max(1));
        Self {
            capacity,
            tokens: capacity,
            per_second: capacity / 60.0,
            last: now,
        }
    }

    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The held restarts and the guards, pure: the caller supplies the time, what each workload
/// looks like now, and does the patching.
#[derive(Debug)]
pub struct Queue {
    cooldown: Duration,
    bucket: Bucket,
    pending: BTreeMap<WorkloadKey, Pending>,
    /// When this controller last restarted each workload (the template's
    /// `secretsinit.io/restartedAt` covers restarts by an earlier leader).
    last: BTreeMap<WorkloadKey, SystemTime>,
}

/// What the caller knows of a workload at decision time.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub paused: bool,
    /// The template's `secretsinit.io/restartedAt`.
    pub restarted_at: Option<SystemTime>,
    /// The template's `secretsinit.io/restart-reason`: the changes its last restart was for.
    pub restart_reason: Option<String>,
}

/// Whether the restart recorded as `reason` (a template's `secretsinit.io/restart-reason`)
/// was already for `change`: a new leader that sees a change again (the Lease keeps the
/// version before any change whose restarts had not all gone out) skips the workloads the
/// previous leader restarted. A reason cut at 1 KiB may miss a part; that workload is
/// then restarted once more, after its cool-down.
pub fn already_restarted_for(reason: &str, change: &Change) -> bool {
    let part = change.describe();
    reason.split("; ").any(|p| p == part)
}

/// The queue's answer for one pending restart.
#[derive(Debug)]
pub enum Step {
    /// Restart it now, for these changes.
    Go(WorkloadKey, Pending),
    /// It waits; counted once per reason per pending restart.
    Held(WorkloadKey, Held),
    /// Its template already carries a restart for every change (an earlier leader's): done.
    Already(WorkloadKey),
}

impl Queue {
    pub fn new(cooldown: Duration, per_minute: u32, now: Instant) -> Self {
        Self {
            cooldown,
            bucket: Bucket::new(per_minute, now),
            pending: BTreeMap::new(),
            last: BTreeMap::new(),
        }
    }

    /// Queues a restart of `key` for `change`. A later change of a key that is still pending
    /// replaces the earlier one but keeps its `from` (the version the pods were started
    /// with); one back to that version cancels the restart for that key, since the pods
    /// already run it.
    pub fn add(&mut self, key: WorkloadKey, mut change: Change) {
        let pending = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            changes: Vec::new(),
            held: BTreeSet::new(),
        });
        if let Some(i) = pending.changes.iter().position(|c| c.key == change.key) {
            let earlier = pending.changes.remove(i);
            if earlier.from == change.to {
                if pending.changes.is_empty() {
                    self.pending.remove(&key);
                }
                return;
            }
            change.from = earlier.from;
        }
        pending.changes.push(change);
    }

    /// For each watched key with a restart still to go out, the version before that change.
    /// The Lease records this instead of the latest version, so a leader that takes over
    /// before the restarts went out sees the change again instead of losing it.
    pub fn unsettled(&self) -> BTreeMap<WatchKey, String> {
        let mut out = BTreeMap::new();
        for pending in self.pending.values() {
            for c in &pending.changes {
                out.entry(c.key.clone()).or_insert_with(|| c.from.clone());
            }
        }
        out
    }

    /// Forgets a workload that no longer exists or no longer opts in.
    pub fn forget(&mut self, key: &WorkloadKey) {
        self.pending.remove(key);
        self.last.remove(key);
    }

    pub fn pending(&self) -> impl Iterator<Item = &WorkloadKey> {
        self.pending.keys()
    }

    /// Decides every pending restart. `state` gives each workload's state (None: gone,
    /// forget it). Returns the restarts to do now (the caller then calls [`Queue::done`])
    /// and the newly held ones.
    pub fn steps(
        &mut self,
        now: Instant,
        wall: SystemTime,
        mut state: impl FnMut(&WorkloadKey) -> Option<State>,
    ) -> Vec<Step> {
        let mut out = Vec::new();
        let keys: Vec<WorkloadKey> = self.pending.keys().cloned().collect();
        for key in keys {
            let Some(s) = state(&key) else {
                self.pending.remove(&key);
                continue;
            };
            if let (Some(reason), Some(p)) =
                (s.restart_reason.as_deref(), self.pending.get_mut(&key))
            {
                p.changes.retain(|c| !already_restarted_for(reason, c));
                if p.changes.is_empty() {
                    self.pending.remove(&key);
                    out.push(Step::Already(key));
                    continue;
                }
            }
            let last = [self.last.get(&key).copied(), s.restarted_at]
                .into_iter()
                .flatten()
                .max();
            let hold = if s.paused {
                Some(Held::Paused)
            } else if last
                .is_some_and(|t| wall.duration_since(t).unwrap_or(Duration::ZERO) < self.cooldown)
            {
                Some(Held::Cooldown)
            } else if !self.bucket.try_take(now) {
                Some(Held::RateLimit)
            } else {
                None
            };
            match hold {
                Some(reason) => {
                    if let Some(p) = self.pending.get_mut(&key)
                        && p.held.insert(reason)
                    {
                        out.push(Step::Held(key, reason));
                    }
                }
                None => {
                    if let Some(p) = self.pending.remove(&key) {
                        out.push(Step::Go(key, p));
                    }
                }
            }
        }
        out
    }

    /// Records that `key` was restarted at `wall`.
    pub fn done(&mut self, key: WorkloadKey, wall: SystemTime) {
        self.last.insert(key, wall);
    }

    /// A restart that failed goes back to the queue, to be tried again.
    pub fn retry(&mut self, key: WorkloadKey, pending: Pending) {
        self.pending.insert(key, pending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refs::WatchKey;
    use crate::workloads::Kind;
    use placeholder::Source;

    fn wk(name: &str) -> WorkloadKey {
        WorkloadKey {
            kind: Kind::Deployment,
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn change(id: &str, to: &str) -> Change {
        Change {
            key: WatchKey {
                source: Source::SecretsManager,
                region: "us-east-1".into(),
                id: id.into(),
                stage: "AWSCURRENT".into(),
            },
            from: "v0".into(),
            to: to.into(),
        }
    }

    const FREE: State = State {
        paused: false,
        restarted_at: None,
        restart_reason: None,
    };

    fn names(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Go(k, p) => format!("go {} {}", k.name, p.reason()),
                Step::Held(k, r) => format!("held {} {}", k.name, r.as_str()),
                Step::Already(k) => format!("already {}", k.name),
            })
            .collect()
    }

    #[test]
    fn cooldown_holds_then_one_restart_for_every_change_held() {
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut q = Queue::new(Duration::from_secs(300), 100, t0);
        q.add(wk("a"), change("db", "v1"));
        let steps = q.steps(t0, w0, |_| Some(FREE));
        assert_eq!(names(&steps), ["go a awssm:db AWSCURRENT=v1"]);
        q.done(wk("a"), w0);
        // two more changes inside the cool-down: held once, then one restart with both
        q.add(wk("a"), change("db", "v2"));
        q.add(wk("a"), change("other", "x1"));
        let w1 = w0 + Duration::from_secs(10);
        assert_eq!(names(&q.steps(t0, w1, |_| Some(FREE))), ["held a cooldown"]);
        assert!(
            q.steps(t0, w1, |_| Some(FREE)).is_empty(),
            "held is counted once"
        );
        let w2 = w0 + Duration::from_secs(301);
        assert_eq!(
            names(&q.steps(t0, w2, |_| Some(FREE))),
            ["go a awssm:db AWSCURRENT=v2; awssm:other AWSCURRENT=x1"]
        );
        assert_eq!(q.pending().count(), 0);
    }

    #[test]
    fn an_earlier_leaders_restart_counts_for_the_cooldown() {
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut q = Queue::new(Duration::from_secs(300), 100, t0);
        q.add(wk("a"), change("db", "v1"));
        let state = State {
            restarted_at: Some(w0 - Duration::from_secs(60)),
            ..State::default()
        };
        assert_eq!(
            names(&q.steps(t0, w0, |_| Some(state.clone()))),
            ["held a cooldown"]
        );
    }

    #[test]
    fn the_rate_limit_is_cluster_wide_and_refills() {
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH;
        let mut q = Queue::new(Duration::ZERO, 2, t0);
        for n in ["a", "b", "c"] {
            q.add(wk(n), change("db", "v1"));
        }
        let steps = names(&q.steps(t0, w0, |_| Some(FREE)));
        assert_eq!(
            steps,
            [
                "go a awssm:db AWSCURRENT=v1",
                "go b awssm:db AWSCURRENT=v1",
                "held c rate_limit"
            ]
        );
        // 2 a minute: one token back after 30 s
        let steps = names(&q.steps(t0 + Duration::from_secs(30), w0, |_| Some(FREE)));
        assert_eq!(steps, ["go c awssm:db AWSCURRENT=v1"]);
    }

    #[test]
    fn paused_holds_and_gone_workloads_are_dropped() {
        let t0 = Instant::now();
        let mut q = Queue::new(Duration::ZERO, 10, t0);
        q.add(wk("a"), change("db", "v1"));
        q.add(wk("b"), change("db", "v1"));
        let paused = State {
            paused: true,
            ..State::default()
        };
        let steps = names(&q.steps(t0, SystemTime::UNIX_EPOCH, |k| {
            (k.name == "a").then(|| paused.clone())
        }));
        assert_eq!(steps, ["held a paused"]);
        assert_eq!(q.pending().count(), 1);
        let steps = names(&q.steps(t0, SystemTime::UNIX_EPOCH, |_| Some(FREE)));
        assert_eq!(steps, ["go a awssm:db AWSCURRENT=v1"]);
    }

    #[test]
    fn a_later_change_keeps_the_first_from_and_one_back_to_it_cancels() {
        let t0 = Instant::now();
        let mut q = Queue::new(Duration::ZERO, 10, t0);
        let step = |from: &str, to: &str| Change {
            from: from.into(),
            ..change("db", to)
        };
        q.add(wk("a"), step("v1", "v2"));
        q.add(wk("a"), step("v2", "v3"));
        assert_eq!(
            q.unsettled().into_values().collect::<Vec<_>>(),
            ["v1"],
            "the Lease keeps the version the pods run"
        );
        q.add(wk("a"), step("v3", "v1"));
        assert_eq!(q.pending().count(), 0, "back to the version the pods run");
        assert!(q.unsettled().is_empty());
        // another key of the same workload stays
        q.add(wk("a"), step("v1", "v2"));
        q.add(wk("a"), change("other", "x1"));
        q.add(wk("a"), step("v2", "v1"));
        assert_eq!(
            names(&q.steps(t0, SystemTime::UNIX_EPOCH, |_| Some(FREE))),
            ["go a awssm:other AWSCURRENT=x1"]
        );
        assert!(q.unsettled().is_empty(), "settled once it went out");
    }

    #[test]
    fn a_workload_an_earlier_leader_restarted_for_the_change_is_skipped() {
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut q = Queue::new(Duration::from_secs(300), 10, t0);
        for n in ["a", "b", "c"] {
            q.add(wk(n), change("db", "v2"));
        }
        q.add(wk("c"), change("other", "x1"));
        let by_earlier_leader = State {
            restarted_at: Some(w0 - Duration::from_secs(5)),
            restart_reason: Some("awsssm:/p version 3; awssm:db AWSCURRENT=v2".into()),
            ..State::default()
        };
        let for_older_version = State {
            restart_reason: Some("awssm:db AWSCURRENT=v1".into()),
            ..State::default()
        };
        let steps = names(&q.steps(t0, w0, |k| match k.name.as_str() {
            "a" => Some(for_older_version.clone()),
            _ => Some(by_earlier_leader.clone()),
        }));
        assert_eq!(
            steps,
            [
                "go a awssm:db AWSCURRENT=v2",
                "already b",
                // c still needs its restart for the other id (after the cool-down)
                "held c cooldown"
            ]
        );
        let later = w0 + Duration::from_secs(301);
        assert_eq!(
            names(&q.steps(t0, later, |_| Some(by_earlier_leader.clone()))),
            ["go c awssm:other AWSCURRENT=x1"]
        );
    }

    #[test]
    fn reasons_are_bounded() {
        let p = Pending {
            changes: (0..200)
                .map(|i| change(&format!("secret-{i:03}"), "v"))
                .collect(),
            held: BTreeSet::new(),
        };
        let r = p.reason();
        assert!(r.len() <= 1100, "{}", r.len());
        assert!(r.ends_with("more"), "{r}");
    }
}
