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

variable "clients" {
  description = "Security group per service that uses the store (by service name, so each rule keeps its address when another goes)."
  type        = map(string)
}

variable "client_rule_description" {
  type = string
}
