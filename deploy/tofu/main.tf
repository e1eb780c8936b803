# secrets-init on EKS: ECR repositories for the images, the webhook's IAM role (ECR read
# only: it reads image configs, never secrets), EKS Pod Identity for it, the Pod Identity
# Agent add-on, an optional example application role, the optional secrets-init-controller
# (its role reads secret and parameter metadata only; optionally an EventBridge -> SQS feed
# of change events), and the Helm release.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_eks_cluster" "this" {
  name = var.cluster_name
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  repositories = merge(
    {
      webhook      = "${var.ecr_repository_prefix}secrets-init-webhook"
      secrets-init = "${var.ecr_repository_prefix}secrets-init"
    },
    var.controller_enabled ? { controller = "${var.ecr_repository_prefix}secrets-init-controller" } : {},
  )
  # The chart's ServiceAccount is named after the release (fullname).
  webhook_service_account = var.release_name
  # The controller's is set explicitly in the chart values below, so that the Pod
  # Identity association and the chart cannot disagree.
  controller_service_account = "${var.release_name}-controller"
  controller_events          = var.controller_enabled && var.controller_events_enabled
  # DescribeSecret is the one metadata call with resource-level permissions. Default: every
  # secret of this account, in every region (a placeholder's ARN may name another region).
  controller_describe_secret_arns = var.controller_describe_secret_arns != null ? var.controller_describe_secret_arns : ["arn:${local.partition}:secretsmanager:*:${local.account_id}:secret:*"]
  all_account_repositories    = ["arn:${local.partition}:ecr:${var.aws_region}:${local.account_id}:repository/*"]
  webhook_ecr_repository_arns = var.webhook_ecr_repository_arns != null ? var.webhook_ecr_repository_arns : local.all_account_repositories
  chart_path = coalesce(var.chart_path, "${path.module}/../helm/secrets-init-webhook")
}

# ---------------------------------------------------------------------------------
# ECR
# ---------------------------------------------------------------------------------

resource "aws_ecr_repository" "this" {
  for_each = local.repositories

  name                 = each.value
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.ecr_kms_key_arn
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  for_each   = aws_ecr_repository.this
  repository = each.value.name

  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the newest ${var.ecr_keep_images} images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = var.ecr_keep_images
      }
      action = { type = "expire" }
    }]
  })
}

# ---------------------------------------------------------------------------------
# EKS Pod Identity
# ---------------------------------------------------------------------------------

resource "aws_eks_addon" "pod_identity_agent" {
  count = var.manage_pod_identity_agent_addon ? 1 : 0

  cluster_name                = var.cluster_name
  addon_name                  = "eks-pod-identity-agent"
  addon_version               = var.pod_identity_agent_addon_version
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "PRESERVE"
}

# Trust: only EKS Pod Identity, only for the given cluster, namespace and ServiceAccount
# (the session tags Pod Identity sets on every AssumeRole).
data "aws_iam_policy_document" "webhook_trust" {
  statement {
    sid     = "EksPodIdentity"
    effect  = "Allow"
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/eks-cluster-name"
      values   = [var.cluster_name]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-namespace"
      values   = [var.namespace]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-service-account"
      values   = [local.webhook_service_account]
    }
  }
}

resource "aws_iam_role" "webhook" {
  name                 = "${var.cluster_name}-secrets-init-webhook"
  description          = "secrets-init-webhook: read image configs from ECR (no Secrets Manager access)"
  assume_role_policy   = data.aws_iam_policy_document.webhook_trust.json
  max_session_duration = 3600
}

