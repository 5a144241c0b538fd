variable "name" {
  description = "Replication group id and name prefix."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets in three zones."
  type        = list(string)
}

variable "security_group_id" {
  description = "The store's security group (the environment's data_store_security_group): its client port open to the services given its URL."
  type        = string
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

variable "kms_key_arn" {
  type = string
}

variable "log_retention_days" {
  type    = number
  default = 365
}
