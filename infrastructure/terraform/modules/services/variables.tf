variable "name" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "vpc_cidr_block" {
  type = string
}

variable "private_subnet_ids" {
  type = list(string)
}

variable "load_balancer" {
  description = "modules/alb's for_services: its security group, the target group per service behind it (the gateway and the broadcast service), its ARN suffix and the gateway target group's."
  type        = object({ security_group_id = string, target_group_arns = map(string), arn_suffix = string, gateway_target_group_arn_suffix = string })
}

variable "repositories" {
  description = "modules/ecr's repositories: per service its image repository's URL and ARN."
  type        = map(object({ url = string, arn = string }))
}

variable "image_tag" {
  description = "The tag to run (the git commit the images were built from)."
  type        = string
}

variable "cpu_architecture" {
  description = "ARM64 (Graviton, cheaper; build the images with --platform linux/arm64) or X86_64."
  type        = string
  default     = "ARM64"
}

variable "public_host_name" {
  description = "The public host name the ALB's certificate is for (the broadcast service fetches the gateways' JWKS through it)."
  type        = string
}

variable "redis_url_secret_arn" {
  type = string
}

variable "nats_url_secret_arn" {
  type = string
}

variable "database_url_secret_arn" {
  type = string
}

variable "kms_key_arn" {
  type = string
}

variable "log_retention_days" {
  type    = number
  default = 365
}

variable "collector_image" {
  description = "AWS Distro for OpenTelemetry collector, pinned (the broadcast tasks' metrics sidecar)."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.42.0"
}

variable "gateway" {
  description = "Gateway task size (Fargate cpu units, MiB) and task count range."
  type        = object({ cpu = number, memory = number, min_count = number, max_count = number })
  default     = { cpu = 1024, memory = 2048, min_count = 2, max_count = 12 }
}

variable "broadcast" {
  description = "Broadcast task size and task count range."
  type        = object({ cpu = number, memory = number, min_count = number, max_count = number })
  default     = { cpu = 1024, memory = 2048, min_count = 2, max_count = 20 }
}

variable "worker" {
  description = "Archival worker task size and task count range (workers share one consumer)."
  type        = object({ cpu = number, memory = number, min_count = number, max_count = number })
  default     = { cpu = 512, memory = 1024, min_count = 1, max_count = 4 }
}

variable "cpu_target_percent" {
  type    = number
  default = 60
}

variable "gateway_requests_per_task_per_minute" {
  description = "ALB requests per gateway task per minute to aim for."
  type        = number
  default     = 300000
}

variable "broadcast_connections_per_task" {
  description = "Open WebSockets per broadcast task to aim for (MAX_CONNECTIONS is 50,000)."
  type        = number
  default     = 20000
}
