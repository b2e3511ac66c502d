"""The OCI Distribution data plane under `/v2/`."""
