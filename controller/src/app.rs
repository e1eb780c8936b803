//! The running controller: the watchers, the leader's loop (poll, compare, restart), the
//! pod-failure watch and the health/metrics server, wired together.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Pod, Secret};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event};
use mutation_modes::options::{ANNOTATION_RESTART_REASON, ANNOTATION_RESTARTED_AT, LABEL_INJECTED};
use placeholder::Source;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::detect::{self, Aws};
use crate::failures::Failures;
use crate::lease::{self, SharedObserved};
use crate::metrics::Metrics;
use crate::refs::{self, EnvSource, Reload, Unwatched, WatchKey};
use crate::restart::{Queue, State, Step};
use crate::server::Health;
use crate::sqs;
use crate::track::{Observation, Tracker};
use crate::workloads::{self, Kind, Shared, WorkloadKey};

pub const MANAGER: &str = "secrets-init-controller";

/// How often held restarts are looked at again.
const QUEUE_TICK: Duration = Duration::from_secs(1);

pub async fn run(config: Config) -> Result<(), String> {
    let client = Client::try_default().await.map_err(|e| {
        format!("cannot set up the Kubernetes client (in-cluster ServiceAccount, else KUBECONFIG / ~/.kube/config): {e}")
    })?;
    let http = aws_https::https_client(aws_https::ssl_cert_file_from_env().as_deref())
        .map_err(|e| e.to_string())?;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http);
    if let Some(region) = &config.aws_region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let sdk = loader.load().await;
    let aws = Arc::new(Aws::new(sdk.clone()));
    let default_region = aws.default_region().ok_or_else(|| {
        "no AWS region: set --aws-region (SECRETS_INIT_CONTROLLER_AWS_REGION) or AWS_REGION"
            .to_owned()
    })?;

    if let Some(selector) = &config.namespace_selector {
        workloads::check_namespace_selector(&client, selector).await?;
    }

    let metrics = Metrics::new();
    let index = workloads::shared(config.namespace_selector.is_some());
    let pods_synced = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    tracing::info!(listen = %config.listen, "serving /metrics, /healthz, /readyz");
    let health = Health {
        metrics: metrics.clone(),
        index: index.clone(),
        pods_synced: pods_synced.clone(),
    };
    let server = tokio::spawn(crate::server::serve(listener, health, stop_rx.clone()));

    let ctx = workloads::Context {
        default_region: default_region.clone(),
        metrics: metrics.clone(),
        logged: Arc::default(),
    };
    let mut tasks = vec![
        tokio::spawn(workloads::watch::<Deployment>(
            client.clone(),
            index.clone(),
            ctx.clone(),
        )),
        tokio::spawn(workloads::watch::<StatefulSet>(
            client.clone(),
            index.clone(),
            ctx.clone(),
        )),
        tokio::spawn(workloads::watch::<DaemonSet>(
            client.clone(),
            index.clone(),
            ctx.clone(),
        )),
        tokio::spawn(watch_pods(
            client.clone(),
            metrics.clone(),
            pods_synced.clone(),
        )),
    ];
    if let Some(selector) = &config.namespace_selector {
        tasks.push(tokio::spawn(workloads::watch_namespaces(
            client.clone(),
            selector.clone(),
            index.clone(),
        )));
    }

    let identity = config
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| format!("{MANAGER}-{}", std::process::id()));
    let observed: SharedObserved = Arc::default();
    let (leader_tx, leader_rx) = watch::channel(!config.leader_election);
    let mut keep_leader = None;
    let election = if config.leader_election {
        let namespace = config
            .lease_namespace
            .clone()
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|n| !n.is_empty())
            })
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let settings = lease::Settings {
            name: config.lease_name.clone(),
            namespace,
            identity: identity.clone(),
            duration: config.lease_duration,
        };
        tracing::info!(lease = %settings.name, namespace = %settings.namespace, identity = %identity, "leader election on");
        Some(tokio::spawn(lease::run(
            client.clone(),
            settings,
            observed.clone(),
            leader_tx,
            stop_rx.clone(),
        )))
    } else {
        tracing::warn!("leader election off: this replica acts alone; run exactly one");
        metrics.leader.set(1);
        // Kept open (never sent on): the leader loop reads a closed channel as "stop".
        keep_leader = Some(leader_tx);
        None
    };

    let (ids_tx, ids_rx) = mpsc::channel(256);
    if let Some(url) = &config.sqs_queue_url {
        let sqs_client = aws_sdk_sqs::Client::new(&sdk);
        tasks.push(tokio::spawn(sqs::run(
            sqs_client,
            url.clone(),
            metrics.clone(),
            ids_tx,
            leader_rx.clone(),
            stop_rx.clone(),
        )));
    } else {
        drop(ids_tx);
    }

    let leader_loop = Leader {
        client: client.clone(),
        config: config.clone(),
        aws,
        metrics: metrics.clone(),
        index: index.clone(),
        observed,
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: MANAGER.to_owned(),
                instance: Some(identity),
            },
        ),
        tracker: Tracker::default(),
        queue: Queue::new(
            config.cooldown,
            config.max_restarts_per_minute,
            Instant::now(),
        ),
        reported: HashMap::new(),
    };
    let main = tokio::spawn(leader_loop.run(leader_rx, ids_rx, stop_rx.clone()));

    shutdown_signal().await;
    tracing::info!("shutting down: finishing the restart in progress, releasing the Lease");
    let _ = stop_tx.send(true);
    let deadline = tokio::time::sleep(config.shutdown_timeout);
    tokio::pin!(deadline);
    let finish = async {
        let _ = main.await;
        if let Some(e) = election {
            let _ = e.await;
        }
        let _ = server.await;
    };
    tokio::select! {
        _ = finish => {}
        _ = &mut deadline => tracing::warn!("shutdown timeout reached; exiting"),
    }
    for t in tasks {
        t.abort();
    }
    drop(keep_leader);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The leader's state: what it has seen and what it still has to restart.
