variable "name_prefix" {
  description = "The group's name prefix: <environment>-<what it guards>-."
  type        = string
}

variable "description" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "rules" {
  description = "Rules by name (a stable name keeps a rule's address when another goes): ingress or egress, the TCP port, and the other side, one of cidr_ipv4, peer_group_id, or members = true (the group's own members, e.g. NATS routes)."
  type = map(object({
    direction     = string
    port          = number
    description   = string
    cidr_ipv4     = optional(string)
    peer_group_id = optional(string)
    members       = optional(bool, false)
  }))
  validation {
    condition     = alltrue([for rule in values(var.rules) : contains(["ingress", "egress"], rule.direction)])
    error_message = "rules: direction is ingress or egress."
  }
  validation {
    condition     = alltrue([for rule in values(var.rules) : length(compact([rule.cidr_ipv4, rule.peer_group_id, rule.members ? "members" : null])) == 1])
    error_message = "rules: each rule names exactly one other side (cidr_ipv4, peer_group_id or members)."
  }
}
