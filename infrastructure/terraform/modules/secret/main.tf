# One Secrets Manager secret and its value, encrypted with the environment's key: what every
# generated credential of this deployment is stored as (the services read it through ECS, the
# NATS nodes at boot).
#
# None has a rotation Lambda: each is rotated by hand, and why stands at each module call.

resource "aws_secretsmanager_secret" "this" {
  name_prefix             = var.name_prefix
  description             = var.description
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
  #checkov:skip=CKV2_AWS_57:Rotated by hand, not by a Lambda; each module call says why (docs/DEPLOY.md, rotating secrets).
}

# Terraform keeps the value in step with `value`...
resource "aws_secretsmanager_secret_version" "this" {
  count         = var.operators_rotate ? 0 : 1
  secret_id     = aws_secretsmanager_secret.this.id
  secret_string = var.value
}

# ...or only writes the first one, when operators rotate it with `aws secretsmanager
# put-secret-value` (a lifecycle setting cannot depend on a variable, hence two resources).
resource "aws_secretsmanager_secret_version" "first" {
  count         = var.operators_rotate ? 1 : 0
  secret_id     = aws_secretsmanager_secret.this.id
  secret_string = var.value
  lifecycle {
    ignore_changes = [secret_string]
  }
}
