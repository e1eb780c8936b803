//! The original program of a container, worked out as Kubernetes does, and the rewritten
//! command line that runs it through secrets-init (contract §5).

use k8s_openapi::api::core::v1::Container;

use crate::bounded::{VALUE_BYTES, clip};
use crate::error::MutationError;
use crate::image::ImageConfig;
use crate::select::Selected;

/// Where secrets-init is found in every mutated container.
pub const SECRETS_INIT_BIN: &str = "/secrets-init/bin/secrets-init";

/// `$` → `$$`: for text taken from the pod spec. Kubernetes expands `$(VAR)` and `$$` in
/// `command`/`args`; escaped, it hands secrets-init the text as written, and secrets-init
/// applies the same expansion with the resolved environment.
pub fn escape_spec(s: &str) -> String {
    s.replace('$', "$$")
}

/// `$` → `$$$$`: for text taken from an image config, which Kubernetes never expands.
/// Kubernetes turns `$$$$` into `$$`, secrets-init turns that into `$`: the program gets the
/// text as the image says.
pub fn escape_image(s: &str) -> String {
    s.replace('$', "$$$$")
}

fn non_empty(v: Option<&Vec<String>>) -> Option<&[String]> {
    v.filter(|v| !v.is_empty()).map(Vec::as_slice)
}

/// True when the pod spec alone does not say what the container runs (no `command`), so the
/// image config is needed. An empty list counts as unset, as in Kubernetes.
pub fn needs_image_config(c: &Container) -> bool {
    non_empty(c.command.as_ref()).is_none()
}

/// The original argv, escaped for placement behind `--` (see [`escape_spec`] and
/// [`escape_image`]).
///
/// Kubernetes' rule: `command` + `args` when `command` is set; else the image's `Entrypoint` +
/// (`args` when set, else the image's `Cmd`). An Entrypoint of `[""]` means none, as in
/// containerd. `image` names the image the config came from, for messages.
pub fn original_argv(
    who: &Selected,
    c: &Container,
    image: &str,
    config: Option<&ImageConfig>,
) -> Result<Vec<String>, MutationError> {
    let args = non_empty(c.args.as_ref());
    if let Some(command) = non_empty(c.command.as_ref()) {
        return Ok(command
            .iter()
            .chain(args.into_iter().flatten())
            .map(|s| escape_spec(s))
            .collect());
    }
    let Some(config) = config else {
        // The caller looks the config up whenever `needs_image_config`; reaching here is a bug
        // in the caller, reported rather than panicking.
        return Err(MutationError::ProgramUnknown {
            container: who.to_string(),
            reason: format!(
                "the config of image {} was not read",
                clip(image, VALUE_BYTES)
            ),
        });
    };
    let entrypoint = non_empty(config.entrypoint.as_ref()).filter(|e| *e != [String::new()]);
    let mut argv: Vec<String> = entrypoint
        .into_iter()
        .flatten()
        .map(|s| escape_image(s))
        .collect();
    match args {
        Some(args) => argv.extend(args.iter().map(|s| escape_spec(s))),
        None => argv.extend(
            non_empty(config.cmd.as_ref())
                .into_iter()
                .flatten()
                .map(|s| escape_image(s)),
        ),
    }
    if argv.is_empty() {
        return Err(MutationError::ProgramUnknown {
            container: who.to_string(),
            reason: format!(
                "the pod sets neither command nor args, and image {} has neither Entrypoint nor Cmd",
                clip(image, VALUE_BYTES)
            ),
        });
    }
    Ok(argv)
}

/// The flags secrets-init gets before `--`, in contract order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Flags {
    pub region: Option<String>,
    pub ignore_missing: bool,
    /// `secretsinit.io/env-from`, one `--env-from` each, in the annotation's order (the later
    /// wins between two).
    pub env_from: Vec<String>,
    pub role_arn: Option<String>,
    pub role_external_id: Option<String>,
}

