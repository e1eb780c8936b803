output "webhook_repository_url" {
  description = "ECR repository URL for the webhook image (push <url>:<version>)."
  value       = aws_ecr_repository.this["webhook"].repository_url
}

output "secrets_init_repository_url" {
  description = "ECR repository URL for the secrets-init image."
  value       = aws_ecr_repository.this["secrets-init"].repository_url
}

output "webhook_role_arn" {
  description = "IAM role the webhook pods get through EKS Pod Identity (ECR read only)."
  value       = aws_iam_role.webhook.arn
}

output "webhook_pod_identity_association_id" {
  description = "Pod Identity association of the webhook's ServiceAccount."
  value       = aws_eks_pod_identity_association.webhook.association_id
}

output "example_app_role_arn" {
  description = "IAM role of the example application (null when example_app.enabled is false)."
  value       = var.example_app.enabled ? aws_iam_role.app[0].arn : null
}

output "helm_release_status" {
  description = "Status of the Helm release."
  value       = helm_release.webhook.status
}

output "namespace" {
  description = "Namespace the webhook runs in."
  value       = var.namespace
}
