//! What the controller has seen of each watched id, and which observations are changes
//! (pure). The first observation of an id records its signature and restarts nothing: the
//! controller cannot know whether the pods started before or after that version.

use std::collections::{BTreeMap, BTreeSet};

use crate::refs::WatchKey;

/// What one poll (or event-driven re-check) learned about an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The version signal: for a Secrets Manager stage the version id holding it (or
    /// `none`), for a parameter its latest version number. Never a value.
    Version(String),
    /// The id does not exist (yet): nothing to compare; the last version seen is kept.
    NotFound,
    /// AWS refused the metadata call; `action` is the IAM action to grant.
    AccessDenied { action: &'static str },
    /// A transient failure (network, throttling); the id is asked again next interval.
    Failed,
}

/// A watched id whose version moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: WatchKey,
    pub from: String,
    pub to: String,
}

impl Change {
    /// `awssm:prod/db AWSCURRENT=<version-id>` or `awsssm:/p version 7`: the change's part of
    /// a restart reason (ids and versions only, never a value).
    pub fn describe(&self) -> String {
        let what = if self.key.stage.is_empty() {
            format!("version {}", self.to)
        } else {
            format!("{}={}", self.key.stage, self.to)
        };
        format!("{}{} {what}", self.key.source.prefix(), self.key.id)
    }
}

#[derive(Debug, Default)]
pub struct Tracker {
    seen: BTreeMap<WatchKey, String>,
}

impl Tracker {
    /// Seeds the tracker with what an earlier leader recorded (the Lease's annotation), so a
    /// rotation during a hand-over is still seen as a change.
    pub fn seed(&mut self, recorded: BTreeMap<WatchKey, String>) {
        for (key, version) in recorded {
            self.seen.entry(key).or_insert(version);
        }
    }

    /// Records `observations`; returns the changes. Ids no longer referenced by any workload
    /// are forgotten (`referenced`), so one that is referenced again later starts afresh.
    pub fn observe(
        &mut self,
        observations: &BTreeMap<WatchKey, Observation>,
        referenced: &BTreeSet<WatchKey>,
    ) -> Vec<Change> {
        self.seen.retain(|k, _| referenced.contains(k));
        let mut changes = Vec::new();
        for (key, observation) in observations {
            let Observation::Version(version) = observation else {
                continue;
            };
            match self.seen.insert(key.clone(), version.clone()) {
                Some(before) if before != *version => changes.push(Change {
                    key: key.clone(),
                    from: before,
                    to: version.clone(),
                }),
                _ => {}
            }
        }
        changes
    }

    pub fn snapshot(&self) -> &BTreeMap<WatchKey, String> {
        &self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use placeholder::Source;

    fn key(id: &str) -> WatchKey {
        WatchKey {
            source: Source::SecretsManager,
            region: "us-east-1".into(),
            id: id.into(),
            stage: "AWSCURRENT".into(),
        }
    }

    fn obs(pairs: &[(&str, Observation)]) -> BTreeMap<WatchKey, Observation> {
        pairs.iter().map(|(id, o)| (key(id), o.clone())).collect()
    }

    #[test]
    fn first_sight_is_no_change_then_a_new_version_is_one_change() {
        let mut t = Tracker::default();
        let referenced = BTreeSet::from([key("a"), key("b")]);
        let v = |s: &str| Observation::Version(s.into());
        assert!(
            t.observe(&obs(&[("a", v("1")), ("b", v("x"))]), &referenced)
                .is_empty()
        );
        assert!(
            t.observe(&obs(&[("a", v("1")), ("b", v("x"))]), &referenced)
                .is_empty()
        );
        let changes = t.observe(&obs(&[("a", v("2")), ("b", v("x"))]), &referenced);
        assert_eq!(
            changes,
            [Change {
                key: key("a"),
                from: "1".into(),
                to: "2".into()
            }]
        );
        // a failure or a missing id keeps the last version: no change when it comes back
        assert!(
            t.observe(&obs(&[("a", Observation::Failed)]), &referenced)
                .is_empty()
        );
        assert!(
            t.observe(&obs(&[("a", Observation::NotFound)]), &referenced)
                .is_empty()
        );
        assert!(t.observe(&obs(&[("a", v("2"))]), &referenced).is_empty());
    }

    #[test]
    fn an_id_no_longer_referenced_is_forgotten_and_seeds_count_as_seen() {
        let mut t = Tracker::default();
        let v = |s: &str| Observation::Version(s.into());
        t.seed(BTreeMap::from([(key("a"), "1".to_owned())]));
        let referenced = BTreeSet::from([key("a")]);
        assert_eq!(t.observe(&obs(&[("a", v("2"))]), &referenced).len(), 1);
        assert!(t.observe(&BTreeMap::new(), &BTreeSet::new()).is_empty());
        assert!(t.snapshot().is_empty());
        assert!(t.observe(&obs(&[("a", v("3"))]), &referenced).is_empty());
    }
}
