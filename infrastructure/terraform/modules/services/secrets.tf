# The gateway's own secrets. Both are generated here so a new environment starts complete;
# operators rotate them with `aws secretsmanager put-secret-value` (Terraform ignores the value
# after creation), then roll the gateway (docs/DEPLOY.md).

resource "random_password" "admin_token" {
  length  = 48
  special = false
}

resource "aws_secretsmanager_secret" "admin_token" {
  name_prefix             = "${var.name}/admin-token-"
  description             = "ADMIN_TOKEN of the gateway's admin endpoints (issue 12 replaces it with roles)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
  #checkov:skip=CKV2_AWS_57:Rotation is a put-secret-value plus a gateway roll (docs/DEPLOY.md); the token goes away with issue 12.
}

resource "aws_secretsmanager_secret_version" "admin_token" {
  secret_id     = aws_secretsmanager_secret.admin_token.id
  secret_string = random_password.admin_token.result
  lifecycle {
    ignore_changes = [secret_string]
  }
}

# The Ed25519 key the gateway signs access tokens with (PKCS#8 PEM); every service verifies
# with its public half from /.well-known/jwks.json.
resource "tls_private_key" "signing_key" {
  algorithm = "ED25519"
}

resource "aws_secretsmanager_secret" "signing_key" {
  name_prefix             = "${var.name}/jwt-signing-key-"
  description             = "The gateway's access-token signing key, PKCS#8 PEM (issue 12)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
  #checkov:skip=CKV2_AWS_57:A signing key rotates by publishing the next key in the JWKS first (issue 12); a blind rotation Lambda would invalidate every session.
}

resource "aws_secretsmanager_secret_version" "signing_key" {
  secret_id     = aws_secretsmanager_secret.signing_key.id
  secret_string = tls_private_key.signing_key.private_key_pem
  lifecycle {
    ignore_changes = [secret_string]
  }
}
