"""Geo-replication: regions with their own blob stores, copies between them as queued jobs, which content is
present where, and the regional view of the registry built on that (visibility, status, regional webhooks).

A region is a location with a blob store of its own, registered in the database by the first node that serves
it (`serve --region R --storage-url ...`). Metadata is shared; bytes are regional. `blob_locations` says which
region's store holds which blob, and a manifest is visible in a region once every blob it needs is there.
"""