impl Flags {
    /// `[bin, --region R, --ignore-missing, --env-from E..., --role-arn A,
    /// --role-external-id X, --expand-args, (--probe), --, argv...]`. Every value is pod-spec
    /// text that Kubernetes expands (`$(VAR)`, `$$`), so it is escaped like the spec's own.
    pub fn wrap(&self, argv: Vec<String>, probe: bool) -> Vec<String> {
        let mut out = vec![SECRETS_INIT_BIN.to_owned()];
        if let Some(r) = &self.region {
            out.extend(["--region".to_owned(), escape_spec(r)]);
        }
        if self.ignore_missing {
            out.push("--ignore-missing".to_owned());
        }
        for e in &self.env_from {
            out.extend(["--env-from".to_owned(), escape_spec(e)]);
        }
        if let Some(a) = &self.role_arn {
            out.extend(["--role-arn".to_owned(), escape_spec(a)]);
        }
        if let Some(x) = &self.role_external_id {
            out.extend(["--role-external-id".to_owned(), escape_spec(x)]);
        }
        out.push("--expand-args".to_owned());
        if probe {
            out.push("--probe".to_owned());
        }
        out.push("--".to_owned());
        out.extend(argv);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::ContainerKind;

    fn v(s: &[&str]) -> Option<Vec<String>> {
        Some(s.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn escaping() {
        for (input, spec, image) in [
            ("plain", "plain", "plain"),
            ("$(HOME)", "$$(HOME)", "$$$$(HOME)"),
            ("$$", "$$$$", "$$$$$$$$"),
            ("a$b$", "a$$b$$", "a$$$$b$$$$"),
            ("", "", ""),
        ] {
            assert_eq!(escape_spec(input), spec, "{input:?}");
            assert_eq!(escape_image(input), image, "{input:?}");
        }
    }

    #[test]
    fn resolution_table() {
        type Case = (
            &'static str,
            Option<Vec<String>>, // command
            Option<Vec<String>>, // args
            Option<ImageConfig>,
            Result<Vec<&'static str>, &'static str>,
        );
        let img = |e: Option<Vec<String>>, c: Option<Vec<String>>| {
            Some(ImageConfig {
                entrypoint: e,
                cmd: c,
            })
        };
        let cases: Vec<Case> = vec![
            ("command only", v(&["/app"]), None, None, Ok(vec!["/app"])),
            (
                "command+args",
                v(&["/app"]),
                v(&["-x", "$(A)"]),
                None,
                Ok(vec!["/app", "-x", "$$(A)"]),
            ),
            (
                "command ignores image",
                v(&["/app"]),
                None,
                img(v(&["/e"]), v(&["c"])),
                Ok(vec!["/app"]),
            ),
            (
                "args only",
                None,
                v(&["serve"]),
                img(v(&["/e", "$X"]), v(&["c"])),
                Ok(vec!["/e", "$$$$X", "serve"]),
            ),
            (
                "entrypoint+cmd",
                None,
                None,
                img(v(&["/e"]), v(&["c", "$1"])),
                Ok(vec!["/e", "c", "$$$$1"]),
            ),
            (
                "entrypoint only",
                None,
                None,
                img(v(&["/e"]), None),
                Ok(vec!["/e"]),
            ),
            (
                "cmd only",
                None,
                None,
                img(None, v(&["/c", "x"])),
                Ok(vec!["/c", "x"]),
            ),
            (
                "args, no entrypoint",
                None,
                v(&["/a"]),
                img(None, v(&["c"])),
                Ok(vec!["/a"]),
            ),
            (
                "empty command is unset",
                v(&[]),
                v(&[]),
                img(v(&["/e"]), v(&["c"])),
                Ok(vec!["/e", "c"]),
            ),
            (
                "entrypoint [\"\"] is none",
                None,
                None,
                img(v(&[""]), v(&["/c"])),
                Ok(vec!["/c"]),
            ),
            (
                "neither",
                None,
                None,
                img(None, None),
                Err("neither Entrypoint nor Cmd"),
            ),
            (
                "neither (empty lists)",
                None,
                None,
                img(v(&[]), v(&[])),
                Err("neither Entrypoint nor Cmd"),
            ),
            ("no config", None, None, None, Err("was not read")),
        ];
        let who = Selected {
            kind: ContainerKind::Main,
            index: 0,
            name: "app".into(),
        };
        for (name, command, args, config, want) in cases {
            let c = Container {
                name: "app".into(),
                command,
                args,
                ..Default::default()
            };
            assert_eq!(
                needs_image_config(&c),
                !name.starts_with("command"),
                "{name}"
            );
            let got = original_argv(&who, &c, "img:1", config.as_ref());
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{name}"),
                (Err(e), Err(w)) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(w) && msg.contains("container \"app\""),
                        "{name}: {msg}"
                    );
                }
                (g, w) => panic!("{name}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn flags() {
        let argv = vec!["/app".to_owned()];
        let cases = [
            (
                Flags::default(),
                false,
                vec![SECRETS_INIT_BIN, "--expand-args", "--", "/app"],
            ),
            (
                Flags {
                    region: Some("eu-west-1".into()),
                    ignore_missing: true,
                    ..Flags::default()
                },
                false,
                vec![
                    SECRETS_INIT_BIN,
                    "--region",
                    "eu-west-1",
                    "--ignore-missing",
                    "--expand-args",
                    "--",
                    "/app",
                ],
            ),
            (
                Flags::default(),
                true,
                vec![SECRETS_INIT_BIN, "--expand-args", "--probe", "--", "/app"],
            ),
            (
                Flags {
                    env_from: vec!["awssm:prod/app".into(), "awsssm:/prod/app/".into()],
                    role_arn: Some("arn:aws:iam::123456789012:role/reader".into()),
                    role_external_id: Some("ext$id".into()),
                    ..Flags::default()
                },
                true,
                vec![
                    SECRETS_INIT_BIN,
                    "--env-from",
                    "awssm:prod/app",
                    "--env-from",
                    "awsssm:/prod/app/",
                    "--role-arn",
                    "arn:aws:iam::123456789012:role/reader",
                    "--role-external-id",
                    "ext$$id",
                    "--expand-args",
                    "--probe",
                    "--",
                    "/app",
                ],
            ),
        ];
        for (f, probe, want) in cases {
            assert_eq!(f.wrap(argv.clone(), probe), want);
        }
    }
}
