variable "name" {
  description = "Prefix of every resource name (the environment's name)."
  type        = string
}

variable "cidr_block" {
  description = "The VPC's address range; split into three public and three private /20s (for a /16)."
  type        = string
  default     = "10.40.0.0/16"
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper; a zone outage then cuts private egress)."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "KMS key encrypting the flow-log group."
  type        = string
}

variable "log_retention_days" {
  description = "How long flow logs are kept."
  type        = number
  default     = 365
}
