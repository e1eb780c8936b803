# checkov for deploy/tofu with every optional part on (scripts/test-deploy): the example
# application role, secrets-init-controller and its EventBridge -> SQS feed with a customer
# managed key. With the defaults those resources have count = 0, and checkov skips most.
aws_region                    = "us-east-1"
cluster_name                  = "prod"
controller_enabled            = true
controller_events_enabled     = true
controller_events_kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
example_app = {
  enabled            = true
  namespace          = "myapp"
  service_account    = "myapp"
  secret_name_prefix = "prod/myapp/"
}
