# secrets-init on EKS: ECR repositories for the two images, the webhook's IAM role (ECR
# read only: it reads image configs, never secrets), EKS Pod Identity for it, the Pod
# Identity Agent add-on, an optional example application role, and the Helm release.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_eks_cluster" "this" {
  name = var.cluster_name
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  repositories = {
    webhook      = "${var.ecr_repository_prefix}secrets-init-webhook"
    secrets-init = "${var.ecr_repository_prefix}secrets-init"
  }
  # The chart's ServiceAccount is named after the release (fullname).
  webhook_service_account = var.release_name
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

  # Credentials must exist before the first pod starts, or its first ECR lookups fail.
  depends_on = [
    aws_eks_pod_identity_association.webhook,
    aws_iam_role_policy.webhook_ecr_read,
  ]
}
