output "repository_urls" {
  description = "Repository URL per service, for `docker push` and the task definitions."
  value       = { for name, repo in aws_ecr_repository.this : name => repo.repository_url }
}

output "repository_arns" {
  value = { for name, repo in aws_ecr_repository.this : name => repo.arn }
}
