# The shape of a configuration split into local modules: the customer gateways in one module (their
# addresses read from a JSON file of the HA VPN gateway), the VPN connections in another.
resource "google_compute_network" "hub" {
  name                    = "hub-vpc"
  auto_create_subnetworks = false
}

resource "google_compute_ha_vpn_gateway" "hub" {
  name    = "ha-gw"
  network = google_compute_network.hub.id
  region  = "us-central1"
}

module "cgw" {
  source = "./modules/cgw"
}

module "vpn" {
  source               = "./modules/vpn"
  customer_gateway_ids = module.cgw.ids
}

resource "google_compute_router" "hub" {
  name    = "cr-hub"
  network = google_compute_network.hub.name
  region  = "us-central1"
  bgp {
    asn = 65010
  }
}

resource "google_compute_external_vpn_gateway" "aws" {
  name            = "aws-peer"
  redundancy_type = "FOUR_IPS_REDUNDANCY"
  dynamic "interface" {
    for_each = range(4)
    content {
      id         = interface.value
      ip_address = module.vpn.outside_addresses[interface.value]
    }
  }
}

resource "google_compute_vpn_tunnel" "aws" {
  count                           = 4
  name                            = "tunnel-${count.index}"
  region                          = "us-central1"
  vpn_gateway                     = google_compute_ha_vpn_gateway.hub.id
  vpn_gateway_interface           = floor(count.index / 2)
  peer_external_gateway           = google_compute_external_vpn_gateway.aws.id
  peer_external_gateway_interface = count.index
  router                          = google_compute_router.hub.id
  ike_version                     = 2
}

resource "google_compute_router_interface" "aws" {
  count      = 4
  name       = "if-tunnel-${count.index}"
  router     = google_compute_router.hub.name
  region     = "us-central1"
  ip_range   = "${module.vpn.cgw_inside_addresses[count.index]}/30"
  vpn_tunnel = google_compute_vpn_tunnel.aws[count.index].name
}

resource "google_compute_router_peer" "aws" {
  count           = 4
  name            = "peer-${count.index}"
  router          = google_compute_router.hub.name
  region          = "us-central1"
  interface       = google_compute_router_interface.aws[count.index].name
  ip_address      = module.vpn.cgw_inside_addresses[count.index]
  peer_ip_address = module.vpn.vgw_inside_addresses[count.index]
  peer_asn        = 64512
}
