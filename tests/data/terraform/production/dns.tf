# Forward aws.internal from the hub VPC only; the spoke resolves it through a peering zone.
resource "google_dns_managed_zone" "aws_forward" {
  name       = "aws-internal"
  dns_name   = "aws.internal."
  visibility = "private"
  private_visibility_config {
    networks {
      network_url = google_compute_network.hub.id
    }
  }
  forwarding_config {
    target_name_servers {
      ipv4_address = "10.0.0.2"
    }
  }
}

resource "google_dns_managed_zone" "aws_peer" {
  name       = "aws-internal-peer"
  dns_name   = "aws.internal."
  visibility = "private"
  private_visibility_config {
    networks {
      network_url = google_compute_network.spoke.id
    }
  }
  peering_config {
    target_network {
      network_url = google_compute_network.hub.id
    }
  }
}
