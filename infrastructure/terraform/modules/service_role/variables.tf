variable "name_prefix" {
  description = "Start of the role's name (IAM appends a unique suffix; at most 38 characters)."
  type        = string
}

variable "service" {
  description = "The service principal that assumes the role, e.g. ec2.amazonaws.com."
  type        = string
}

variable "managed_policy_arns" {
  type    = list(string)
  default = []
}

variable "inline_policies" {
  description = "Policy documents (JSON) by a name fixed in the configuration (the keys must be known before apply)."
  type        = map(string)
  default     = {}
}
