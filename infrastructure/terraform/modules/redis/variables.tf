variable "store" {
  description = "What the environment gives each data store: its name (the prefix of what it creates; Redis's replication group id), private subnets in three zones, its security group (the environment's data_store_security_group, its client port open to the services given its URL) and the environment's KMS key."
  type        = object({ name = string, subnet_ids = list(string), security_group_id = string, kms_key_arn = string })
}

variable "engine_version" {
  type    = string
  default = "7.1"
}

variable "node_type" {
  type    = string
  default = "cache.r7g.large"
}

variable "shards" {
  description = "Node groups (each a primary plus replicas); the outbox has 16 hash-tag shards, so up to 16 spread the writes."
  type        = number
  default     = 3
}

variable "replicas_per_shard" {
  type    = number
  default = 1
}

variable "snapshot_retention_days" {
  type    = number
  default = 7
}

variable "log_retention_days" {
  type    = number
  default = 365
}
