resource "google_compute_network" "hub" {
  name                    = "hub-vpc"
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "hub" {
  name          = "hub-subnet"
  network       = google_compute_network.hub.id
  ip_cidr_range = "10.10.0.0/16"
  region        = var.region
}

resource "google_compute_network" "spoke" {
  name                    = "spoke-vpc"
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "spoke" {
  name          = "spoke-subnet"
  network       = google_compute_network.spoke.id
  ip_cidr_range = "10.30.0.0/16"
  region        = var.region
}

resource "google_compute_network_peering" "hub_to_spoke" {
  name                 = "hub-to-spoke"
  network              = google_compute_network.hub.self_link
  peer_network         = google_compute_network.spoke.self_link
  export_custom_routes = true
}

resource "google_compute_network_peering" "spoke_to_hub" {
  name                 = "spoke-to-hub"
  network              = google_compute_network.spoke.self_link
  peer_network         = google_compute_network.hub.self_link
  import_custom_routes = true
}

resource "google_compute_ha_vpn_gateway" "hub" {
  name    = "ha-gw"
  network = google_compute_network.hub.id
  region  = var.region
}

resource "google_compute_router" "hub" {
  name    = "cr-hub"
  network = google_compute_network.hub.name
  region  = var.region
  bgp {
    asn               = local.gcp_asn
    advertise_mode    = "CUSTOM"
    advertised_groups = ["ALL_SUBNETS"]
    dynamic "advertised_ip_ranges" {
      for_each = concat(var.spoke_ranges, ["35.199.192.0/19"])
      content {
        range = advertised_ip_ranges.value
      }
    }
  }
}

# One interface per AWS tunnel: interface i -> connection floor(i / 2), tunnel (i % 2) + 1.
resource "google_compute_external_vpn_gateway" "aws" {
  name            = "aws-peer"
  redundancy_type = lookup(local.redundancy, var.num_tunnels)
  dynamic "interface" {
    for_each = range(var.num_tunnels)
    content {
      id         = interface.value
      ip_address = lookup(aws_vpn_connection.vpn[floor(interface.value / local.tunnels_per_connection)], "tunnel${interface.value % local.tunnels_per_connection + 1}_address")
    }
  }
}

resource "google_compute_vpn_tunnel" "aws" {
  count                           = var.num_tunnels
  name                            = "tunnel-${count.index}"
  region                          = var.region
  vpn_gateway                     = google_compute_ha_vpn_gateway.hub.id
  vpn_gateway_interface           = floor(count.index / local.tunnels_per_connection)
  peer_external_gateway           = google_compute_external_vpn_gateway.aws.id
  peer_external_gateway_interface = count.index
  shared_secret                   = var.vpn_psk[count.index]
  router                          = google_compute_router.hub.id
  ike_version                     = 2
}

resource "google_compute_router_interface" "aws" {
  count      = var.num_tunnels
  name       = "if-tunnel-${count.index}"
  router     = google_compute_router.hub.name
  region     = var.region
  ip_range   = "${cidrhost(var.inside_cidrs[count.index], 2)}/30"
  vpn_tunnel = google_compute_vpn_tunnel.aws[count.index].name
}

resource "google_compute_router_peer" "aws" {
  count           = var.num_tunnels
  name            = "peer-${count.index}"
  router          = google_compute_router.hub.name
  region          = var.region
  interface       = google_compute_router_interface.aws[count.index].name
  ip_address      = cidrhost(var.inside_cidrs[count.index], 2)
  peer_ip_address = cidrhost(var.inside_cidrs[count.index], 1)
  peer_asn        = local.aws_asn
}
