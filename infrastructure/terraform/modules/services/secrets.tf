# The gateway's own secrets. Both are generated here so a new environment starts complete;
# operators rotate them with `aws secretsmanager put-secret-value` (Terraform ignores the value
# after creation), then roll the gateway (docs/DEPLOY.md).

resource "random_password" "admin_token" {
  length  = 48
  special = false
}

# No rotation Lambda: rotation is a put-secret-value plus a gateway roll (docs/DEPLOY.md); the
# token goes away with issue 12.
module "admin_token" {
  source           = "../secret"
  name_prefix      = "${var.name}/admin-token-"
  description      = "ADMIN_TOKEN of the gateway's admin endpoints (issue 12 replaces it with roles)"
  value            = random_password.admin_token.result
  operators_rotate = true
  kms_key_arn      = var.kms_key_arn
}

# The Ed25519 key the gateway signs access tokens with (PKCS#8 PEM); every service verifies
# with its public half from /.well-known/jwks.json.
resource "tls_private_key" "signing_key" {
  algorithm = "ED25519"
}

# No rotation Lambda: a signing key rotates by publishing the next key in the JWKS first
# (issue 12); a blind rotation Lambda would invalidate every session.
module "signing_key" {
  source           = "../secret"
  name_prefix      = "${var.name}/jwt-signing-key-"
  description      = "The gateway's access-token signing key, PKCS#8 PEM (issue 12)"
  value            = tls_private_key.signing_key.private_key_pem
  operators_rotate = true
  kms_key_arn      = var.kms_key_arn
}
