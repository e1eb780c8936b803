variable "aws_region" {
  description = "AWS region of the EKS cluster and the ECR repositories (e.g. us-east-1)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.aws_region))
    error_message = "aws_region must look like us-east-1."
  }
}

variable "aws_account_id" {
  description = "Optional guard: the AWS account (12 digits) this configuration may change. Null: whatever account the credentials belong to."
  type        = string
  default     = null

  validation {
    condition     = var.aws_account_id == null || can(regex("^[0-9]{12}$", var.aws_account_id))
    error_message = "aws_account_id must be 12 digits."
  }
}

variable "cluster_name" {
  description = "Name of the existing EKS cluster (Kubernetes >= 1.28; cert-manager installed)."
  type        = string
}

variable "namespace" {
  description = "Namespace of the webhook (created by the Helm release)."
  type        = string
  default     = "secrets-init-system"
}

variable "release_name" {
  description = "Helm release name; also the webhook's Deployment, Service and ServiceAccount name."
  type        = string
  default     = "secrets-init-webhook"
}

variable "chart_path" {
  description = "Path to the Helm chart (default: the chart in this repository)."
  type        = string
  default     = null
}

variable "ecr_repository_prefix" {
  description = "Prefix of the ECR repository names, e.g. \"platform/\" gives platform/secrets-init-webhook, platform/secrets-init (and platform/secrets-init-controller with controller_enabled). Empty: no prefix."
  type        = string
  default     = ""
}

variable "ecr_kms_key_arn" {
  description = "KMS key for ECR encryption at rest. Null: the AWS managed key aws/ecr."
  type        = string
  default     = null
}

variable "ecr_keep_images" {
  description = "How many images each ECR repository keeps (older ones are expired)."
  type        = number
  default     = 50

  validation {
    condition     = var.ecr_keep_images >= 5
    error_message = "Keep at least 5 images so a rollback target survives."
  }
}

variable "webhook_image_digest" {
  description = "Digest (sha256:...) of the pushed webhook image. Null: use image_tag (not recommended for production)."
  type        = string
  default     = null

  validation {
    condition     = var.webhook_image_digest == null || can(regex("^sha256:[a-f0-9]{64}$", var.webhook_image_digest))
    error_message = "webhook_image_digest must be sha256:<64 hex digits>."
  }
}

variable "secrets_init_image_digest" {
  description = "Digest (sha256:...) of the pushed secrets-init image. Null: use image_tag."
  type        = string
  default     = null

  validation {
    condition     = var.secrets_init_image_digest == null || can(regex("^sha256:[a-f0-9]{64}$", var.secrets_init_image_digest))
    error_message = "secrets_init_image_digest must be sha256:<64 hex digits>."
  }
}

variable "image_tag" {
  description = "Image tag used when no digest is given (default: the chart's appVersion)."
  type        = string
  default     = ""
}

variable "mutation_mode" {
  description = "Cluster default mutation mode: init-container, shared-volume (needs ImageVolume, Kubernetes 1.35+) or image-swap."
  type        = string
  default     = "init-container"

  validation {
    condition     = contains(["init-container", "shared-volume", "image-swap"], var.mutation_mode)
    error_message = "mutation_mode must be init-container, shared-volume or image-swap."
  }
}

variable "webhook_ecr_repository_arns" {
  description = "ECR repositories whose image configs the webhook may read (the application images). Default: every repository in this account and region."
  type        = list(string)
  default     = null
}

variable "manage_pod_identity_agent_addon" {
  description = "Install the eks-pod-identity-agent add-on. Set false when the cluster already manages it elsewhere."
  type        = bool
  default     = true
}

variable "pod_identity_agent_addon_version" {
  description = "eks-pod-identity-agent add-on version. Null: the default version for the cluster."
  type        = string
  default     = null
}

variable "helm_values" {
  description = "Extra chart values (merged over the ones this module sets), as a map (e.g. { metrics = { serviceMonitor = { enabled = true } } })."
  type        = any
  default     = {}
}

variable "example_app" {
  description = <<-EOT
    Optional example application role: an IAM role that pods of ServiceAccount
    <service_account> in <namespace> get through EKS Pod Identity, allowed to read the
    secrets whose names start with <secret_name_prefix>. kms_key_arns: customer managed
    keys those secrets are encrypted with (empty: aws/secretsmanager).
  EOT
  type = object({
    enabled            = bool
    namespace          = string
    service_account    = string
    secret_name_prefix = string
    kms_key_arns       = optional(list(string), [])
  })
  default = {
    enabled            = false
    namespace          = "myapp"
    service_account    = "myapp"
    secret_name_prefix = "prod/myapp/"
    kms_key_arns       = []
  }

  validation {
    condition     = !var.example_app.enabled || length(trimspace(var.example_app.secret_name_prefix)) > 0
    error_message = "example_app.secret_name_prefix must not be empty: it scopes the role to a set of secrets."
  }
}

variable "controller_enabled" {
  description = "Deploy secrets-init-controller (chart value controller.enabled): restarts workloads annotated secretsinit.io/reload when their secrets or parameters change. Creates its ECR repository, IAM role (metadata only: ListSecrets, DescribeSecret, DescribeParameters) and Pod Identity association."
  type        = bool
  default     = false
}

variable "controller_image_digest" {
  description = "Digest (sha256:...) of the pushed controller image. Null: use image_tag."
  type        = string
  default     = null

  validation {
    condition     = var.controller_image_digest == null || can(regex("^sha256:[a-f0-9]{64}$", var.controller_image_digest))
    error_message = "controller_image_digest must be sha256:<64 hex digits>."
  }
}

variable "controller_describe_secret_arns" {
  description = "Secrets whose metadata the controller may DescribeSecret (ARN patterns). Null: every secret of this account, in any region. A denied id is logged and left unwatched."
  type        = list(string)
  default     = null

  validation {
    # A conditional, not ||: only the branch it takes is evaluated (|| evaluates both).
    condition     = var.controller_describe_secret_arns == null ? true : alltrue([for a in var.controller_describe_secret_arns : can(regex("^arn:[a-z-]+:secretsmanager:[a-z0-9*-]*:[0-9]{12}:secret:.+$", a))])
    error_message = "controller_describe_secret_arns must be Secrets Manager secret ARNs (patterns allowed): arn:aws:secretsmanager:<region>:<account>:secret:<name>."
  }
}

variable "controller_events_enabled" {
  description = "Feed the controller change events: EventBridge rules (Secrets Manager PutSecretValue, UpdateSecretVersionStage, RotationSucceeded through CloudTrail, which needs a trail logging management events; Parameter Store Change) into an encrypted SQS queue it long-polls (chart value controller.sqsQueueUrl). Polling stays on either way."
  type        = bool
  default     = false

  validation {
    condition     = !var.controller_events_enabled || var.controller_enabled
    error_message = "controller_events_enabled needs controller_enabled."
  }
}

variable "controller_events_kms_key_arn" {
  description = "Customer managed KMS key for the event queue (its key policy must allow events.amazonaws.com kms:GenerateDataKey and kms:Decrypt; the controller's role gets kms:Decrypt through SQS). Null: SQS-managed encryption (SSE-SQS)."
  type        = string
  default     = null

  validation {
    condition     = var.controller_events_kms_key_arn == null || can(regex("^arn:[a-z-]+:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.controller_events_kms_key_arn))
    error_message = "controller_events_kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)."
  }
}

variable "tags" {
  description = "Tags for every AWS resource."
  type        = map(string)
  default = {
    "app.kubernetes.io/part-of" = "secrets-init"
  }
}
