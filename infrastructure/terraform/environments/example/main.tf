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

# The data stores' security groups, each store's client port open to exactly the services given
# its URL (modules/services/settings.tf); NATS also routes between its nodes
# (modules/nats/user_data.sh.tftpl) and pulls its image, reads its secret and ships its logs over
# HTTPS through the NAT gateway.
locals {
  data_stores = {
    redis    = { port = 6379, description = "Redis: reachable from the services only", client_rule = "Redis from a service" }
    postgres = { port = 5432, description = "PostgreSQL: reachable from the services only", client_rule = "PostgreSQL from a service" }
    nats     = { port = 4222, description = "NATS: clients from the services, routes between the nodes", client_rule = "NATS clients (the services)" }
  }
  data_store_own_rules = {
    nats = {
      routes-in  = { direction = "ingress", port = 6222, members = true, description = "Cluster routes between the NATS nodes" }
      routes-out = { direction = "egress", port = 6222, members = true, description = "Cluster routes between the NATS nodes" }
      https      = { direction = "egress", port = 443, cidr_ipv4 = "0.0.0.0/0", description = "Image pulls, Secrets Manager, CloudWatch Logs" }
    }
  }
}

module "data_store_security_group" {
  for_each    = local.data_stores
  source      = "../../modules/security_group"
  name_prefix = "${var.name}-${each.key}-"
  description = each.value.description
  vpc_id      = module.network.vpc_id
  rules = merge(
    { for service, group in module.services.data_store_clients[each.key] : service => { direction = "ingress", port = each.value.port, peer_group_id = group, description = each.value.client_rule } },
    lookup(local.data_store_own_rules, each.key, {}),
  )
}

# What every data store module takes from the environment (modules/redis, modules/postgres).
locals {
  data_store_inputs = {
    for store in keys(local.data_stores) : store => {
      name              = var.name
      subnet_ids        = module.network.private_subnet_ids
      security_group_id = module.data_store_security_group[store].id
      kms_key_arn       = aws_kms_key.this.arn
    }
  }
}

module "redis" {
  source             = "../../modules/redis"
  store              = local.data_store_inputs["redis"]
  node_type          = var.redis_node_type
  shards             = var.redis_shards
  replicas_per_shard = var.redis_replicas_per_shard
}

module "postgres" {
  source         = "../../modules/postgres"
  store          = local.data_store_inputs["postgres"]
  instance_class = var.postgres_instance_class
}

module "nats" {
  source            = "../../modules/nats"
  name              = var.name
  vpc_id            = module.network.vpc_id
  subnets           = module.network.private_subnets
  security_group_id = module.data_store_security_group["nats"].id
  dns_zone_name     = "${var.name}.internal"
  instance_type     = var.nats_instance_type
  volume_size_gb    = var.nats_volume_size_gb
  kms_key_arn       = aws_kms_key.this.arn
}

module "services" {
  source                  = "../../modules/services"
  name                    = var.name
  vpc_id                  = module.network.vpc_id
  vpc_cidr_block          = module.network.vpc_cidr_block
  private_subnet_ids      = module.network.private_subnet_ids
  load_balancer           = module.alb.for_services
  repositories            = module.ecr.repositories
  image_tag               = var.image_tag
  public_host_name        = var.public_host_name
  redis_url_secret_arn    = module.redis.redis_url_secret_arn
  nats_url_secret_arn     = module.nats.nats_url_secret_arn
  database_url_secret_arn = module.postgres.database_url_secret_arn
  kms_key_arn             = aws_kms_key.this.arn
  gateway                 = var.gateway
  broadcast               = var.broadcast
  worker                  = var.worker
}
