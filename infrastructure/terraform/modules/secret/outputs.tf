output "arn" {
  description = "What ECS task definitions and IAM policies name the secret by."
  value       = aws_secretsmanager_secret.this.arn
}
