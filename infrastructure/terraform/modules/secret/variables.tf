variable "name_prefix" {
  description = "Start of the secret's name (Secrets Manager appends a random suffix)."
  type        = string
}

variable "description" {
  type = string
}

variable "value" {
  type      = string
  sensitive = true
}

variable "operators_rotate" {
  description = "true: Terraform writes the first value only; later ones are put by operators and kept."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  type = string
}
