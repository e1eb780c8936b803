//! `image-swap` mode: each mutated container runs a variant of its image that already holds
//! `/secrets-init/bin/secrets-init`, named by a template.
//!
//! Template placeholders, filled from the image reference as the OCI distribution grammar
//! normalises it (the same way the container runtime does):
//! - `{registry}`: the registry host (`docker.io` for Docker Hub short names such as `nginx`
//!   or `bitnami/redis`; `index.docker.io` is written `docker.io`);
//! - `{repository}`: the path in that registry (`library/nginx` for official Docker Hub images);
//! - `{tag}`: the tag (`latest` when the reference has neither tag nor digest). A reference
//!   with both tag and digest uses the tag (the variant is a different image, so the digest
//!   does not apply); a digest-only reference is denied.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::{ContainerChange, MutationMode, PodAdditions};
use crate::bounded::{VALUE_BYTES, clip, quoted};
use crate::error::MutationError;
use crate::image::parse_reference;
use crate::select::Selected;
use k8s_openapi::api::core::v1::Container;

/// The contract's default template.
pub const DEFAULT_TEMPLATE: &str = "{registry}/{repository}:{tag}-secrets-init";

/// The image-swap template, parsed once (at configuration time) into its pieces.
#[derive(Debug, Clone)]
pub struct SwapTemplate {
    text: String,
    pieces: Arc<[Piece]>,
}

#[derive(Debug)]
enum Piece {
    Text(String),
    Registry,
    Repository,
    Tag,
}

impl PartialEq for SwapTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for SwapTemplate {}

impl Default for SwapTemplate {
    fn default() -> Self {
        // The default is a constant that the tests below parse.
        DEFAULT_TEMPLATE.parse().unwrap_or_else(|_| Self {
            text: DEFAULT_TEMPLATE.to_owned(),
            pieces: Arc::from([]),
        })
    }
}

impl fmt::Display for SwapTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn template_error(template: &str, reason: impl Into<String>) -> MutationError {
    MutationError::InvalidTemplate {
        template: template.to_owned(),
        reason: reason.into(),
    }
}

impl FromStr for SwapTemplate {
    type Err = MutationError;

    fn from_str(template: &str) -> Result<Self, Self::Err> {
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find(['{', '}']) {
            if rest.as_bytes()[open] == b'}' {
                return Err(template_error(template, "it has a '}' without '{'"));
            }
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| template_error(template, "it has a '{' without '}'"))?;
            pieces.push(match &after[..close] {
                "registry" => Piece::Registry,
                "repository" => Piece::Repository,
                "tag" => Piece::Tag,
                other => {
                    return Err(template_error(
                        template,
                        format!("it has the unknown placeholder {{{other}}}"),
                    ));
                }
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        if !pieces.iter().any(|p| matches!(p, Piece::Tag)) {
            return Err(template_error(
                template,
                "it has no {tag}, so every version of an image would map to one variant",
            ));
        }
        Ok(Self {
            text: template.to_owned(),
            pieces: pieces.into(),
        })
    }
}

impl serde::Serialize for SwapTemplate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for SwapTemplate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Runs each mutated container from its image's variant that already holds secrets-init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSwap {
    pub template: SwapTemplate,
}

impl ImageSwap {
    /// The variant of `image` that the template names.
    pub fn variant(&self, who: &Selected, image: &str) -> Result<String, MutationError> {
        let r = parse_reference(image).map_err(|reason| MutationError::InvalidImage {
            what: format!("the image of {who}"),
            image: quoted(image),
            reason,
        })?;
        let Some(tag) = r.tag() else {
            return Err(MutationError::DigestOnly {
                container: who.to_string(),
                image: clip(image, VALUE_BYTES),
            });
        };
        let variant: String = self
            .template
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.as_str(),
                Piece::Registry => r.registry(),
                Piece::Repository => r.repository(),
                Piece::Tag => tag,
            })
            .collect();
        parse_reference(&variant).map_err(|reason| MutationError::InvalidImage {
            what: format!(
                "the image-swap variant of {} (template {:?}) for {who}",
                clip(image, VALUE_BYTES),
                self.template.text
            ),
            image: quoted(&variant),
            reason,
        })?;
        Ok(variant)
    }
}