# ECR read only. GetAuthorizationToken has no resource-level permissions (AWS requires
# Resource "*"); reading manifests and config blobs is limited to the given repositories.
data "aws_iam_policy_document" "webhook_ecr_read" {
  statement {
    sid       = "EcrAuthToken"
    effect    = "Allow"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  statement {
    sid    = "EcrReadImages"
    effect = "Allow"
    actions = [
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
      "ecr:BatchCheckLayerAvailability",
      "ecr:DescribeImages",
    ]
    resources = local.webhook_ecr_repository_arns
  }
}

resource "aws_iam_role_policy" "webhook_ecr_read" {
  name   = "ecr-read-only"
  role   = aws_iam_role.webhook.id
  policy = data.aws_iam_policy_document.webhook_ecr_read.json
}

resource "aws_eks_pod_identity_association" "webhook" {
  cluster_name    = var.cluster_name
  namespace       = var.namespace
  service_account = local.webhook_service_account
  role_arn        = aws_iam_role.webhook.arn

  depends_on = [aws_eks_addon.pod_identity_agent]
}

# ---------------------------------------------------------------------------------
# Example application role (what every app using awssm: placeholders needs)
# ---------------------------------------------------------------------------------

data "aws_iam_policy_document" "app_trust" {
  count = var.example_app.enabled ? 1 : 0

  statement {
    sid     = "EksPodIdentity"
    effect  = "Allow"
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/eks-cluster-name"
      values   = [var.cluster_name]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-namespace"
      values   = [var.example_app.namespace]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-service-account"
      values   = [var.example_app.service_account]
    }
  }
}

