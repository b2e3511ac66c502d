"""Content-addressed blob storage behind one interface, with a backend per kind of store."""
