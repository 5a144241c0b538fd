output "nats_url_secret_arn" {
  description = "Secret holding NATS_URL (nats://auction:<password>@<node>:4222, the three nodes comma-separated)."
  value       = module.nats_url.arn
}

output "node_addresses" {
  value = { for name, node in local.nodes : name => node.private_ip }
}

output "instance_ids" {
  value = { for name, node in aws_instance.node : name => node.id }
}
