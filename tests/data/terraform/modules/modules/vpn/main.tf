variable "customer_gateway_ids" {
  type = list(string)
}

resource "aws_vpn_gateway" "vgw" {
  amazon_side_asn = 64512
}

resource "aws_vpn_connection" "vpn" {
  count               = length(var.customer_gateway_ids)
  vpn_gateway_id      = aws_vpn_gateway.vgw.id
  customer_gateway_id = element(var.customer_gateway_ids, count.index)
  type                = "ipsec.1"

  tunnel1_inside_cidr                  = "169.254.10.${count.index * 8}/30"
  tunnel1_ike_versions                 = ["ikev2"]
  tunnel1_phase1_encryption_algorithms = ["AES256"]
  tunnel1_phase1_integrity_algorithms  = ["SHA2-256"]
  tunnel1_phase1_dh_group_numbers      = [14]
  tunnel1_phase2_encryption_algorithms = ["AES256"]
  tunnel1_phase2_integrity_algorithms  = ["SHA2-256"]
  tunnel1_phase2_dh_group_numbers      = [14]

  tunnel2_inside_cidr                  = "169.254.10.${count.index * 8 + 4}/30"
  tunnel2_ike_versions                 = ["ikev2"]
  tunnel2_phase1_encryption_algorithms = ["AES256"]
  tunnel2_phase1_integrity_algorithms  = ["SHA2-256"]
  tunnel2_phase1_dh_group_numbers      = [14]
  tunnel2_phase2_encryption_algorithms = ["AES256"]
  tunnel2_phase2_integrity_algorithms  = ["SHA2-256"]
  tunnel2_phase2_dh_group_numbers      = [14]
}

# Per AWS tunnel, in order (connection 0 tunnel1, tunnel2, connection 1 tunnel1, tunnel2).
output "outside_addresses" {
  value = flatten([for c in aws_vpn_connection.vpn : [c.tunnel1_address, c.tunnel2_address]])
}

output "cgw_inside_addresses" {
  value = flatten([for c in aws_vpn_connection.vpn : [c.tunnel1_cgw_inside_address, c.tunnel2_cgw_inside_address]])
}

output "vgw_inside_addresses" {
  value = flatten([for c in aws_vpn_connection.vpn : [c.tunnel1_vgw_inside_address, c.tunnel2_vgw_inside_address]])
}