# GetSecretValue on the prefix only. BatchGetSecretValue has no resource-level
# permissions (Resource must be "*"), but it returns only the secrets the caller may
# GetSecretValue on: AWS authorizes every secret in the batch against GetSecretValue, so
# the prefix still bounds what the role can read. No ListSecrets: secrets-init asks for
# explicit ids, never filters.
data "aws_iam_policy_document" "app_secrets" {
  count = var.example_app.enabled ? 1 : 0

  statement {
    sid       = "ReadSecretsUnderPrefix"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = ["arn:${local.partition}:secretsmanager:${var.aws_region}:${local.account_id}:secret:${var.example_app.secret_name_prefix}*"]
  }
  statement {
    sid       = "BatchRead"
    effect    = "Allow"
    actions   = ["secretsmanager:BatchGetSecretValue"]
    resources = ["*"]
  }
  dynamic "statement" {
    for_each = length(var.example_app.kms_key_arns) > 0 ? [1] : []
    content {
      sid       = "DecryptWithSecretsKeys"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = var.example_app.kms_key_arns
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.aws_region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role" "app" {
  count = var.example_app.enabled ? 1 : 0

  name                 = "${var.cluster_name}-${var.example_app.namespace}-${var.example_app.service_account}-secrets"
  description          = "Example app role: read Secrets Manager secrets under ${var.example_app.secret_name_prefix}"
  assume_role_policy   = data.aws_iam_policy_document.app_trust[0].json
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "app_secrets" {
  count = var.example_app.enabled ? 1 : 0

  name   = "secrets-read"
  role   = aws_iam_role.app[0].id
  policy = data.aws_iam_policy_document.app_secrets[0].json
}

resource "aws_eks_pod_identity_association" "app" {
  count = var.example_app.enabled ? 1 : 0

  cluster_name    = var.cluster_name
  namespace       = var.example_app.namespace
  service_account = var.example_app.service_account
  role_arn        = aws_iam_role.app[0].arn

  depends_on = [aws_eks_addon.pod_identity_agent]
}

# ---------------------------------------------------------------------------------
# secrets-init-controller (optional, controller_enabled): restarts the workloads whose
# secrets or parameters changed. Its role gets metadata only (ListSecrets, DescribeSecret,
# DescribeParameters: no GetSecretValue, no GetParameter*, no kms:Decrypt of a secret),
# so no value ever reaches it; with controller_events_enabled also the change-event queue.
# ---------------------------------------------------------------------------------

data "aws_iam_policy_document" "controller_trust" {
  count = var.controller_enabled ? 1 : 0

  statement {
    sid     = "EksPodIdentity"
    effect  = "Allow"
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/eks-cluster-name"
      values   = [var.cluster_name]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-namespace"
      values   = [var.namespace]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-service-account"
      values   = [local.controller_service_account]
    }
  }
}

resource "aws_iam_role" "controller" {
  count = var.controller_enabled ? 1 : 0

  name                 = "${var.cluster_name}-secrets-init-controller"
  description          = "secrets-init-controller: Secrets Manager and Parameter Store metadata (never values), its change-event queue"
  assume_role_policy   = data.aws_iam_policy_document.controller_trust[0].json
  max_session_duration = 3600
}

# ListSecrets and DescribeParameters support no resource-level permissions (AWS requires
# Resource "*"); both return metadata only (names, ARNs, versions, tags), never a value.
data "aws_iam_policy_document" "controller" {
  count = var.controller_enabled ? 1 : 0

  statement {
    sid       = "ListSecretsMetadata"
    effect    = "Allow"
    actions   = ["secretsmanager:ListSecrets"]
    resources = ["*"]
  }
  statement {
    sid       = "DescribeSecretsMetadata"
    effect    = "Allow"
    actions   = ["secretsmanager:DescribeSecret"]
    resources = local.controller_describe_secret_arns
  }
  statement {
    sid       = "DescribeParametersMetadata"
    effect    = "Allow"
    actions   = ["ssm:DescribeParameters"]
    resources = ["*"]
  }
  dynamic "statement" {
    for_each = local.controller_events ? [1] : []
    content {
      sid       = "ChangeEventQueue"
      effect    = "Allow"
      actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
      resources = [aws_sqs_queue.controller_events[0].arn]
    }
  }
  # Only for a queue encrypted with a customer managed key: receiving decrypts the
  # message (an event naming an id), never a secret.
  dynamic "statement" {
    for_each = local.controller_events && var.controller_events_kms_key_arn != null ? [1] : []
    content {
      sid       = "DecryptChangeEvents"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = [var.controller_events_kms_key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["sqs.${var.aws_region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "controller" {
  count = var.controller_enabled ? 1 : 0

  name   = "secrets-metadata-read"
  role   = aws_iam_role.controller[0].id
  policy = data.aws_iam_policy_document.controller[0].json
}

resource "aws_eks_pod_identity_association" "controller" {
  count = var.controller_enabled ? 1 : 0

  cluster_name    = var.cluster_name
  namespace       = var.namespace
  service_account = local.controller_service_account
  role_arn        = aws_iam_role.controller[0].arn

  depends_on = [aws_eks_addon.pod_identity_agent]
}

# Change events (controller_events_enabled): EventBridge rules on the default bus -> an
# SQS queue the controller long-polls. An event only makes the controller re-check the id
# it names, with the same metadata calls, at once instead of at the next poll; polling
# stays on as the safety net (EventBridge delivers AWS service events best effort).
#
# Secrets Manager's API calls reach EventBridge through CloudTrail, so the account needs a
# trail that logs management events in this region; RotationSucceeded is a service event
# (detail-type "AWS Service Event via CloudTrail"). Parameter Store sends its own events.
resource "aws_cloudwatch_event_rule" "controller_secrets" {
  count = local.controller_events ? 1 : 0

  name        = "${var.cluster_name}-secrets-init-secret-changes"
  description = "Secrets Manager value and stage changes, for secrets-init-controller"
  event_pattern = jsonencode({
    source        = ["aws.secretsmanager"]
    "detail-type" = ["AWS API Call via CloudTrail", "AWS Service Event via CloudTrail"]
    detail = {
      eventSource = ["secretsmanager.amazonaws.com"]
      eventName   = ["PutSecretValue", "UpdateSecretVersionStage", "RotationSucceeded"]
    }
  })
}

resource "aws_cloudwatch_event_rule" "controller_parameters" {
  count = local.controller_events ? 1 : 0

  name        = "${var.cluster_name}-secrets-init-parameter-changes"
  description = "Parameter Store changes, for secrets-init-controller"
  event_pattern = jsonencode({
    source        = ["aws.ssm"]
    "detail-type" = ["Parameter Store Change"]
  })
}

resource "aws_sqs_queue" "controller_events" {
  count = local.controller_events ? 1 : 0

  name = "${var.cluster_name}-secrets-init-controller-events"
  # An event older than a few poll intervals says nothing polling has not already seen.
  message_retention_seconds  = 3600
  receive_wait_time_seconds  = 20
  visibility_timeout_seconds = 60
  # Encrypted at rest: SQS-managed keys, or the given customer managed key (whose key
  # policy must let events.amazonaws.com use it: kms:GenerateDataKey, kms:Decrypt).
  sqs_managed_sse_enabled           = var.controller_events_kms_key_arn == null ? true : null
  kms_master_key_id                 = var.controller_events_kms_key_arn
  kms_data_key_reuse_period_seconds = var.controller_events_kms_key_arn == null ? null : 300
}

# Only these two rules may send to the queue.
data "aws_iam_policy_document" "controller_events_queue" {
  count = local.controller_events ? 1 : 0

  statement {
    sid       = "EventBridgeRules"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.controller_events[0].arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values = [
        aws_cloudwatch_event_rule.controller_secrets[0].arn,
        aws_cloudwatch_event_rule.controller_parameters[0].arn,
      ]
    }
  }
}

resource "aws_sqs_queue_policy" "controller_events" {
  count = local.controller_events ? 1 : 0

  queue_url = aws_sqs_queue.controller_events[0].id
  policy    = data.aws_iam_policy_document.controller_events_queue[0].json
}

resource "aws_cloudwatch_event_target" "controller_secrets" {
  count = local.controller_events ? 1 : 0

  rule      = aws_cloudwatch_event_rule.controller_secrets[0].name
  target_id = "secrets-init-controller"
  arn       = aws_sqs_queue.controller_events[0].arn
}

resource "aws_cloudwatch_event_target" "controller_parameters" {
  count = local.controller_events ? 1 : 0

  rule      = aws_cloudwatch_event_rule.controller_parameters[0].name
  target_id = "secrets-init-controller"
  arn       = aws_sqs_queue.controller_events[0].arn
}

# ---------------------------------------------------------------------------------
# Helm release
# ---------------------------------------------------------------------------------

locals {
  chart_values = {
    # Resource names (and so the ServiceAccount the Pod Identity association names)
    # are exactly the release name.
    fullnameOverride = var.release_name
    image = {
      repository = aws_ecr_repository.this["webhook"].repository_url
      tag        = var.image_tag
      digest     = var.webhook_image_digest == null ? "" : var.webhook_image_digest
    }
    secretsInit = {
      image = {
        repository = aws_ecr_repository.this["secrets-init"].repository_url
        tag        = var.image_tag
        digest     = var.secrets_init_image_digest == null ? "" : var.secrets_init_image_digest
      }
    }
    aws = {
      region = var.aws_region
    }
    mutationMode = var.mutation_mode
    controller = {
      enabled = var.controller_enabled
      image = {
        # Disabled: the chart's default (the value is not used then).
        repository = var.controller_enabled ? aws_ecr_repository.this["controller"].repository_url : "ghcr.io/secrets-init/secrets-init-controller"
        tag        = var.image_tag
        digest     = var.controller_image_digest == null ? "" : var.controller_image_digest
      }
      serviceAccount = {
        name = local.controller_service_account
      }
      sqsQueueUrl = local.controller_events ? aws_sqs_queue.controller_events[0].url : ""
    }
  }
}

resource "helm_release" "webhook" {
  name             = var.release_name
  namespace        = var.namespace
  create_namespace = true
  chart            = local.chart_path
  atomic           = true
  wait             = true
  timeout          = 600

  values = [
    yamlencode(local.chart_values),
    yamlencode(var.helm_values),
  ]

  # Credentials must exist before the first pod starts, or its first ECR lookups (and the
  # controller's first poll) fail.
  depends_on = [
    aws_eks_pod_identity_association.webhook,
    aws_iam_role_policy.webhook_ecr_read,
    aws_eks_pod_identity_association.controller,
    aws_iam_role_policy.controller,
    aws_sqs_queue_policy.controller_events,
  ]
}
