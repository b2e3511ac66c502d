"""ACR's own data-plane API under `/acr/v1/`: repository, tag and manifest properties, and their locks."""
