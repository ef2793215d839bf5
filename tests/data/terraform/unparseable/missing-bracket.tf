resource "aws_vpn_connection" "vpn" {
  customer_gateway_id = aws_customer_gateway.gcp.id
  tunnel1_inside_cidr = "169.254.10.0/30"
  tunnel1_ike_versions = ["ikev2"
}
