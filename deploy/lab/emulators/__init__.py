"""Local emulators of the AWS and GCP APIs, for the lab and the tests."""
