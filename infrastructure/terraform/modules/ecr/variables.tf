variable "name" {
  description = "Prefix of every repository name (the environment's name)."
  type        = string
}

variable "repositories" {
  description = "The images: one per service."
  type        = list(string)
  default     = ["api-gateway", "broadcast-service", "archival-worker"]
}

variable "kms_key_arn" {
  description = "KMS key encrypting the images."
  type        = string
}
