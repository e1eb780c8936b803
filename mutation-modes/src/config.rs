//! The cluster-wide settings of the mutation. The webhook's flags of the same names fill them
//! (with the `clap` feature this struct is that flag group, so a setting's name, default,
//! type and check live here once), the golden tests' `config.yaml` overrides them by the same
//! names, and `--print-config` prints them so.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::error::MutationError;
use crate::modes::ModeKind;
use crate::modes::image_swap::SwapTemplate;
use crate::modes::init_container::RunAsUser;

/// The secrets-init image released with this version.
pub const DEFAULT_SECRETS_INIT_IMAGE: &str = concat!(
    "ghcr.io/secrets-init/secrets-init:",
    env!("CARGO_PKG_VERSION")
);
/// CPU of the injected init container (requests = limits). It copies one file of a few MiB.
pub const DEFAULT_INIT_CONTAINER_CPU: &str = "50m";
/// Memory of the injected init container (requests = limits).
pub const DEFAULT_INIT_CONTAINER_MEMORY: &str = "64Mi";

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct MutationConfig {
    /// Cluster default mutation mode: init-container, shared-volume, image-swap; a pod's
    /// secretsinit.io/mutation-mode annotation overrides it.
    #[cfg_attr(feature = "clap", arg(
        long = "mutation-mode",
        value_name = "MODE",
        default_value_t = ModeKind::default(),
        value_parser = |s: &str| s.trim().parse::<ModeKind>().map_err(|e| e.to_string()),
    ))]
    #[serde(rename = "mutation-mode")]
    pub default_mode: ModeKind,

    /// Image that holds the secrets-init binary at /secrets-init.
    #[cfg_attr(feature = "clap", arg(
        long,
        value_name = "REF",
        default_value = DEFAULT_SECRETS_INIT_IMAGE,
        value_parser = |s: &str| flag_error(crate::options::image_reference("--secrets-init-image", s.trim())),
    ))]
    pub secrets_init_image: String,

    /// Region handed to secrets-init when the pod sets none [default: none; the AWS SDK's
    /// chain decides in the pod].
    #[cfg_attr(feature = "clap", arg(
        long = "aws-region",
        value_name = "REGION",
        value_parser = |s: &str| flag_error(crate::options::region("--aws-region", s.trim())),
    ))]
    #[serde(rename = "aws-region")]
    pub default_region: Option<String>,

    /// Name of the image-swap variant; placeholders {registry}, {repository}, {tag}.
    #[cfg_attr(feature = "clap", arg(
        long,
        value_name = "TEMPLATE",
        default_value = crate::modes::image_swap::DEFAULT_TEMPLATE,
        value_parser = |s: &str| flag_error(s.trim().parse::<SwapTemplate>()),
    ))]
    pub image_swap_template: SwapTemplate,

    /// CPU of the injected init container (requests = limits), a Kubernetes quantity.
    #[cfg_attr(feature = "clap", arg(
        long,
        value_name = "QUANTITY",
        default_value = DEFAULT_INIT_CONTAINER_CPU,
        value_parser = |s: &str| positive_quantity("--init-container-cpu", s),
    ))]
    pub init_container_cpu: Quantity,

    /// Memory of the injected init container (requests = limits), a Kubernetes quantity.
    #[cfg_attr(feature = "clap", arg(
        long,
        value_name = "QUANTITY",
        default_value = DEFAULT_INIT_CONTAINER_MEMORY,
        value_parser = |s: &str| positive_quantity("--init-container-memory", s),
    ))]
    pub init_container_memory: Quantity,

    /// runAsUser/runAsGroup of the injected init container, or `none` to leave them out
    /// (OpenShift's restricted SCC assigns UIDs per namespace); runAsNonRoot stays.
    #[cfg_attr(feature = "clap", arg(
        long,
        value_name = "UID|none",
        default_value = crate::modes::init_container::DEFAULT_RUN_AS_USER,
        value_parser = |s: &str| s.parse::<RunAsUser>(),
    ))]
    pub run_as_user: RunAsUser,
}

