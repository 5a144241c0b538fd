variable "name" {
  description = "Environment name; prefixes every resource (lower case, digits, dashes; at most 20 characters)."
  type        = string
  default     = "auction-example"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name))
    error_message = "name: lower case letters, digits and dashes, 2 to 20 characters, starting with a letter."
  }
}

variable "region" {
  type    = string
  default = "eu-west-1"
}

variable "vpc_cidr_block" {
  type    = string
  default = "10.40.0.0/16"
}

variable "single_nat_gateway" {
  description = "true for the small setting (one NAT gateway instead of three)."
  type        = bool
  default     = false
}

variable "public_host_name" {
  description = "The public host name (DNS name pointed at the load balancer) the certificate is for."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate (same region) for the public host name."
  type        = string
}

variable "image_tag" {
  description = "Image tag to run in all three services (the git commit they were built from)."
  type        = string
}

variable "redis_node_type" {
  type    = string
  default = "cache.r7g.large"
}

variable "redis_shards" {
  type    = number
  default = 3
}

variable "redis_replicas_per_shard" {
  type    = number
  default = 1
}

variable "postgres_instance_class" {
  type    = string
  default = "db.r7g.large"
}

variable "nats_instance_type" {
  type    = string
  default = "m7g.large"
}

variable "nats_volume_size_gb" {
  type    = number
  default = 100
}

variable "gateway" {
  type    = object({ cpu = number, memory = number, min_count = number, max_count = number })
  default = { cpu = 1024, memory = 2048, min_count = 2, max_count = 12 }
}

variable "broadcast" {
  type    = object({ cpu = number, memory = number, min_count = number, max_count = number })
  default = { cpu = 1024, memory = 2048, min_count = 2, max_count = 20 }
}

variable "worker" {
  type    = object({ cpu = number, memory = number, min_count = number, max_count = number })
  default = { cpu = 512, memory = 1024, min_count = 1, max_count = 4 }
}
