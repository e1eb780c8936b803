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

output "controller_repository_url" {
  description = "ECR repository URL for the controller image (null when controller_enabled is false)."
  value       = var.controller_enabled ? aws_ecr_repository.this["controller"].repository_url : null
}

output "controller_role_arn" {
  description = "IAM role the controller pods get through EKS Pod Identity (secret and parameter metadata only; null when controller_enabled is false)."
  value       = var.controller_enabled ? aws_iam_role.controller[0].arn : null
}

output "controller_events_queue_url" {
  description = "SQS queue of change events the controller long-polls (chart value controller.sqsQueueUrl; null without controller_events_enabled)."
  value       = local.controller_events ? aws_sqs_queue.controller_events[0].url : null
}

output "controller_events_rule_arns" {
  description = "EventBridge rules feeding the event queue: Secrets Manager changes, Parameter Store changes (empty without controller_events_enabled)."
  value       = local.controller_events ? [aws_cloudwatch_event_rule.controller_secrets[0].arn, aws_cloudwatch_event_rule.controller_parameters[0].arn] : []
}

output "helm_release_status" {
  description = "Status of the Helm release."
  value       = helm_release.webhook.status
}

output "namespace" {
  description = "Namespace the webhook runs in."
  value       = var.namespace
}
