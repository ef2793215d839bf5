# The AWS half of the production shape, as its own root module (the GCP half lives elsewhere and
# hands over the HA VPN addresses). Two pitfalls: tunnel 2 of each connection keeps AWS's default
# IPsec options, and the second connection reuses the first one's tunnel 1 inside CIDR.
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

provider "aws" {
  region                      = "ap-northeast-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  endpoints {
    ec2 = "http://127.0.0.1:9"
    sts = "http://127.0.0.1:9"
  }
}

variable "ha_vpn_ips" {
  type    = list(string)
  default = ["203.0.113.10", "203.0.113.11"]
}

variable "psk" {
  type      = string
  sensitive = true
  default   = "Known.Psk.Never.Printed_123"
}

locals {
  inside = ["169.254.10.0/30", "169.254.10.4/30", "169.254.10.0/30", "169.254.10.12/30"]
}

resource "aws_ec2_transit_gateway" "tgw" {
  amazon_side_asn                 = 64512
  default_route_table_association = "disable"
  default_route_table_propagation = "disable"
}

resource "aws_ec2_transit_gateway_route_table" "vpn" {
  transit_gateway_id = aws_ec2_transit_gateway.tgw.id
}

resource "aws_customer_gateway" "gcp" {
  count      = 2
  bgp_asn    = 65000
  ip_address = var.ha_vpn_ips[count.index]
  type       = "ipsec.1"
}

resource "aws_vpn_connection" "vpn" {
  count                                = 2
  customer_gateway_id                  = aws_customer_gateway.gcp[count.index].id
  transit_gateway_id                   = aws_ec2_transit_gateway.tgw.id
  type                                 = "ipsec.1"
  tunnel1_inside_cidr                  = local.inside[count.index * 2]
  tunnel2_inside_cidr                  = local.inside[count.index * 2 + 1]
  tunnel1_preshared_key                = var.psk
  tunnel2_preshared_key                = var.psk
  tunnel1_ike_versions                 = ["ikev2"]
  tunnel1_phase1_encryption_algorithms = ["AES256"]
  tunnel1_phase1_integrity_algorithms  = ["SHA2-256"]
  tunnel1_phase1_dh_group_numbers      = [14]
  tunnel1_phase2_encryption_algorithms = ["AES256"]
  tunnel1_phase2_integrity_algorithms  = ["SHA2-256"]
  tunnel1_phase2_dh_group_numbers      = [14]
}

resource "aws_ec2_transit_gateway_route_table_association" "vpn" {
  count                          = 2
  transit_gateway_attachment_id  = aws_vpn_connection.vpn[count.index].transit_gateway_attachment_id
  transit_gateway_route_table_id = aws_ec2_transit_gateway_route_table.vpn.id
}

resource "aws_ec2_transit_gateway_route_table_propagation" "vpn" {
  count                          = 2
  transit_gateway_attachment_id  = aws_vpn_connection.vpn[count.index].transit_gateway_attachment_id
  transit_gateway_route_table_id = aws_ec2_transit_gateway_route_table.vpn.id
}
