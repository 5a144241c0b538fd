# One environment of the auction platform: every module wired together. Copy this directory
# per environment (staging, production) and change terraform.tfvars.

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

# One customer-managed key for the environment's secrets, logs, images, volumes and databases.
resource "aws_kms_key" "this" {
  description             = "auction ${var.name}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:A key policy's "*" resource means this key only; the account root statement is AWS's default key policy.
  #checkov:skip=CKV_AWS_356:A key policy's "*" resource means this key only.
  #checkov:skip=CKV_AWS_109:Administering the key through the account's IAM is AWS's default key policy; without it the key could become unmanageable.
  # The account administers the key through IAM (the AWS default for customer keys).
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  # CloudWatch Logs encrypts this environment's log groups with it.
  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${data.aws_region.current.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:aws:logs:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:log-group:/${var.name}/*"]
    }
  }
}

module "network" {
  source             = "../../modules/network"
  name               = var.name
  cidr_block         = var.vpc_cidr_block
  single_nat_gateway = var.single_nat_gateway
  kms_key_arn        = aws_kms_key.this.arn
}

module "ecr" {
  source      = "../../modules/ecr"
  name        = var.name
  kms_key_arn = aws_kms_key.this.arn
}

module "alb" {
  source            = "../../modules/alb"
  name              = var.name
  vpc_id            = module.network.vpc_id
  vpc_cidr_block    = module.network.vpc_cidr_block
  public_subnet_ids = module.network.public_subnet_ids
  certificate_arn   = var.certificate_arn
}

# Each data store admits exactly the services given its URL (modules/services/settings.tf).
module "redis" {
  source             = "../../modules/redis"
  name               = var.name
  vpc_id             = module.network.vpc_id
  subnet_ids         = module.network.private_subnet_ids
  node_type          = var.redis_node_type
  shards             = var.redis_shards
  replicas_per_shard = var.redis_replicas_per_shard
  kms_key_arn        = aws_kms_key.this.arn
  clients            = module.services.data_store_clients["redis"]
}

module "postgres" {
  source         = "../../modules/postgres"
  name           = var.name
  vpc_id         = module.network.vpc_id
  subnet_ids     = module.network.private_subnet_ids
  instance_class = var.postgres_instance_class
  kms_key_arn    = aws_kms_key.this.arn
  clients        = module.services.data_store_clients["postgres"]
}

module "nats" {
  source         = "../../modules/nats"
  name           = var.name
  vpc_id         = module.network.vpc_id
  subnets        = module.network.private_subnets
  dns_zone_name  = "${var.name}.internal"
  instance_type  = var.nats_instance_type
  volume_size_gb = var.nats_volume_size_gb
  kms_key_arn    = aws_kms_key.this.arn
  clients        = module.services.data_store_clients["nats"]
}

module "services" {
  source                          = "../../modules/services"
  name                            = var.name
  vpc_id                          = module.network.vpc_id
  vpc_cidr_block                  = module.network.vpc_cidr_block
  private_subnet_ids              = module.network.private_subnet_ids
  alb_security_group_id           = module.alb.security_group_id
  target_group_arns               = module.alb.target_group_arns
  alb_arn_suffix                  = module.alb.arn_suffix
  gateway_target_group_arn_suffix = module.alb.gateway_target_group_arn_suffix
  repository_urls                 = module.ecr.repository_urls
  repository_arns                 = module.ecr.repository_arns
  image_tag                       = var.image_tag
  public_host_name                = var.public_host_name
  redis_url_secret_arn            = module.redis.redis_url_secret_arn
  nats_url_secret_arn             = module.nats.nats_url_secret_arn
  database_url_secret_arn         = module.postgres.database_url_secret_arn
  kms_key_arn                     = aws_kms_key.this.arn
  gateway                         = var.gateway
  broadcast                       = var.broadcast
  worker                          = var.worker
}
