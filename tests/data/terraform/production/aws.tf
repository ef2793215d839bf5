resource "aws_ec2_transit_gateway" "tgw" {
  amazon_side_asn                 = local.aws_asn
  default_route_table_association = "disable"
  default_route_table_propagation = "disable"
}

resource "aws_ec2_transit_gateway_route_table" "vpn" {
  transit_gateway_id = aws_ec2_transit_gateway.tgw.id
}

# One customer gateway per HA VPN interface IP (1:1 with a VPN connection).
resource "aws_customer_gateway" "gcp" {
  count      = local.num_connections
  bgp_asn    = local.gcp_asn
  ip_address = google_compute_ha_vpn_gateway.hub.vpn_interfaces[count.index].ip_address
  type       = "ipsec.1"
}

resource "aws_vpn_connection" "vpn" {
  count               = local.num_connections
  customer_gateway_id = aws_customer_gateway.gcp[count.index].id
  transit_gateway_id  = aws_ec2_transit_gateway.tgw.id
  type                = "ipsec.1"

  tunnel1_inside_cidr                  = var.inside_cidrs[count.index * 2]
  tunnel1_preshared_key                = var.vpn_psk[count.index * 2]
  tunnel1_ike_versions                 = ["ikev2"]
  tunnel1_phase1_encryption_algorithms = ["AES256"]
  tunnel1_phase1_integrity_algorithms  = ["SHA2-256"]
  tunnel1_phase1_dh_group_numbers      = [14]
  tunnel1_phase2_encryption_algorithms = ["AES256"]
  tunnel1_phase2_integrity_algorithms  = ["SHA2-256"]
  tunnel1_phase2_dh_group_numbers      = [14]

  tunnel2_inside_cidr                  = var.inside_cidrs[count.index * 2 + 1]
  tunnel2_preshared_key                = var.vpn_psk[count.index * 2 + 1]
  tunnel2_ike_versions                 = ["ikev2"]
  tunnel2_phase1_encryption_algorithms = ["AES256"]
  tunnel2_phase1_integrity_algorithms  = ["SHA2-256"]
  tunnel2_phase1_dh_group_numbers      = [14]
  tunnel2_phase2_encryption_algorithms = ["AES256"]
  tunnel2_phase2_integrity_algorithms  = ["SHA2-256"]
  tunnel2_phase2_dh_group_numbers      = [14]
}

resource "aws_ec2_transit_gateway_route_table_association" "vpn" {
  count                          = local.num_connections
  transit_gateway_attachment_id  = aws_vpn_connection.vpn[count.index].transit_gateway_attachment_id
  transit_gateway_route_table_id = aws_ec2_transit_gateway_route_table.vpn.id
}

resource "aws_ec2_transit_gateway_route_table_propagation" "vpn" {
  count                          = local.num_connections
  transit_gateway_attachment_id  = aws_vpn_connection.vpn[count.index].transit_gateway_attachment_id
  transit_gateway_route_table_id = aws_ec2_transit_gateway_route_table.vpn.id
}
