variable "name" {
  description = "The environment's name; the group is named <name>-<store>-…"
  type        = string
}

variable "store" {
  description = "Which store (redis, postgres, nats), for the group's name."
  type        = string
}

variable "description" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "port" {
  description = "The store's client port."
  type        = number
}

variable "client_security_group_ids" {
  description = "Security groups of the services that use the store."
  type        = list(string)
}

variable "client_rule_description" {
  type = string
}
