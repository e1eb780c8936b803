//! Leader election on a `coordination.k8s.io/v1` Lease, the way client-go's leaderelection
//! does it: the holder renews `renewTime` every `duration / 3`; a candidate takes the Lease
//! over only when the record has not changed for a whole `duration` by its own clock (so
//! clock skew between nodes does not matter). Every write carries the `resourceVersion` it
//! read: of two replicas racing, the API server accepts one and answers the other 409, so
//! two leaders at once cannot happen through this code.
//!
//! The leader also keeps the versions it has observed in the Lease's annotation
//! `secretsinit.io/observed-versions`, so that a new leader compares against what the old
//! one saw and a rotation during a hand-over still restarts the workloads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use crate::refs::WatchKey;

pub const ANNOTATION_OBSERVED: &str = "secretsinit.io/observed-versions";

#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
}

/// What the leader writes into the Lease besides the lock: the observed versions, encoded.
#[derive(Debug, Default)]
pub struct Observed {
    /// The encoded snapshot the poller last handed over.
    pub latest: Option<String>,
    /// What an earlier leader recorded, read when this replica acquired the Lease.
    pub inherited: Option<String>,
}

pub type SharedObserved = Arc<Mutex<Observed>>;

/// Encodes observed versions for the annotation: `{"awssm|us-east-1|prod/db|AWSCURRENT": "v"}`.
pub fn encode(seen: &BTreeMap<WatchKey, String>) -> String {
    let map: BTreeMap<String, &String> = seen
        .iter()
        .map(|(k, v)| {
            (
                format!(
                    "{}|{}|{}|{}",
                    k.source.prefix().trim_end_matches(':'),
                    k.region,
                    k.id,
                    k.stage
                ),
                v,
            )
        })
        .collect();
    serde_json::to_string(&map).unwrap_or_default()
}

pub fn decode(text: &str) -> BTreeMap<WatchKey, String> {
    let Ok(map) = serde_json::from_str::<BTreeMap<String, String>>(text) else {
        return BTreeMap::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| {
            let mut parts = k.splitn(4, '|');
            let source = match parts.next()? {
                "awssm" => placeholder::Source::SecretsManager,
                "awsssm" => placeholder::Source::ParameterStore,
                _ => return None,
            };
            let region = parts.next()?.to_owned();
            // ids may hold `|`? Secret names allow `/_+=.@-` and ARNs `:`; never `|`.
            let id = parts.next()?.to_owned();
            let stage = parts.next().unwrap_or_default().to_owned();
            Some((
                WatchKey {
                    source,
                    region,
                    id,
                    stage,
                },
                v,
            ))
        })
        .collect()
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// Runs the election until `stop` fires; `leader` says whether this replica holds the
/// Lease. On stop, a held Lease is released (holder cleared) so a standby takes over at
/// once instead of after `duration`.
pub async fn run(
    client: Client,
    settings: Settings,
    observed: SharedObserved,
    leader: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let retry = settings.duration / 3;
    // The last record seen of someone else's Lease, and when (by this clock) it changed.
    let mut observed_record: Option<(String, Instant)> = None;
    let mut last_renew: Option<Instant> = None;
    loop {
        let leading = *leader.borrow();
        let holding = try_once(&api, &settings, &observed, &mut observed_record, leading).await;
        match holding {
            Ok(true) => last_renew = Some(Instant::now()),
            Ok(false) => last_renew = None,
            Err(e) => {
                tracing::warn!(lease = %settings.name, namespace = %settings.namespace, error = %e, "leader election: cannot read or write the Lease")
            }
        }
        // A leader that cannot renew for a whole duration must assume someone else took over.
        let is_leader = last_renew.is_some_and(|t| t.elapsed() < settings.duration);
        if *leader.borrow() != is_leader {
            tracing::info!(identity = %settings.identity, leader = is_leader, "leadership changed");
            let _ = leader.send(is_leader);
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = stop.changed() => break,
        }
    }
    if *leader.borrow() {
        let _ = leader.send(false);
        if let Ok(mut lease) = api.get(&settings.name).await
            && holder(&lease) == Some(settings.identity.as_str())
        {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
            }
            match api
                .replace(&settings.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => tracing::info!(lease = %settings.name, "released the Lease"),
                Err(e) => {
                    tracing::warn!(error = %e, "could not release the Lease; a standby takes over when it expires")
                }
            }
        }
    }
}

