terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }

  # State holds the generated passwords: keep it in an encrypted, access-restricted bucket.
  # Fill in and uncomment (docs/DEPLOY.md, step 2).
  # backend "s3" {
  #   bucket       = "<account>-auction-terraform-state"
  #   key          = "example/terraform.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      Project     = "auction"
      Environment = var.name
      ManagedBy   = "terraform"
    }
  }
}
