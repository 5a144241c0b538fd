output "repositories" {
  description = "Per service: its repository's URL (for `docker push` and the task definitions) and ARN (the execution role pulls from it)."
  value       = { for name, repo in aws_ecr_repository.this : name => { url = repo.repository_url, arn = repo.arn } }
}