fn holder(lease: &Lease) -> Option<&str> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

/// One round: create, renew or take over. Ok(true) when this replica holds the Lease after it.
/// `leading`: whether this replica leads now; when it does not, the versions recorded in the
/// Lease are handed to the poller even if the Lease names this replica (its own Lease, lapsed
/// while the API server was away, or held under the same identity by a restarted container):
/// the poller dropped what it had seen when it stopped leading.
async fn try_once(
    api: &Api<Lease>,
    settings: &Settings,
    observed: &SharedObserved,
    observed_record: &mut Option<(String, Instant)>,
    leading: bool,
) -> Result<bool, kube::Error> {
    let duration_secs = i32::try_from(settings.duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let current = match api.get_opt(&settings.name).await? {
        Some(l) => l,
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(settings.name.clone()),
                    namespace: Some(settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(settings.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    tracing::info!(lease = %settings.name, identity = %settings.identity, "created the Lease and hold it");
                    Ok(true)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        }
    };
    let me = settings.identity.as_str();
    let mut lease = current.clone();
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let held_by = holder(&current).map(str::to_owned);
    let record = format!(
        "{:?}|{:?}|{:?}",
        spec.holder_identity, spec.renew_time, spec.lease_duration_seconds
    );
    match held_by.as_deref() {
        Some(h) if h == me => {}
        Some(_) => {
            // Someone else's: expired only if the record has not changed for the whole
            // duration the holder asked for, by this replica's clock.
            let their = Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(duration_secs)).unwrap_or(1),
            );
            let changed_at = match observed_record {
                Some((r, at)) if *r == record => *at,
                _ => {
                    *observed_record = Some((record, Instant::now()));
                    return Ok(false);
                }
            };
            if changed_at.elapsed() < their {
                return Ok(false);
            }
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.acquire_time = Some(now());
        }
        None => {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.acquire_time = Some(now());
        }
    }
    let taking_over = held_by.as_deref() != Some(me);
    spec.holder_identity = Some(me.to_owned());
    spec.lease_duration_seconds = Some(duration_secs);
    spec.renew_time = Some(now());
    {
        let mut o = observed.lock().unwrap_or_else(|e| e.into_inner());
        let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
        if taking_over || !leading {
            o.inherited = annotations.get(ANNOTATION_OBSERVED).cloned();
        }
        if let Some(latest) = &o.latest {
            annotations.insert(ANNOTATION_OBSERVED.to_owned(), latest.clone());
        }
    }
    match api
        .replace(&settings.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => {
            if taking_over {
                tracing::info!(lease = %settings.name, identity = %me, previous = held_by.as_deref().unwrap_or("-"), "acquired the Lease");
            }
            *observed_record = None;
            Ok(true)
        }
        // Someone else wrote first: they hold it (or renewed it); look again next round.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use placeholder::Source;

    #[test]
    fn observed_versions_round_trip() {
        let seen = BTreeMap::from([
            (
                WatchKey {
                    source: Source::SecretsManager,
                    region: "us-east-1".into(),
                    id: "arn:aws:secretsmanager:us-east-1:1:secret:a/b-AbCdEf".into(),
                    stage: "AWSCURRENT".into(),
                },
                "v1".to_owned(),
            ),
            (
                WatchKey {
                    source: Source::ParameterStore,
                    region: "eu-west-1".into(),
                    id: "/prod/p".into(),
                    stage: String::new(),
                },
                "7".to_owned(),
            ),
        ]);
        assert_eq!(decode(&encode(&seen)), seen);
        assert!(decode("not json").is_empty());
    }
}
