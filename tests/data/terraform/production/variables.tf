variable "project" {
  default = "net-hub-prod"
}

variable "region" {
  default = "asia-northeast1"
}

# 4 = production (2 AWS connections x 2 tunnels), 1 = cheap test environment.
variable "num_tunnels" {
  type    = number
  default = 4
}

variable "spoke_ranges" {
  type    = list(string)
  default = ["10.30.0.0/16"]
}

variable "inside_cidrs" {
  type    = list(string)
  default = ["169.254.10.0/30", "169.254.10.4/30", "169.254.10.8/30", "169.254.10.12/30"]
}

variable "vpn_psk" {
  type      = list(string)
  sensitive = true
  default   = ["Known.Psk.Never.Printed_123", "Known.Psk.Never.Printed_123", "Known.Psk.Never.Printed_123", "Known.Psk.Never.Printed_123"]
}

locals {
  tunnels_per_connection = 2
  num_connections        = var.num_tunnels == 1 ? 1 : floor(var.num_tunnels / local.tunnels_per_connection)
  redundancy = {
    "1" = "SINGLE_IP_INTERNALLY_REDUNDANT"
    "2" = "TWO_IPS_REDUNDANCY"
    "4" = "FOUR_IPS_REDUNDANCY"
  }
  gcp_asn = 65000
  aws_asn = 64512
}

provider "google" {
  project = var.project
  region  = var.region
}

provider "aws" {
  region = "ap-northeast-1"
}
