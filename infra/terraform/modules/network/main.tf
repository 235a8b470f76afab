# The two zones as two VPCs joined by one peering connection. Subnets, route tables, security
# groups, their rules and the cross-zone routes are rendered from approved-flows.yaml into
# flows.generated.tf; this file holds what does not depend on the flows.

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

locals {
  az_index = { for index, az in var.availability_zones : az => index }
}

# ---- VPCs

resource "aws_vpc" "cde" {
  cidr_block           = local.address_plan.cde.cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = {
    Name     = "${var.name}-cde"
    pci_zone = "cde"
  }
}

resource "aws_vpc" "noncde" {
  cidr_block           = local.address_plan.noncde.cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = {
    Name     = "${var.name}-noncde"
    pci_zone = "connected"
  }
}

# PCI DSS 1.2.1 / 2.2.1: the default security groups allow nothing; every workload uses an
# endpoint group from the approved-flows file.
resource "aws_default_security_group" "cde" {
  vpc_id = aws_vpc.cde.id

  tags = {
    Name     = "${var.name}-cde-default-deny"
    pci_zone = "cde"
  }
}

resource "aws_default_security_group" "noncde" {
  vpc_id = aws_vpc.noncde.id

  tags = {
    Name     = "${var.name}-noncde-default-deny"
    pci_zone = "connected"
  }
}

# ---- Internet edge

resource "aws_internet_gateway" "cde" {
  vpc_id = aws_vpc.cde.id

  tags = {
    Name     = "${var.name}-cde"
    pci_zone = "cde"
  }
}

resource "aws_internet_gateway" "noncde" {
  vpc_id = aws_vpc.noncde.id

  tags = {
    Name     = "${var.name}-noncde"
    pci_zone = "connected"
  }
}

resource "aws_eip" "cde_nat" {
  for_each = local.az_index
  domain   = "vpc"

  tags = {
    Name     = "${var.name}-cde-nat-${each.key}"
    pci_zone = "cde"
  }
}

resource "aws_nat_gateway" "cde" {
  for_each      = aws_subnet.cde_nat
  subnet_id     = each.value.id
  allocation_id = aws_eip.cde_nat[each.key].id

  tags = {
    Name     = "${var.name}-cde-${each.key}"
    pci_zone = "cde"
  }

  depends_on = [aws_internet_gateway.cde]
}

resource "aws_eip" "noncde_nat" {
  for_each = local.az_index
  domain   = "vpc"

  tags = {
    Name     = "${var.name}-noncde-nat-${each.key}"
    pci_zone = "connected"
  }
}

resource "aws_nat_gateway" "noncde" {
  for_each      = aws_subnet.noncde_edge
  subnet_id     = each.value.id
  allocation_id = aws_eip.noncde_nat[each.key].id

  tags = {
    Name     = "${var.name}-noncde-${each.key}"
    pci_zone = "connected"
  }

  depends_on = [aws_internet_gateway.noncde]
}

# ---- Default routes. Only the edge, NAT, firewall and app tiers leave the VPC; the CDE vault,
# data, listener and endpoint tiers have no route out of it (PCI DSS 1.3.2, 1.4.4).

resource "aws_route" "cde_edge_internet" {
  for_each               = aws_route_table.cde_edge
  route_table_id         = each.value.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.cde.id
}

resource "aws_route" "cde_nat_internet" {
  for_each               = aws_route_table.cde_nat
  route_table_id         = each.value.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.cde.id
}

resource "aws_route" "cde_firewall_nat" {
  for_each               = aws_route_table.cde_firewall
  route_table_id         = each.value.id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.cde[each.key].id
}

# PCI DSS 1.3.2: CDE egress goes through the Network Firewall's PSP domain allow-list.
resource "aws_route" "cde_app_firewall" {
  for_each               = aws_route_table.cde_app
  route_table_id         = each.value.id
  destination_cidr_block = "0.0.0.0/0"
  vpc_endpoint_id        = local.firewall_endpoint_ids[each.key]
}

resource "aws_route" "noncde_edge_internet" {
  for_each               = aws_route_table.noncde_edge
  route_table_id         = each.value.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.noncde.id
}

resource "aws_route" "noncde_app_nat" {
  for_each               = aws_route_table.noncde_app
  route_table_id         = each.value.id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.noncde[each.key].id
}

# ---- The one private path between the zones (routes in flows.generated.tf)

resource "aws_vpc_peering_connection" "zones" {
  vpc_id      = aws_vpc.noncde.id
  peer_vpc_id = aws_vpc.cde.id
  auto_accept = true

  tags = {
    Name     = "${var.name}-noncde-to-cde"
    pci_zone = "connected"
  }
}

# Private names of the two internal listeners (records made by the cde and noncde modules), so
# callers verify the listeners' private-CA certificates by name (PCI DSS 4.2.1 inside the platform).
resource "aws_route53_zone" "internal" {
  name    = var.internal_domain
  comment = "${var.name}: internal listener names of both zones"

  vpc {
    vpc_id = aws_vpc.cde.id
  }

  vpc {
    vpc_id = aws_vpc.noncde.id
  }

  tags = {
    Name     = "${var.name}-internal"
    pci_zone = "connected"
  }
}