struct Leader {
    client: Client,
    config: Config,
    aws: Arc<Aws>,
    metrics: Metrics,
    index: Shared,
    observed: SharedObserved,
    recorder: Recorder,
    tracker: Tracker,
    queue: Queue,
    /// Ids whose last observation was a denial or a miss, so it is logged once per state.
    reported: HashMap<WatchKey, Observation>,
}

impl Leader {
    async fn run(
        mut self,
        mut leader: watch::Receiver<bool>,
        mut ids: mpsc::Receiver<sqs::Named>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut poll = tokio::time::interval(self.config.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(QUEUE_TICK);
        let mut leading = *leader.borrow();
        let mut events_open = true;
        self.metrics.leader.set(i64::from(leading));
        if leading {
            self.inherit();
        }
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                changed = leader.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = *leader.borrow();
                    if now != leading {
                        leading = now;
                        self.metrics.leader.set(i64::from(leading));
                        if leading {
                            self.inherit();
                            poll.reset_immediately();
                        } else {
                            // The next leader takes over the queue's work from what it observes.
                            self.tracker = Tracker::default();
                            self.queue = Queue::new(self.config.cooldown, self.config.max_restarts_per_minute, Instant::now());
                            self.reported.clear();
                        }
                    }
                }
                _ = poll.tick(), if leading => {
                    if self.index.read().unwrap_or_else(|e| e.into_inner()).synced() {
                        self.poll(None).await;
                    } else {
                        // The caches have not synced yet (the Lease can come first): look
                        // again at the next queue tick, not a whole interval later, so the
                        // round at the start of leadership is not lost.
                        poll.reset_after(QUEUE_TICK);
                    }
                }
                named = ids.recv(), if leading && events_open => match named {
                    Some(n) if self.index.read().unwrap_or_else(|e| e.into_inner()).synced() => {
                        self.poll(Some(n)).await;
                    }
                    Some(n) => {
                        // Before the caches have synced nothing is known to reference the
                        // id; the full round that runs right after the sync (the poll arm
                        // above retries every queue tick until then) checks it with the rest.
                        tracing::debug!(id = %n.id, "event before the workloads are listed: the first round checks it");
                        poll.reset_after(QUEUE_TICK);
                    }
                    None => events_open = false,
                },
                _ = tick.tick(), if leading => self.restart_due().await,
            }
        }
    }

    /// Seeds the tracker with what the previous leader recorded in the Lease.
    fn inherit(&mut self) {
        let inherited = self
            .observed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .inherited
            .take();
        if let Some(text) = inherited {
            let seen = lease::decode(&text);
            tracing::info!(
                ids = seen.len(),
                "took over the versions the previous leader observed"
            );
            self.tracker.seed(seen);
        }
    }

    /// Which workloads reference which keys, now; plus the gauges of what is watched.
    async fn references(&mut self) -> Option<BTreeMap<WatchKey, BTreeSet<WorkloadKey>>> {
        let selected: Vec<Arc<workloads::Workload>> = {
            let index = self.index.read().unwrap_or_else(|e| e.into_inner());
            if !index.synced() {
                return None;
            }
            index.selected().cloned().collect()
        };
        let mut by_key: BTreeMap<WatchKey, BTreeSet<WorkloadKey>> = BTreeMap::new();
        let mut unwatched: BTreeMap<Unwatched, BTreeSet<String>> = BTreeMap::new();
        let mut cache: HashMap<(String, EnvSource), Option<BTreeMap<String, String>>> =
            HashMap::new();
        for w in &selected {
            let mut refs = w.refs.clone();
            if self.config.follow_refs {
                self.follow(&w.key.namespace, &w.region, &mut refs, &mut cache)
                    .await;
            } else {
                refs::mark_sources_unwatched(&mut refs);
            }
            for key in refs.watched {
                by_key.entry(key).or_default().insert(w.key.clone());
            }
            for (reason, items) in refs.unwatched {
                let entry = unwatched.entry(reason).or_default();
                for item in items {
                    entry.insert(format!("{}: {item}", w.key));
                }
            }
        }
        for reason in Unwatched::ALL {
            let n = unwatched.get(&reason).map_or(0, BTreeSet::len);
            self.metrics
                .unwatched
                .with_label_values(&[reason.as_str()])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for source in Source::ALL {
            let n = by_key.keys().filter(|k| k.source == source).count();
            self.metrics
                .watched_ids
                .with_label_values(&[source.prefix().trim_end_matches(':')])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for (reason, items) in &unwatched {
            if matches!(reason, Unwatched::ConfigMap | Unwatched::Secret) {
                tracing::debug!(reason = reason.as_str(), references = ?items, "not watched (placeholders there are followed only with --follow-refs)");
            }
        }
        Some(by_key)
    }

    /// With `--follow-refs`: reads each ConfigMap/Secret the template takes env from (once
    /// per round and namespace) and adds the placeholders in it.
    async fn follow(
        &self,
        namespace: &str,
        region: &str,
        refs: &mut refs::TemplateRefs,
        cache: &mut HashMap<(String, EnvSource), Option<BTreeMap<String, String>>>,
    ) {
        let sources: Vec<EnvSource> = refs.env_sources.iter().cloned().collect();
        for source in sources {
            let (name, key) = match &source {
                EnvSource::ConfigMap { name, key } | EnvSource::Secret { name, key } => {
                    (name.clone(), key.clone())
                }
            };
            // The whole object, once per round: a key of it and all of it share the read.
            let whole = match &source {
                EnvSource::ConfigMap { name, .. } => EnvSource::ConfigMap {
                    name: name.clone(),
                    key: None,
                },
                EnvSource::Secret { name, .. } => EnvSource::Secret {
                    name: name.clone(),
                    key: None,
                },
            };
            let data = match cache.get(&(namespace.to_owned(), whole.clone())) {
                Some(d) => d.clone(),
                None => {
                    let d = self.read_source(namespace, &whole).await;
                    cache.insert((namespace.to_owned(), whole.clone()), d.clone());
                    d
                }
            };
            let Some(data) = data else { continue };
            for (k, value) in &data {
                if key.as_ref().is_some_and(|want| want != k) {
                    continue;
                }
                let origin = format!(
                    "{}/{name} key {k}",
                    match source {
                        EnvSource::ConfigMap { .. } => "configmap",
                        EnvSource::Secret { .. } => "secret",
                    }
                );
                refs::add_value_refs(&origin, value, region, refs);
            }
        }
    }

    async fn read_source(
        &self,
        namespace: &str,
        source: &EnvSource,
    ) -> Option<BTreeMap<String, String>> {
        match source {
            EnvSource::ConfigMap { name, .. } => {
                let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
                match api.get_opt(name).await {
                    Ok(cm) => cm.and_then(|c| c.data),
                    Err(e) => {
                        tracing::warn!(namespace, configmap = %name, error = %e, "cannot read a ConfigMap the template references (grant get on configmaps)");
                        None
                    }
                }
            }
            EnvSource::Secret { name, .. } => {
                let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
                match api.get_opt(name).await {
                    // Kept only for this round, parsed for placeholders, never logged.
                    Ok(s) => s.and_then(|s| s.data).map(|data| {
                        data.into_iter()
                            .filter_map(|(k, v)| String::from_utf8(v.0).ok().map(|v| (k, v)))
                            .filter(|(_, v)| placeholder::is_placeholder(v))
                            .collect()
                    }),
                    Err(e) => {
                        tracing::warn!(namespace, secret = %name, error = %e, "cannot read a Secret the template references (grant get on secrets)");
                        None
                    }
                }
            }
        }
    }

    /// One round: every referenced key (or, for an event, the keys it names), compared with
    /// what was seen before; changes queue restarts.
    async fn poll(&mut self, event: Option<sqs::Named>) {
        let Some(by_key) = self.references().await else {
            tracing::debug!("caches not synced yet; skipping this round");
            return;
        };
        let referenced: BTreeSet<WatchKey> = by_key.keys().cloned().collect();
        let asked: BTreeSet<WatchKey> = match &event {
            None => referenced.clone(),
            Some(n) => referenced
                .iter()
                .filter(|k| k.source == n.source && sqs::same(n.source, &n.id, &k.id))
                .cloned()
                .collect(),
        };
        if asked.is_empty() {
            if event.is_none() {
                self.metrics.poll_rounds.inc();
                self.metrics.last_successful_poll.set(unix_now());
            }
            return;
        }
        let observations = detect::observe(&self.aws, &self.metrics, &asked).await;
        if event.is_none() {
            self.metrics.poll_rounds.inc();
        }
        let mut all_ok = true;
        for (key, observation) in &observations {
            match observation {
                Observation::Version(_) => {
                    if self.reported.remove(key).is_some() {
                        tracing::info!(id = %key, region = %key.region, "watched again");
                    }
                }
                Observation::Failed => all_ok = false,
                Observation::NotFound | Observation::AccessDenied { .. } => {
                    if self.reported.get(key) != Some(observation) {
                        match observation {
                            Observation::AccessDenied { action } => {
                                tracing::warn!(id = %key, region = %key.region, "access denied: this id is not watched until the controller's IAM role is granted {action} on it")
                            }
                            _ => {
                                tracing::warn!(id = %key, region = %key.region, workloads = by_key.get(key).map_or(0, BTreeSet::len), "no such secret or parameter: not watched until it exists (the referencing pods cannot start either)")
                            }
                        }
                        self.reported.insert(key.clone(), observation.clone());
                    }
                }
            }
        }
        for reason in ["access_denied", "not_found"] {
            let n = self
                .reported
                .values()
                .filter(|o| match o {
                    Observation::AccessDenied { .. } => reason == "access_denied",
                    Observation::NotFound => reason == "not_found",
                    _ => false,
                })
                .count();
            self.metrics
                .unwatched
                .with_label_values(&[reason])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        if all_ok && event.is_none() {
            self.metrics.last_successful_poll.set(unix_now());
        }
        let changes = self.tracker.observe(&observations, &referenced);
        for change in changes {
            let targets = by_key.get(&change.key).cloned().unwrap_or_default();
            tracing::info!(id = %change.key, region = %change.key.region, from = %change.from, to = %change.to, workloads = targets.len(), "changed: restarting the workloads that reference it");
            for w in targets {
                self.queue.add(w, change.clone());
            }
        }
        self.record();
        self.restart_due().await;
    }

    /// What the Lease carries for the next leader: each id's latest version, except that an
    /// id with restarts still to go out keeps the version before that change. A leader that
    /// loses the Lease with restarts queued (a patch failing while the API server is away)
    /// then hands the change over instead of losing it; the workloads it did restart are
    /// skipped by their `restart-reason` ([`crate::restart::already_restarted_for`]).
    fn record(&self) {
        let mut versions = self.tracker.snapshot().clone();
        versions.extend(self.queue.unsettled());
        let mut o = self.observed.lock().unwrap_or_else(|e| e.into_inner());
        o.latest = Some(lease::encode(&versions));
    }

    /// Sends out every restart that may go now.
    async fn restart_due(&mut self) {
        if self.queue.pending().next().is_none() {
            return;
        }
        let index = self.index.clone();
        let steps = self.queue.steps(Instant::now(), SystemTime::now(), |key| {
            let index = index.read().unwrap_or_else(|e| e.into_inner());
            index.get(key).map(|w| State {
                paused: w.reload == Reload::Paused,
                restarted_at: w.restarted_at,
                restart_reason: w.restart_reason.clone(),
            })
        });
        for step in steps {
            match step {
                Step::Held(key, reason) => {
                    self.metrics.held(reason.as_str());
                    tracing::info!(workload = %key, reason = reason.as_str(), "restart held; it goes out when allowed");
                }
                Step::Already(key) => {
                    tracing::info!(workload = %key, "already restarted for this change (by an earlier leader)");
                }
                Step::Go(key, pending) => {
                    let reason = pending.reason();
                    if self.config.dry_run {
                        self.metrics.restart("dry_run");
                        tracing::info!(workload = %key, reason = %reason, "dry run: would restart");
                        self.queue.done(key, SystemTime::now());
                        continue;
                    }
                    let uid = {
                        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
                        index.get(&key).and_then(|w| w.uid.clone())
                    };
                    match self.patch(&key, &reason).await {
                        Ok(()) => {
                            self.metrics.restart("restarted");
                            tracing::info!(workload = %key, reason = %reason, "restarted");
                            self.queue.done(key.clone(), SystemTime::now());
                            self.event(&key, uid, &reason).await;
                        }
                        Err(kube::Error::Api(e)) if e.code == 404 => {
                            tracing::info!(workload = %key, "gone before its restart");
                            self.queue.forget(&key);
                        }
                        Err(e) => {
                            self.metrics.restart("error");
                            tracing::warn!(workload = %key, error = %e, "restart failed; trying again");
                            self.queue.retry(key, pending);
                        }
                    }
                }
            }
        }
        self.record();
    }

    /// What `kubectl rollout restart` does: a new template annotation, so the workload
    /// controller rolls the pods out under the workload's own strategy.
    async fn patch(&self, key: &WorkloadKey, reason: &str) -> Result<(), kube::Error> {
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {
            ANNOTATION_RESTARTED_AT: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            ANNOTATION_RESTART_REASON: reason,
        }}}}});
        let params = PatchParams {
            field_manager: Some(MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let client = self.client.clone();
        let ns = key.namespace.as_str();
        match key.kind {
            Kind::Deployment => Api::<Deployment>::namespaced(client, ns)
                .patch(&key.name, &params, &Patch::Merge(&patch))
                .await
                .map(drop),
            Kind::StatefulSet => Api::<StatefulSet>::namespaced(client, ns)
                .patch(&key.name, &params, &Patch::Merge(&patch))
                .await
                .map(drop),
            Kind::DaemonSet => Api::<DaemonSet>::namespaced(client, ns)
                .patch(&key.name, &params, &Patch::Merge(&patch))
                .await
                .map(drop),
        }
    }

    async fn event(&self, key: &WorkloadKey, uid: Option<String>, reason: &str) {
        let reference = ObjectReference {
            api_version: Some("apps/v1".to_owned()),
            kind: Some(key.kind.as_str().to_owned()),
            name: Some(key.name.clone()),
            namespace: Some(key.namespace.clone()),
            uid,
            ..ObjectReference::default()
        };
        let event = KubeEvent {
            type_: EventType::Normal,
            reason: "SecretRotated".to_owned(),
            note: Some(format!("restarted by {MANAGER}: {reason}")),
            action: "Restart".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(workload = %key, error = %e, "could not record the Event (grant create and patch on events.k8s.io events)");
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Counts secrets-init failures in injected pods (every replica: the count is per replica,
/// and the alerts take the max across them).
async fn watch_pods(client: Client, metrics: Metrics, synced: Arc<AtomicBool>) {
    let api: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().labels(LABEL_INJECTED);
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut failures = Failures::default();
    let mut present: Option<BTreeSet<String>> = None;
    let mut shown_namespaces: BTreeSet<String> = BTreeSet::new();
    loop {
        let event = match stream.try_next().await {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "watching injected pods failed; retrying with backoff");
                continue;
            }
        };
        let count = |pod: &Pod, failures: &mut Failures| {
            for (namespace, code) in failures.pod(pod) {
                metrics
                    .resolution_failures
                    .with_label_values(&[namespace.as_str(), code])
                    .inc();
                tracing::info!(namespace = %namespace, pod = pod.metadata.name.as_deref().unwrap_or("-"), code, "a container of an injected pod failed to resolve its secrets");
            }
        };
        match event {
            Event::Init => present = Some(BTreeSet::new()),
            Event::InitApply(pod) => {
                if let (Some(p), Some(uid)) = (present.as_mut(), pod.metadata.uid.clone()) {
                    p.insert(uid);
                }
                count(&pod, &mut failures);
            }
            Event::InitDone => {
                if let Some(p) = present.take() {
                    failures.retain(&p);
                }
                synced.store(true, Ordering::Relaxed);
            }
            Event::Apply(pod) => count(&pod, &mut failures),
            Event::Delete(pod) => failures.deleted(&pod),
        }
        let now = failures.failing_by_namespace();
        for ns in shown_namespaces.iter().filter(|n| !now.contains_key(*n)) {
            metrics
                .pods_failing
                .with_label_values(&[ns.as_str()])
                .set(0);
        }
        for (ns, n) in &now {
            metrics
                .pods_failing
                .with_label_values(&[ns.as_str()])
                .set(*n);
        }
        shown_namespaces.extend(now.into_keys());
    }
}
