//! Iceberg catalogs: the built-in REST catalog server and clients for external ones (not built yet: see issue 5).
