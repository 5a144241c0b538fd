variable "name" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "vpc_cidr_block" {
  description = "The tasks' addresses lie in it; the ALB may reach their ports there."
  type        = string
}

variable "public_subnet_ids" {
  type = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate for the public host name (DNS-validated in the same region)."
  type        = string
}

variable "access_log_retention_days" {
  type    = number
  default = 90
}

variable "waf_requests_per_ip_per_5_min" {
  description = "Requests one client address may send in 5 minutes before WAF blocks it (the gateway limits bids per user on top)."
  type        = number
  default     = 20000
}
