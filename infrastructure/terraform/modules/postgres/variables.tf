variable "store" {
  description = "What the environment gives each data store: its name (the prefix of what it creates; Redis's replication group id), private subnets in three zones, its security group (the environment's data_store_security_group, its client port open to the services given its URL) and the environment's KMS key."
  type        = object({ name = string, subnet_ids = list(string), security_group_id = string, kms_key_arn = string })
}

variable "engine_version" {
  type    = string
  default = "16.6"
}

variable "instance_class" {
  type    = string
  default = "db.r7g.large"
}

variable "allocated_storage_gb" {
  type    = number
  default = 100
}

variable "max_allocated_storage_gb" {
  description = "Storage autoscaling ceiling."
  type        = number
  default     = 1000
}

variable "backup_retention_days" {
  type    = number
  default = 14
}

variable "ca_cert_identifier" {
  description = "RDS CA that signs the instance's certificate; the images' bundle (ca_bundle_path) holds every RDS CA, so a rotation needs no new image."
  type        = string
  default     = "rds-ca-rsa2048-g1"
}

variable "ca_bundle_path" {
  description = "Path of AWS's RDS CA bundle inside the service images (infrastructure/docker/Dockerfile puts it there); DATABASE_URL's sslrootcert."
  type        = string
  default     = "/etc/ssl/certs/rds-global-bundle.pem"
}
