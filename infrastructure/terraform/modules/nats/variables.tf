variable "name" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "subnets" {
  description = "Three private subnets, one per zone: a node in each, at a fixed address of its range."
  type        = list(object({ id = string, cidr_block = string, availability_zone = string }))
  validation {
    condition     = length(var.subnets) == 3
    error_message = "subnets: three, one per zone (the cluster and its R3 streams have three nodes)."
  }
}

variable "security_group_id" {
  description = "The store's security group (the environment's data_store_security_group): its client port open to the services given its URL."
  type        = string
}

variable "dns_zone_name" {
  description = "Private DNS zone created for the VPC; NATS_URL names nats.<zone>."
  type        = string
}

variable "instance_type" {
  type    = string
  default = "m7g.large"
}

variable "volume_size_gb" {
  description = "Each node's JetStream volume; max_file_store is 80 % of it."
  type        = number
  default     = 100
}

variable "nats_image" {
  description = "Pinned NATS server image."
  type        = string
  default     = "public.ecr.aws/docker/library/nats:2.10.24"
}

variable "kms_key_arn" {
  type = string
}

variable "log_retention_days" {
  type    = number
  default = 365
}
