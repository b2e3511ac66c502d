"""The pure OCI kernel: grammar, digests, media types and manifest validation. No I/O here."""
