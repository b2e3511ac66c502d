"""Keys and certificates; later scanning, signing and trust."""
