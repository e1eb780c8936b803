//! A pod with 60 containers: every rule still holds, image lookups are made once per distinct
//! image and all at once, and the result validates against the Kubernetes schema.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use crate::common::{base_config, validate_files};
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mutation_modes::{
    ANNOTATION_INJECT, Decision, ImageConfig, ImageConfigError, ImageConfigSource, ModeKind,
    MutationConfig, Platform, SECRETS_INIT_BIN, mutate_pod,
};
use tokio::sync::Barrier;

const MAIN: usize = 55;
const INIT: usize = 5;
const IMAGES: usize = 10;

fn image(i: usize) -> String {
    format!("registry.example/svc-{}:1", i % IMAGES)
}

/// Containers `c00`..`c54` (every 11th is a sidecar without placeholders; even ones set
/// `command`; odd and even ones each use all 10 images) and init containers `init-0`..`init-4` (placeholders, `command` set).
fn big_pod() -> Pod {
    let env = |placeholder: bool| {
        Some(vec![EnvVar {
            name: "TOKEN".into(),
            value: Some(if placeholder {
                "awssm:prod/t".into()
            } else {
                "plain".into()
            }),
            ..Default::default()
        }])
    };
    let containers = (0..MAIN)
        .map(|i| Container {
            name: format!("c{i:02}"),
            image: Some(image(i / 2)),
            command: (i % 2 == 0).then(|| vec![format!("/bin/svc-{i}")]),
            args: Some(vec![format!("--id={i}")]),
            env: env(i % 11 != 0),
            ..Default::default()
        })
        .collect();
    let init_containers = (0..INIT)
        .map(|i| Container {
            name: format!("init-{i}"),
            image: Some(image(i)),
            command: Some(vec!["/bin/setup".into()]),
            env: env(true),
            ..Default::default()
        })
        .collect();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some("big-".into()),
            annotations: Some([(ANNOTATION_INJECT.to_owned(), "true".to_owned())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers,
            init_containers: Some(init_containers),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Answers every image, but only once `expected` lookups are in flight at the same time:
/// lookups made one after another never get past the barrier and time out.
struct ConcurrentImages {
    barrier: Barrier,
    calls: Mutex<Vec<String>>,
}

impl ImageConfigSource for ConcurrentImages {
    async fn image_config(
        &self,
        image: &str,
        _: &Platform,
    ) -> Result<ImageConfig, ImageConfigError> {
        self.calls.lock().unwrap().push(image.to_owned());
        if tokio::time::timeout(Duration::from_secs(10), self.barrier.wait())
            .await
            .is_err()
        {
            return Err(ImageConfigError::Other {
                image: image.to_owned(),
                reason: "image lookups were not made concurrently".into(),
            });
        }
        Ok(ImageConfig {
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["run".into()]),
        })
    }
}

#[tokio::test]
async fn sixty_containers_in_every_mode() {
    let pod = big_pod();
    let input = serde_json::to_value(&pod).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for mode in ModeKind::ALL {
        // init/shared: the odd containers (no command) need their image; image-swap checks
        // the variant of every selected container. Either way: 10 distinct images.
        let images = ConcurrentImages {
            barrier: Barrier::new(IMAGES),
            calls: Mutex::new(Vec::new()),
        };
        let config = MutationConfig {
            default_mode: mode,
            ..base_config()
        };
        let decision = mutate_pod(&pod, &config, &images).await.unwrap();
        let Decision::Mutated { patch, .. } = decision else {
            panic!("{mode}: {decision:?}")
        };

        let calls = images.calls.lock().unwrap().clone();
        let distinct: BTreeSet<_> = calls.iter().collect();
        assert_eq!(
            calls.len(),
            IMAGES,
            "{mode}: one lookup per distinct image: {calls:?}"
        );
        assert_eq!(distinct.len(), IMAGES, "{mode}");

        let mut doc = input.clone();
        json_patch::patch(&mut doc, &patch).unwrap();
        let patched: Pod = serde_json::from_value(doc.clone()).unwrap();
        let spec = patched.spec.as_ref().unwrap();
        for (i, c) in spec.containers.iter().enumerate() {
            let original = &pod.spec.as_ref().unwrap().containers[i];
            if i % 11 == 0 {
                assert_eq!(c, original, "{mode}: sidecar {} was changed", c.name);
                continue;
            }
            let cmd = c.command.as_ref().unwrap();
            assert_eq!(cmd[0], SECRETS_INIT_BIN, "{mode}: {}", c.name);
            let tail = &cmd[cmd.iter().position(|a| a == "--").unwrap() + 1..];
            let want: Vec<String> = if i % 2 == 0 {
                vec![format!("/bin/svc-{i}"), format!("--id={i}")]
            } else {
                vec!["/entry".into(), format!("--id={i}")]
            };
            assert_eq!(tail, want.as_slice(), "{mode}: {}", c.name);
            assert!(c.args.is_none(), "{mode}: {}", c.name);
        }
        let inits = spec.init_containers.as_ref().unwrap();
        let injected = usize::from(mode == ModeKind::InitContainer);
        assert_eq!(inits.len(), INIT + injected, "{mode}");
        for c in &inits[injected..] {
            assert_eq!(
                c.command.as_ref().unwrap()[0],
                SECRETS_INIT_BIN,
                "{mode}: {}",
                c.name
            );
        }
        let path = dir.path().join(format!("big.{mode}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        files.push(path);
    }
    if let Err(e) = validate_files(&files) {
        panic!("{e}");
    }
}
