resource "google_compute_external_vpn_gateway" "aws" {
  name = "aws-peer"
  interface {
    id = 0
