//! The webhook's registry parsing (`images::registry`): manifests and indexes (Docker v2
//! schema 2, OCI), platform selection, image configs, image references, docker
//! `config.json` and ECR host names. Bad input is an error with a reason, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mutation_modes::Platform;
use secrets_init_webhook::images::docker_config::{DockerConfig, normalize_registry_host};
use secrets_init_webhook::images::ecr::ecr_region;
use secrets_init_webhook::images::registry::{
    Manifest, available_platforms, parse_config, parse_manifest, parse_reference, select_platform,
};

fuzz_target!(|data: &[u8]| {
    match parse_manifest(data) {
        Ok(Manifest::Index(index)) => {
            let listed = available_platforms(&index.manifests);
            assert!(!listed.is_empty());
            for platform in [
                Platform::linux("amd64"),
                Platform::linux("arm64"),
                Platform {
                    os: "linux".into(),
                    architecture: "arm".into(),
                    variant: Some("v7".into()),
                },
            ] {
                if let Some(entry) = select_platform(&index.manifests, &platform) {
                    let p = entry
                        .platform
                        .as_ref()
                        .expect("selected entry has a platform");
                    assert_eq!(p.architecture.to_string(), platform.architecture);
                }
            }
        }
        Ok(Manifest::Image(_)) => {}
        Err(reason) => assert!(!reason.is_empty()),
    }
    if let Err(reason) = parse_config(data) {
        assert!(!reason.is_empty());
    }
    let _ = DockerConfig::parse(data, Path::new("/fuzz/config.json"));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_reference(text);
        let _ = ecr_region(text);
        let _ = normalize_registry_host(text);
    }
});
