# The gateway's own secret, generated here so a new environment starts complete; operators
# rotate it with `aws secretsmanager put-secret-value` (Terraform ignores the value after
# creation), then roll the gateway (docs/DEPLOY.md). Admins are accounts with the `admin` role
# (`api-gateway promote-admin`), so there is no shared admin secret.

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
