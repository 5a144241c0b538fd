variable "name" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  description = "Three private subnets, one per zone, in the order of availability_zones."
  type        = list(string)
}

variable "subnet_cidr_blocks" {
  description = "The same subnets' ranges (each node takes a fixed address in its subnet)."
  type        = list(string)
}

variable "availability_zones" {
  type = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups of the services (all three use NATS)."
  type        = list(string)
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
