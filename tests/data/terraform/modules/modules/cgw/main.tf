data "local_file" "gateway" {
  filename = "ha-gateway.json"
}

resource "aws_customer_gateway" "first" {
  bgp_asn    = 65010
  ip_address = jsondecode(data.local_file.gateway.content).vpnInterfaces[0].ipAddress
  type       = "ipsec.1"
}

resource "aws_customer_gateway" "second" {
  bgp_asn    = 65010
  ip_address = jsondecode(data.local_file.gateway.content).vpnInterfaces[1].ipAddress
  type       = "ipsec.1"
}

output "ids" {
  value = [aws_customer_gateway.first.id, aws_customer_gateway.second.id]
}