impl MutationMode for ImageSwap {
    fn run_image(&self, who: &Selected, c: &Container) -> Result<Option<String>, MutationError> {
        let Some(image) = c.image.as_deref() else {
            return Err(MutationError::NoImage {
                container: who.to_string(),
                why: "image-swap mode replaces the image by its secrets-init variant, so it needs one; set image, or choose another mode with the annotation secretsinit.io/mutation-mode".to_owned(),
            });
        };
        self.variant(who, image).map(Some)
    }

    fn always_look_up(&self) -> bool {
        true
    }

    fn pod_additions(&self) -> PodAdditions {
        PodAdditions::default()
    }

    fn container_change(&self, run_image: Option<&str>) -> ContainerChange {
        ContainerChange {
            mount: None,
            image: run_image.map(str::to_owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::ContainerKind;

    const D: &str = "sha256:0123456789012345678901234567890123456789012345678901234567890123";

    #[test]
    fn variants() {
        let who = Selected {
            kind: ContainerKind::Main,
            index: 0,
            name: "app".into(),
        };
        let swap = ImageSwap {
            template: SwapTemplate::default(),
        };
        let digest_only = format!("nginx@{D}");
        let tag_and_digest = format!("nginx:1.27@{D}");
        let cases: Vec<(&str, Result<&str, &str>)> = vec![
            ("nginx", Ok("docker.io/library/nginx:latest-secrets-init")),
            (
                "nginx:1.27",
                Ok("docker.io/library/nginx:1.27-secrets-init"),
            ),
            (
                "bitnami/redis:7",
                Ok("docker.io/bitnami/redis:7-secrets-init"),
            ),
            (
                "docker.io/library/nginx:1",
                Ok("docker.io/library/nginx:1-secrets-init"),
            ),
            (
                "index.docker.io/library/nginx:1",
                Ok("docker.io/library/nginx:1-secrets-init"),
            ),
            (
                "localhost:5000/app:v2",
                Ok("localhost:5000/app:v2-secrets-init"),
            ),
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:1.0",
                Ok("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:1.0-secrets-init"),
            ),
            (
                &tag_and_digest,
                Ok("docker.io/library/nginx:1.27-secrets-init"),
            ),
            (&digest_only, Err("image-swap needs a tag")),
            ("Bad Image", Err("not a valid image reference")),
        ];
        for (image, want) in cases {
            match (swap.variant(&who, image), want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{image}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{image}: {e}"),
                (g, w) => panic!("{image}: got {g:?}, want {w:?}"),
            }
        }
        let custom = ImageSwap {
            template: "mirror.example/{repository}:{tag}".parse().unwrap(),
        };
        assert_eq!(
            custom.variant(&who, "quay.io/org/app:3").unwrap(),
            "mirror.example/org/app:3"
        );
        let long_tag = "t".repeat(120);
        let e = swap.variant(&who, &format!("app:{long_tag}")).unwrap_err();
        assert!(e.to_string().contains("image-swap variant"), "{e}");
    }

    #[test]
    fn templates() {
        for ok in [
            DEFAULT_TEMPLATE,
            "{registry}/mirror/{repository}:{tag}",
            "r.example/x:{tag}",
        ] {
            assert_eq!(ok.parse::<SwapTemplate>().unwrap().to_string(), ok);
        }
        assert_eq!(SwapTemplate::default().to_string(), DEFAULT_TEMPLATE);
        assert_eq!(SwapTemplate::default().pieces.len(), 6);
        for (bad, why) in [
            ("{registry}/{repo}:{tag}", "unknown placeholder {repo}"),
            ("{registry}/{repository}:{tag", "'{' without '}'"),
            ("{registry}/{repository}}:{tag}", "'}' without '{'"),
            ("{registry}/{repository}:x", "no {tag}"),
        ] {
            let e = bad.parse::<SwapTemplate>().unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains("--image-swap-template"),
                "{bad}: {e}"
            );
        }
    }
}
