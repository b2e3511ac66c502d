"""cargohold: a self-hosted private container registry that speaks ACR's APIs."""

__version__ = "0.1.0"
