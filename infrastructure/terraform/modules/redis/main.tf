# ElastiCache for Redis in cluster mode: `shards` node groups, each a primary with
# `replicas_per_shard` replicas in other zones, automatic failover, TLS in transit, an AUTH
# token, encryption at rest. The services reach it through one secret, the whole REDIS_URL.
#
# The gateway keeps every key of one item under one hash tag (`{sN}`), so its scripts run on one
# shard in cluster mode; the client side of cluster mode is issue 14 (see docs/DEPLOY.md).

resource "aws_elasticache_subnet_group" "this" {
  name       = var.store.name
  subnet_ids = var.store.subnet_ids
}

# Printable without the characters ElastiCache refuses (@, ", /) and URL-safe, because it is
# placed inside REDIS_URL.
resource "random_password" "auth_token" {
  length  = 64
  special = false
}

resource "aws_cloudwatch_log_group" "slow_log" {
  name              = "/${var.store.name}/redis/slow-log"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.store.kms_key_arn
}

# The default parameter group (default.redis7.cluster.on) has maxmemory-policy volatile-lru: at
# maxmemory ElastiCache would silently evict keys with a TTL, the idempotency records first, and
# a client's retry of an accepted bid would be decided again (allkeys-* would take items and
# undelivered outbox events too). noeviction makes a full Redis refuse writes instead (OOM: a
# fast 503 the client retries) and lose nothing. The gateway reads the policy at start and warns
# about any other (docs/ARCHITECTURE.md, "Redis eviction"). The family is in the name, so an
# engine upgrade creates the new group before the old one goes.
locals {
  engine_major           = split(".", var.engine_version)[0]
  parameter_group_family = local.engine_major == "6" ? "redis6.x" : "redis${local.engine_major}"
}

resource "aws_elasticache_parameter_group" "this" {
  name        = "${var.store.name}-${replace(local.parameter_group_family, ".", "-")}"
  family      = local.parameter_group_family
  description = "Auction state (${var.store.name}): cluster mode, never evict a key"

  parameter {
    name  = "cluster-enabled"
    value = "yes"
  }

  parameter {
    name  = "maxmemory-policy"
    value = "noeviction"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_elasticache_replication_group" "this" {
  replication_group_id       = var.store.name
  description                = "Auction state and outbox (${var.store.name})"
  engine                     = "redis"
  engine_version             = var.engine_version
  node_type                  = var.node_type
  port                       = 6379
  parameter_group_name       = aws_elasticache_parameter_group.this.name
  cluster_mode               = "enabled"
  num_node_groups            = var.shards
  replicas_per_node_group    = var.replicas_per_shard
  automatic_failover_enabled = true
  multi_az_enabled           = true
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [var.store.security_group_id]
  transit_encryption_enabled = true
  transit_encryption_mode    = "required"
  auth_token                 = random_password.auth_token.result
  at_rest_encryption_enabled = true
  kms_key_id                 = var.store.kms_key_arn
  snapshot_retention_limit   = var.snapshot_retention_days
  snapshot_window            = "03:00-04:00"
  maintenance_window         = "sun:04:30-sun:05:30"
  auto_minor_version_upgrade = true
  apply_immediately          = false

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.slow_log.name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }
}

# No rotation Lambda: the token lives in ElastiCache and in this URL together; rotating it is
# the documented two-step AUTH rotation (docs/DEPLOY.md).
module "redis_url" {
  source      = "../secret"
  name_prefix = "${var.store.name}/redis-url-"
  description = "REDIS_URL of the gateway and the broadcast service (rediss://, AUTH token)"
  value       = "rediss://:${random_password.auth_token.result}@${aws_elasticache_replication_group.this.configuration_endpoint_address}:6379"
  kms_key_arn = var.store.kms_key_arn
}