impl Default for MutationConfig {
    fn default() -> Self {
        Self {
            default_mode: ModeKind::default(),
            secrets_init_image: DEFAULT_SECRETS_INIT_IMAGE.to_owned(),
            default_region: None,
            image_swap_template: SwapTemplate::default(),
            init_container_cpu: Quantity(DEFAULT_INIT_CONTAINER_CPU.to_owned()),
            init_container_memory: Quantity(DEFAULT_INIT_CONTAINER_MEMORY.to_owned()),
            run_as_user: RunAsUser::default(),
        }
    }
}

impl MutationConfig {
    /// Checks what the types cannot, once, at webhook start-up, so that a bad setting is
    /// reported there rather than as a denial of every pod. (The flags check each value as
    /// they parse it; this covers a configuration built in code.)
    pub fn validate(&self) -> Result<(), MutationError> {
        crate::options::image_reference(
            "the secrets-init image (--secrets-init-image)",
            &self.secrets_init_image,
        )?;
        if let Some(r) = &self.default_region {
            crate::options::region("--aws-region", r)?;
        }
        for (flag, q) in [
            ("--init-container-cpu", &self.init_container_cpu),
            ("--init-container-memory", &self.init_container_memory),
        ] {
            positive_quantity(flag, &q.0).map_err(|reason| MutationError::InvalidSetting {
                setting: flag.to_owned(),
                reason,
            })?;
        }
        Ok(())
    }
}

#[cfg(feature = "clap")]
/// A flag's error: the denial-style message without its `secrets-init: ` prefix (clap
/// already says which flag and value).
fn flag_error<T>(r: Result<T, MutationError>) -> Result<T, String> {
    r.map_err(|e| {
        let m = e.to_string();
        m.strip_prefix("secrets-init: ").unwrap_or(&m).to_owned()
    })
}

/// A Kubernetes quantity (`50m`, `0.5`, `64Mi`, `1e3`) greater than zero, as the API server
/// parses them: a decimal number, then a binary (`Ki`…`Ei`), decimal (`m`, `k`, `M`…`E`) or
/// exponent (`e3`, `E-2`) suffix.
pub fn positive_quantity(flag: &str, s: &str) -> Result<Quantity, String> {
    let s = s.trim();
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let number_ok = !number.is_empty()
        && number != "."
        && number.matches('.').count() <= 1
        && number.bytes().any(|b| b.is_ascii_digit() && b != b'0');
    let suffix_ok = match suffix {
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => true,
        e => e
            .strip_prefix(['e', 'E'])
            .map(|exp| exp.strip_prefix(['+', '-']).unwrap_or(exp))
            .is_some_and(|exp| !exp.is_empty() && exp.bytes().all(|b| b.is_ascii_digit())),
    };
    if number_ok && suffix_ok {
        Ok(Quantity(s.to_owned()))
    } else {
        Err(format!(
            "{flag}: `{s}` is not a positive Kubernetes quantity; write e.g. `50m` or `0.1` \
             (CPU), `64Mi` or `128M` (memory)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in [
            "50m", "0.5", "1", "64Mi", "128M", "1e3", "2E-1", "1.5Gi", ".5", "5.",
        ] {
            assert!(positive_quantity("--x", ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "0", "0m", "-1", "64MB", "1.2.3", "m", "1e", "ten", "1 Mi", ".",
        ] {
            let e = positive_quantity("--x", bad).unwrap_err();
            assert!(e.contains("--x") && e.contains("quantity"), "{bad}: {e}");
        }
    }

    #[test]
    fn validation() {
        assert!(MutationConfig::default().validate().is_ok());
        let bad = MutationConfig {
            default_region: Some("US EAST".into()),
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("--aws-region")
        );
        let bad = MutationConfig {
            init_container_memory: Quantity("lots".into()),
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("--init-container-memory")
        );
    }

    #[test]
    fn serde_names_are_the_flag_names() {
        let v = serde_json::to_value(MutationConfig::default()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        // (serde_json's map is sorted)
        assert_eq!(
            keys,
            [
                "aws-region",
                "image-swap-template",
                "init-container-cpu",
                "init-container-memory",
                "mutation-mode",
                "run-as-user",
                "secrets-init-image",
            ]
        );
    }
}
