# A security group and its rules, every rule one TCP port to or from one other side: an address
# range, another group, or the group's own members. The callers (the ALB, each service, each data
# store) give their rules as data, so each kind of rule is written here once.

resource "aws_security_group" "this" {
  #checkov:skip=CKV2_AWS_5:Attached by the caller (its load balancer, ECS service or data store takes this module's id output); checkov's graph does not follow module outputs.
  name_prefix = var.name_prefix
  description = var.description
  vpc_id      = var.vpc_id
  lifecycle {
    create_before_destroy = true
  }
}

locals {
  # The other side of each rule: a group named by the caller, or this group itself.
  peers = { for name, rule in var.rules : name => rule.members ? aws_security_group.this.id : rule.peer_group_id }
}

resource "aws_vpc_security_group_ingress_rule" "this" {
  for_each                     = { for name, rule in var.rules : name => rule if rule.direction == "ingress" }
  security_group_id            = aws_security_group.this.id
  cidr_ipv4                    = each.value.cidr_ipv4
  referenced_security_group_id = local.peers[each.key]
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = each.value.description
}

resource "aws_vpc_security_group_egress_rule" "this" {
  for_each                     = { for name, rule in var.rules : name => rule if rule.direction == "egress" }
  security_group_id            = aws_security_group.this.id
  cidr_ipv4                    = each.value.cidr_ipv4
  referenced_security_group_id = local.peers[each.key]
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = each.value.description
}
